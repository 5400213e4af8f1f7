#!/usr/bin/env python3
"""Benchmark the gateway against nginx (reverse proxy) and HAProxy on 127.0.0.1.

Everything runs on loopback, each server in its own temporary directory with its own config:
  * upstream: Debian nginx serving /small ("hello\\n"), /16k (16384 bytes) and POST /upload
    (1 MiB accepted, 200), listening on one main port plus 100 extra ports (100-target scenarios);
  * nginx as a reverse proxy (upstream keepalive, same worker count as the gateway);
  * HAProxy (nbthread = worker count, http-reuse always);
  * the gateway (proxy_access_log = off, configured through its Admin API, or a declarative file
    for the 10 000-route scenario).
Access logs are off for all three proxies.

Each scenario starts the three proxies, then drives them with wrk in interleaved rounds
(nginx, haproxy, gateway, nginx, ...) and reports medians over the rounds: requests/s, p50 and
p99 latency, CPU seconds per 100k requests (utime+stime of the proxy's processes from
/proc/<pid>/stat), peak RSS (sum of VmHWM of the proxy's processes), non-2xx/3xx responses and
socket errors, and each figure's ratio to nginx's in the same run.

Usage: python3 tools/bench/bench.py --gateway .build/release/gateway [--duration 5] [--rounds 2]
       [--scenarios small-1w,small-2w,...] [--connections 64]
Results: tools/bench/results/latest.json and latest.md (the table is also printed).

Modules beside this driver (the scenario table, idle connections, the rounds, the command line):
servers.py (upstream and proxies), tls_scenarios.py (the TLS scenarios), load_clients.py (wrk),
procstats.py (/proc readers), report.py (breakdown, ratios, Markdown), benchutil.py (waits, ports).
"""
import argparse
import json
import os
import resource
import selectors
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

from benchutil import free_ports, http_get, log, wait_until  # noqa: F401 - http_get, free_ports: callgrind.py
from load_clients import run_wrk
from procstats import (CLK_TCK, cpu_split, cpu_ticks, largest_worker_kb, machine_ticks, private_kb,  # noqa: F401
                       process_tree, status_kb)
from report import breakdown, markdown, median_breakdown, ratios
from servers import BENCH_KEY, HAPROXY_MAXCONN, N_ROUTES, Gateway, HAProxy, NginxProxy, Upstream, proxies_for
from tls_scenarios import N_IDLE_TLS, TLS_SCENARIOS, tls_client_ctx, tls_conns, tls_drive, tls_request

HERE = os.path.dirname(os.path.abspath(__file__))
ALGOS = ("round-robin", "least-connections", "consistent-hashing", "latency")
ALL_SCENARIOS = ["small-1w", "small-2w", "16k", "upload-1m", "conn-close", "routes-10k"] + \
    [f"targets-100-{a}" for a in ALGOS] + ["idle-10k", "plugins-auth-rl", "cache-hit"]
ALL_SCENARIOS += TLS_SCENARIOS  # tls_scenarios.py says what each one does
N_IDLE = 10000
# HAProxy's descriptor limit (servers.HAPROXY_MAXCONN) caps the idle test a little under 10 000
# connections, the same for all.
N_IDLE = min(N_IDLE, HAPROXY_MAXCONN - 100)


# ---- scenarios ------------------------------------------------------------------------------

UPLOAD_LUA = """
wrk.method = "POST"
wrk.body = string.rep("a", 1048576)
wrk.headers["Content-Type"] = "application/octet-stream"
"""


def scenario_request(name, root):
    """(path, wrk extra args, lua script or None) for a scenario."""
    tls = tls_request(name)
    if tls:
        return tls
    if name == "16k":
        return "/16k", [], None
    if name == "upload-1m":
        path = os.path.join(root, "upload.lua")
        with open(path, "w") as f:
            f.write(UPLOAD_LUA)
        return "/upload", [], path
    if name == "conn-close":
        return "/small", ["-H", "Connection: close"], None
    if name == "routes-10k":
        return f"/r{N_ROUTES:05d}/small", [], None
    if name == "plugins-auth-rl":
        return "/small", ["-H", f"apikey: {BENCH_KEY}"], None
    return "/small", [], None


def scenario_workers(name, args):
    return 2 if name == "small-2w" else args.workers


def scenario_conns(name, args):
    if name == "upload-1m":
        return max(1, min(args.connections, 16))
    if name == "conn-close":
        return max(1, min(args.connections, 32))
    tls = tls_conns(name, args)
    return tls if tls is not None else args.connections


def drive(server, name, path, duration, conns, threads, extra, script):
    """One load run against a proxy: wrk over http, or the TLS scenario's own client (tls_drive)."""
    if name in TLS_SCENARIOS:
        return tls_drive(server, name, path, duration, conns, threads, extra, script)
    return run_wrk(server.port, path, duration, conns, threads, extra, script)


# ---- idle connections -----------------------------------------------------------------------

