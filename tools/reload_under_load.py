#!/usr/bin/env python3
"""Reload under load: starts a real upstream and the gateway in a temporary prefix, drives GET
traffic with several client threads (new connection per request, and keep-alive connections) for
N seconds while running `gateway reload` every 0.5 s, then prints the totals.

A keep-alive client re-sends a request once when the server closed the (reused) connection before
any byte of the response, as curl and browsers do for idempotent requests (RFC 9112 9.3.1); those
are counted as `retried`, not as failures. Everything else that is not a 200 with the upstream's
body is a failure. Python 3 standard library only.

    python3 tools/reload_under_load.py --seconds 15 [--gateway .build/release/gateway]
"""
import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
RETRYABLE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


from netutil import free_port  # noqa: E402  (tools/ is on sys.path when run as a script)


class Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *a):
        pass

    def do_GET(self):
        # Head and body in one write: two small writes would meet Nagle + delayed ACK (40 ms) and
        # measure the upstream, not the gateway.
        body = json.dumps({"upstream": "u", "path": self.path}).encode()
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                         % (len(body), body))


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = self.failed = self.retried = 0
        self.errors = {}

    def add(self, ok, why=None):
        with self.lock:
            if ok:
                self.ok += 1
            else:
                self.failed += 1
                self.errors[why] = self.errors.get(why, 0) + 1


def one(conn, path):
    conn.request("GET", path)
    r = conn.getresponse()
    try:
        body = r.read()
    except Exception as e:  # noqa: BLE001 - bytes of the response arrived: not retryable
        raise RuntimeError(f"body: {type(e).__name__}") from e
    good = r.status == 200 and body.startswith(b'{"upstream": "u"')
    return good, r.status, r.will_close


def fresh_client(port, path, stop, stats, timeout):
    while not stop.is_set():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            good, st, _ = one(conn, path)
            stats.add(good, f"fresh: status {st}")
        except Exception as e:  # noqa: BLE001
            stats.add(False, f"fresh: {type(e).__name__}")
        finally:
            conn.close()


def keepalive_client(port, path, stop, stats, timeout):
    conn = None
    while not stop.is_set():
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        reused = conn.sock is not None
        try:
            good, st, will_close = one(conn, path)
        except RETRYABLE as e:
            conn.close()
            conn = None
            if not reused:
                stats.add(False, f"keepalive new connection: {type(e).__name__}")
                continue
            with stats.lock:
                stats.retried += 1
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            try:
                good, st, will_close = one(conn, path)
            except Exception as e2:  # noqa: BLE001
                stats.add(False, f"keepalive retry: {type(e2).__name__}")
                conn.close()
                conn = None
                continue
        except Exception as e:  # noqa: BLE001
            stats.add(False, f"keepalive: {type(e).__name__}")
            conn.close()
            conn = None
            continue
        stats.add(good, f"keepalive: status {st}")
        if will_close:
            conn.close()
            conn = None
    if conn is not None:
        conn.close()


def admin(port, method, path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gateway", default=os.path.join(ROOT, ".build/release/gateway"))
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--interval", type=float, default=0.5, help="seconds between reloads")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--fresh", type=int, default=2, help="threads using a new connection per request")
    ap.add_argument("--keepalive", type=int, default=2, help="threads using one keep-alive connection")
    ap.add_argument("--timeout", type=float, default=10, help="per-request socket timeout")
    ap.add_argument("--keep", action="store_true", help="keep the temporary prefix")
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="gw-reload-")
    prefix = os.path.join(tmp, "prefix")
    conf = os.path.join(tmp, "gateway.conf")
    proxy, adminp = free_port(), free_port()
    with open(conf, "w") as f:
        f.write(f"prefix = {prefix}\nproxy_listen = 127.0.0.1:{proxy}\nadmin_listen = 127.0.0.1:{adminp}\nstatus_listen = off\n"
                f"worker_processes = {a.workers}\nlog_level = notice\n")
    up = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    up.daemon_threads = True
    threading.Thread(target=up.serve_forever, daemon=True).start()

    def gw(*args):
        return subprocess.run([a.gateway, *args, "-c", conf, "-p", prefix], capture_output=True, text=True,
                              timeout=60)

    r = gw("start")
    if r.returncode != 0:
        sys.exit(f"gateway start failed: {r.stderr.strip()}")
    master = int(open(os.path.join(prefix, "pids", "gateway.pid")).read())
    try:
        admin(adminp, "POST", "/services", {"name": "s", "url": f"http://127.0.0.1:{up.server_address[1]}"})
        admin(adminp, "POST", "/services/s/routes", {"paths": ["/r"]})
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{proxy}/r", timeout=5) as resp:
                    if resp.status == 200:
                        break
            except Exception:  # noqa: BLE001
                pass
            if time.monotonic() > deadline:
                sys.exit("the route never answered")
            time.sleep(0.05)

        stats, stop = Stats(), threading.Event()
        threads = [threading.Thread(target=fresh_client, args=(proxy, "/r", stop, stats, a.timeout), daemon=True)
                   for _ in range(a.fresh)]
        threads += [threading.Thread(target=keepalive_client, args=(proxy, "/r", stop, stats, a.timeout), daemon=True)
                    for _ in range(a.keepalive)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        reloads = reload_errors = 0
        next_reload = t0 + a.interval
        while time.monotonic() - t0 < a.seconds:
            time.sleep(max(0.0, min(next_reload, t0 + a.seconds) - time.monotonic()))
            if time.monotonic() - t0 >= a.seconds:
                break
            rr = gw("reload")
            if rr.returncode == 0:
                reloads += 1
            else:
                reload_errors += 1
            next_reload += a.interval
        stop.set()
        for t in threads:
            t.join(a.timeout * 2)
        elapsed = time.monotonic() - t0
        total = stats.ok + stats.failed
        same_master = int(open(os.path.join(prefix, "pids", "gateway.pid")).read()) == master
        print(f"duration:            {elapsed:.1f} s ({a.fresh} new-connection + {a.keepalive} keep-alive client threads, "
              f"{a.workers} workers, reload every {a.interval} s)")
        print(f"total requests:      {total}")
        print(f"failed requests:     {stats.failed}")
        print(f"retried (keep-alive closed before any response byte): {stats.retried}")
        print(f"reloads done:        {reloads} (failed reload commands: {reload_errors})")
        print(f"requests/s:          {total / elapsed:.0f}")
        print(f"master pid unchanged: {same_master}")
        for why, n in sorted(stats.errors.items(), key=lambda x: -x[1]):
            print(f"  failure: {why} x{n}")
        code = 0 if stats.failed == 0 and reload_errors == 0 and same_master else 1
    finally:
        r = gw("stop")
        try:
            os.kill(master, signal.SIGKILL)
        except ProcessLookupError:
            pass
        up.shutdown()
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
