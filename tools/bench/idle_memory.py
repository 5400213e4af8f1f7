#!/usr/bin/env python3
"""Heap bytes per idle keep-alive client connection of one gateway worker (a repeatable figure).

Starts the bench upstream (Debian nginx) and the gateway with one worker, warms it (N requests over 8
connections, then N connections opened, used once and closed, so the server's pools hold what an
exchange needs), reads the worker's allocated heap (`GET /status?unit=b`: mallinfo2's uordblks,
refreshed once a second), opens N connections that each send one request and then stay open, idle,
reads it again and prints the difference per connection. Unlike the bench's idle-10k scenario (RSS:
allocator retention and page effects included), this counts what the idle connections hold.

Usage: python3 tools/bench/idle_memory.py [--gateway .build/release/gateway] [--connections 2000]
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gateway", default=os.path.join(bench.HERE, "../../.build/release/gateway"))
    ap.add_argument("--connections", type=int, default=2000)
    args = ap.parse_args()
    n = args.connections
    root = tempfile.mkdtemp(prefix="gwidle-")
    os.chmod(root, 0o755)
    up = bench.Upstream(root, 1)
    up.wait_ready()
    port, admin, status = bench.free_ports(3)
    conf = f"{root}/gateway.conf"
    with open(conf, "w") as f:
        f.write(f"prefix = {root}/prefix\nproxy_listen = 127.0.0.1:{port} reuseport backlog=16384\n"
                f"admin_listen = 127.0.0.1:{admin}\nstatus_listen = 127.0.0.1:{status}\nworker_processes = 1\n"
                f"proxy_access_log = off\nlog_level = error\n")
    gw = subprocess.Popen([os.path.abspath(args.gateway), "start", "--foreground", "-c", conf, "-p", f"{root}/prefix"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def post(path, body):
        r = urllib.request.Request(f"http://127.0.0.1:{admin}{path}", data=json.dumps(body).encode(), method="POST",
                                   headers={"Content-Type": "application/json"})
        return urllib.request.urlopen(r, timeout=10).status

    def heap():
        time.sleep(2.2)   # the worker refreshes its figure once a second
        st = json.loads(bench.http_get(status, "/status?unit=b", timeout=10)[1])
        return st["memory"]["workers_lua_vms"][0]["http_allocated_gc"]

    req = b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n"

    def one(s):
        s.settimeout(10)
        s.sendall(req)
        buf = b""
        while b"hello" not in buf:
            d = s.recv(4096)
            if not d:
                raise RuntimeError("connection closed by the gateway")
            buf += d

    try:
        bench.wait_until(lambda: bench.http_get(admin, "/")[0] == 200, timeout=30, what="admin")
        post("/services", {"name": "s", "url": f"http://127.0.0.1:{up.port}"})
        post("/services/s/routes", {"paths": ["/"]})
        bench.wait_until(lambda: bench.http_get(port, "/small")[0] == 200, timeout=30, what="proxy")
        warm = [socket.create_connection(("127.0.0.1", port)) for _ in range(8)]
        for i in range(n):
            one(warm[i % 8])
        conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
        for s in conns:
            one(s)
        for s in conns + warm:
            s.close()
        before = heap()
        conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
        for s in conns:
            one(s)
        after = heap()
        print(f"worker heap {before} B; with {n} idle keep-alive connections {after} B: "
              f"{(after - before) / n:.0f} bytes per idle connection")
        for s in conns:
            s.close()
    finally:
        os.killpg(gw.pid, signal.SIGTERM)
        gw.wait(30)
        up.stop()


if __name__ == "__main__":
    main()