def idle_connections(port, n, timeout=60.0, tls=None):
    """Opens n keep-alive connections (over TLS with the client context `tls`), sends one request on each
    and reads the response; returns (open sockets, ok count). The caller closes them."""
    socks, ok = [], 0
    req = b"GET /small HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    sel = selectors.DefaultSelector()
    deadline = time.monotonic() + timeout
    for i in range(n):
        s = socket.socket()
        s.settimeout(5)
        try:
            s.connect(("127.0.0.1", port))
            if tls:
                s = tls.wrap_socket(s, server_hostname="localhost")  # blocking handshake (5 s timeout)
        except OSError as e:
            log(f"  idle: connect {i} failed: {e}")
            s.close()
            break
        s.setblocking(False)
        s.send(req)
        socks.append(s)
        sel.register(s, selectors.EVENT_READ, bytearray())
        # Drain responses as we go so the proxy is not holding thousands of unread writes.
        if i % 500 == 499:
            ok += _drain(sel, 0)
    while ok < len(socks) and time.monotonic() < deadline:
        got = _drain(sel, 0.5)
        ok += got
        if got == 0 and not sel.get_map():
            break
    sel.close()
    return socks, ok


def _drain(sel, timeout):
    done = 0
    for key, _ in sel.select(timeout):
        s, buf = key.fileobj, key.data
        try:
            data = s.recv(65536)
        except (BlockingIOError, ssl.SSLWantReadError):
            continue
        except OSError:
            sel.unregister(s)
            continue
        if not data:
            sel.unregister(s)
            continue
        buf += data
        if b"\r\n\r\n" in buf and (buf.endswith(b"hello\n")):
            if buf.startswith(b"HTTP/1.1 200"):
                done += 1
            sel.unregister(s)
    return done

# ---- driver ---------------------------------------------------------------------------------

def start_proxy(kind, root, workers, upstream, scenario, args):
    if kind in ("nginx", "nginx-h"):
        return NginxProxy(root, workers, upstream, scenario, gateway_headers=kind == "nginx-h")
    if kind == "haproxy":
        return HAProxy(root, workers, upstream, scenario)
    return Gateway(root, workers, upstream, scenario, args.gateway)


def run_scenario(name, args, root, upstream):
    workers = scenario_workers(name, args)
    path, extra, script = scenario_request(name, root)
    conns = scenario_conns(name, args)
    res = {"scenario": name, "workers": workers, "connections": conns, "path": path, "extra": extra,
           "duration": args.duration, "rounds": args.rounds, "proxies": {}}
    servers = {}
    kinds = proxies_for(name)
    try:
        for kind in kinds:
            t0 = time.monotonic()
            servers[kind] = start_proxy(kind, root, workers, upstream, name, args)
            servers[kind].wait_ready("/small" if name != "routes-10k" else path)
            res["proxies"][kind] = {"startup_s": round(time.monotonic() - t0, 2), "runs": []}
        if name in ("idle-10k", "idle-tls"):
            for kind in kinds:
                s = servers[kind]
                pids = s.pids()
                before = status_kb(pids, "VmRSS")
                t0 = time.monotonic()
                if name == "idle-tls":
                    socks, ok = idle_connections(s.tls_port, args.idle_tls, tls=tls_client_ctx())
                else:
                    socks, ok = idle_connections(s.port, args.idle)
                time.sleep(1.0)
                after = status_kb(s.pids(), "VmRSS")
                r = {"connections": len(socks), "ok": ok, "rss_before_kb": before, "rss_after_kb": after,
                     "kb_per_conn": round((after - before) / max(1, len(socks)), 3),
                     "open_s": round(time.monotonic() - t0, 2),
                     "peak_rss_kb": status_kb(s.pids(), "VmHWM")}
                for sk in socks:
                    sk.close()
                res["proxies"][kind].update(r)
                log(f"  {name} {kind}: {len(socks)} conns, {ok} ok, {r['kb_per_conn']} KiB/conn")
                time.sleep(0.5)
            return res
        # Warm-up: one short run each (pools, caches).
        for kind in kinds:
            drive(servers[kind], name, path, 1, conns, args.threads, extra, script)
        for rnd in range(args.rounds):
            for kind in kinds:
                s = servers[kind]
                pids = s.pids()
                up_pids = upstream.pids()
                c0, u0, m0 = cpu_split(pids), cpu_ticks(up_pids), machine_ticks()
                w = drive(s, name, path, args.duration, conns, args.threads, extra, script)
                c1, u1, m1 = cpu_split(s.pids()), cpu_ticks(upstream.pids()), machine_ticks()
                w["cpu_s"] = (sum(c1) - sum(c0)) / CLK_TCK
                w["cpu_s_per_100k"] = w["cpu_s"] / w["requests"] * 1e5 if w["requests"] else None
                w["breakdown_us"] = breakdown(w, c0, c1, u1 - u0, m0, m1)
                res["proxies"][kind]["runs"].append(w)
                log(f"  {name} round {rnd + 1} {kind}: {w['rps']:.0f} req/s p50 {w['p50_ms']} ms "
                    f"p99 {w['p99_ms']} ms cpu/100k {w['cpu_s_per_100k'] and round(w['cpu_s_per_100k'], 2)} "
                    f"non2xx {w['non2xx']} sockerr {w['socket_errors']}")
        for kind in kinds:
            p = res["proxies"][kind]
            runs = p["runs"]

            def med(key):
                vals = [r[key] for r in runs if r.get(key) is not None]
                return statistics.median(vals) if vals else None
            _, worker_rss, worker_private = largest_worker_kb(servers[kind].pids())
            p.update({"rps": med("rps"), "p50_ms": med("p50_ms"), "p99_ms": med("p99_ms"),
                      "cpu_s_per_100k": med("cpu_s_per_100k"), "breakdown_us": median_breakdown(runs),
                      "peak_rss_kb": status_kb(servers[kind].pids(), "VmHWM"),
                      # shared memory pages counted in RSS (the gateway's mem_cache_size area)
                      "rss_shmem_kb": status_kb(servers[kind].pids(), "RssShmem"),
                      "private_kb": private_kb(servers[kind].pids()),
                      "worker_rss_kb": worker_rss, "worker_private_kb": worker_private,
                      "non2xx": sum(r["non2xx"] for r in runs),
                      "socket_errors": sum(r["socket_errors"] for r in runs),
                      "processes": len(servers[kind].pids())})
            if kind == "gateway":
                p["worker_crashes"] = servers[kind].crashes()
            for r in runs:
                r.pop("raw", None) if not args.keep_raw else None
        return res
    finally:
        for s in servers.values():
            try:
                s.stop()
            except Exception as e:  # noqa: BLE001
                log(f"  stopping {s.name}: {e}")



def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gateway", default=os.path.join(HERE, "../../.build/release/gateway"))
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds per scenario (default 2)")
    ap.add_argument("--scenarios", default=",".join(ALL_SCENARIOS),
                    help="comma-separated subset of: " + ",".join(ALL_SCENARIOS))
    ap.add_argument("--connections", type=int, default=64, help="wrk connections (upload: <=16, close: <=32)")
    ap.add_argument("--threads", type=int, default=1, help="wrk threads (default 1: the box has few cores)")
    ap.add_argument("--workers", type=int, default=1, help="workers/threads per proxy except small-2w (2)")
    ap.add_argument("--upstream-workers", type=int, default=1)
    ap.add_argument("--idle", type=int, default=N_IDLE, help="idle connections in idle-10k")
    ap.add_argument("--idle-tls", type=int, default=N_IDLE_TLS, help="idle TLS connections in idle-tls")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--keep-raw", action="store_true", help="keep wrk output in the JSON")
    args = ap.parse_args()
    args.gateway = os.path.abspath(args.gateway)
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    for s in scenarios:
        if s not in ALL_SCENARIOS:
            ap.error(f"unknown scenario {s}")
    for tool in ("nginx", "haproxy", "wrk"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            ap.error(f"{tool} not found (apt-get install -y nginx haproxy wrk)")
    os.environ["PATH"] += ":/usr/sbin:/sbin"
    if not os.access(args.gateway, os.X_OK):
        ap.error(f"gateway binary {args.gateway} not found (swift build -c release)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # children (proxies, wrk) inherit it
    if hard < args.idle + 1000:
        log(f"warning: RLIMIT_NOFILE hard limit {hard} < {args.idle + 1000}; idle-10k may be cut short")

    meta = {"command": " ".join([os.path.basename(sys.executable)] + sys.argv), "cpus": os.cpu_count(),
            "load_before": open("/proc/loadavg").read().split()[:3],
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "duration": args.duration, "rounds": args.rounds, "threads": args.threads,
            "workers": args.workers, "connections": args.connections,
            "versions": {"nginx": subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip(),
                         "haproxy": subprocess.run(["haproxy", "-v"], capture_output=True,
                                                   text=True).stdout.splitlines()[0],
                         "wrk": subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()[0]
                         if subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout else "wrk"}}
    root = tempfile.mkdtemp(prefix="gwbench-")
    os.chmod(root, 0o755)
    results = []
    upstream = Upstream(root, args.upstream_workers)
    try:
        upstream.wait_ready()
        for name in scenarios:
            log(f"scenario {name}")
            t0 = time.monotonic()
            try:
                res = run_scenario(name, args, root, upstream)
                ratios(res)
            except Exception as e:  # noqa: BLE001 - one failing scenario must not lose the others
                log(f"  {name} failed: {e}")
                res = {"scenario": name, "error": str(e)}
            res["elapsed_s"] = round(time.monotonic() - t0, 1)
            results.append(res)
    finally:
        upstream.stop()
        shutil.rmtree(root, ignore_errors=True)
    meta["load_after"] = open("/proc/loadavg").read().split()[:3]
    meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "latest.json"), "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=1)
    md = markdown(results, meta)
    with open(os.path.join(args.out, "latest.md"), "w") as f:
        f.write(md)
    print(md)
    return 1 if any(r.get("error") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
