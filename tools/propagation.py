#!/usr/bin/env python3
"""Route propagation latency: time from an Admin API 201 (POST /services/{s}/routes) until N consecutive
new-connection proxy requests to the new path all return 200 (so, with SO_REUSEPORT spreading
connections, every worker serves it). Python 3 stdlib only.

  python3 tools/propagation.py [--bin .build/release/gateway] [--workers 2] [--routes 200] [--consecutive 20]
                               [--big 10000]

Each phase also adds routes with no traffic and times the 201 until every worker's shared-memory slot
(GET /status, server.workers[].config_generation) shows the new generation.

Phase 1: --routes routes on an empty configuration, p50/p99/max.
Phase 2: --big routes pre-created with `gateway config db_import` before start, then a few more routes
measured the same way (and the publish time from error.log).

Cross-node mode (issue #15), instead of the phases above:

  python3 tools/propagation.py --nodes 3 [--routes 200] [--writes 500] [--writers 4]

starts a private PostgreSQL (Tests/integration/pgserver.py), N nodes on it, adds --routes routes on node A
and times A's 201 until every worker of node B serves the route (--consecutive new-connection 200s in a
row on B; and until B's first 200), then the Admin API write throughput (POST /services, --writes per
run, 1 and --writers concurrent clients) on PostgreSQL and on the embedded SQLite."""
import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


from netutil import free_port  # noqa: E402  (tools/ is on sys.path when run as a script)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        # One write: head and body in separate small writes would stall ~40 ms on a reused upstream
        # connection (Nagle here + delayed ACK in the gateway) and swamp what is measured.
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


class Server(ThreadingHTTPServer):
    resets = 0

    def handle_error(self, request, client_address):
        Server.resets += 1     # the gateway closing a pooled connection abruptly; counted, not printed


def start_upstream():
    Server.allow_reuse_address = True
    srv = Server(("127.0.0.1", free_port()), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


class GW:
    def __init__(self, binary, tmp, workers, extra=None):
        self.bin = binary
        os.makedirs(tmp, exist_ok=True)
        self.prefix = os.path.join(tmp, "prefix")
        self.conf = os.path.join(tmp, "gateway.conf")
        self.proxy = free_port()
        self.admin_port = free_port()
        with open(self.conf, "w") as f:
            f.write(f"prefix = {self.prefix}\nproxy_listen = 127.0.0.1:{self.proxy}\n"
                    f"admin_listen = 127.0.0.1:{self.admin_port}\nstatus_listen = off\nadmin_gui_listen = off\nworker_processes = {workers}\nlog_level = info\n")
            for k, v in (extra or {}).items():
                f.write(f"{k} = {v}\n")

    def cli(self, *args):
        r = subprocess.run([self.bin, *args, "-c", self.conf, "-p", self.prefix], capture_output=True, text=True,
                           timeout=600)
        if r.returncode != 0:
            raise SystemExit(f"gateway {' '.join(args)} failed: {r.stdout}{r.stderr}")
        return r

    def admin(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.admin_port}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def status(self, path):
        """One request on a new connection."""
        s = socket.create_connection(("127.0.0.1", self.proxy), timeout=10)
        try:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            line = b""
            while b"\r\n" not in line:
                chunk = s.recv(256)
                if not chunk:
                    break
                line += chunk
            return int(line.split(b" ", 2)[1])
        finally:
            s.close()

    def log(self):
        try:
            with open(os.path.join(self.prefix, "logs", "error.log")) as f:
                return f.read()
        except FileNotFoundError:
            return ""


def all_workers_applied(gw, timeout=30.0):
    """Seconds until every worker's shared-memory slot reports the master's current generation (GET /status;
    idle workers apply on their channel wake-up, busy ones before their next request)."""
    t0 = time.perf_counter()
    while True:
        st, body = gw.admin("GET", "/status")
        srv = body["server"]
        if srv["workers"] and all(w["config_generation"] >= srv["config_generation"] for w in srv["workers"]):
            return time.perf_counter() - t0
        if time.perf_counter() - t0 > timeout:
            raise SystemExit("workers did not apply the generation in time")
        time.sleep(0.0005)      # polling flat out would take CPU from the workers on a small machine


APPLIED = []


def measure(gw, path, consecutive, timeout=30.0):
    """POST a route for `path`; seconds from the 201 until `consecutive` 200s in a row, and how many
    non-200s were seen before that. Before the traffic: the time until every worker applied it."""
    tp = time.perf_counter()
    st, body = gw.admin("POST", "/services/prop/routes", {"paths": [path]})
    POSTS.append(time.perf_counter() - tp)
    if st != 201:
        raise SystemExit(f"POST route: {st} {body}")
    if MEASURE_APPLIED:
        APPLIED.append(all_workers_applied(gw))
        return None
    t0 = time.perf_counter()
    run, misses, first = 0, 0, None
    while run < consecutive:
        if gw.status(path) == 200:
            run += 1
            if first is None:
                first = time.perf_counter() - t0
        else:
            run = 0
            misses += 1
        if time.perf_counter() - t0 > timeout:
            raise SystemExit(f"{path}: not served by all workers after {timeout}s")
    return time.perf_counter() - t0, misses, first


def baseline(gw, path, n):
    """Seconds for n new-connection requests to an existing route (the floor of `measure`)."""
    t0 = time.perf_counter()
    for _ in range(n):
        assert gw.status(path) == 200
    return time.perf_counter() - t0


POSTS = []


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def report(name, xs, misses, firsts, base):
    ms = [x * 1000 for x in xs]
    fm = [x * 1000 for x in firsts]
    print(f"{name}: n={len(ms)}\n"
          f"  201 -> {CONSEC} consecutive 200s: p50={pct(ms, 50):.2f} ms p99={pct(ms, 99):.2f} ms max={max(ms):.2f} ms "
          f"(floor: {CONSEC} requests on an existing route take {base * 1000:.2f} ms)\n"
          f"  201 -> first 200: p50={pct(fm, 50):.2f} ms p99={pct(fm, 99):.2f} ms max={max(fm):.2f} ms\n"
          f"  requests answered non-200 after the 201: {sum(misses)} (routes with any: {sum(1 for m in misses if m)})")
    pm = [x * 1000 for x in POSTS[-len(xs):]]
    print(f"  POST round trip (includes the synchronous publish): p50={pct(pm, 50):.2f} ms max={max(pm):.2f} ms")


def measure_applied(gw, paths):
    """Routes added with no traffic: 201 -> every worker's slot shows the new generation."""
    global MEASURE_APPLIED
    MEASURE_APPLIED = True
    del APPLIED[:]
    for p in paths:
        measure(gw, p, 0)
    MEASURE_APPLIED = False
    ms = [x * 1000 for x in APPLIED]
    print(f"  201 -> every worker applied the generation (GET /status polled, no traffic): n={len(ms)} "
          f"p50={pct(ms, 50):.2f} ms p99={pct(ms, 99):.2f} ms max={max(ms):.2f} ms")


MEASURE_APPLIED = False


def publish_times(gw):
    return [int(m) for m in re.findall(r"published configuration generation \d+ \(\d+ bytes, (\d+) ms", gw.log())]


def write_throughput(gw, n, writers, tag):
    """POST /services n times (names unique per run) from `writers` threads; writes per second."""
    per = n // writers
    errors = []

    def run(w):
        for i in range(per):
            st, body = gw.admin("POST", "/services", {"name": f"{tag}-{w}-{i}", "url": "http://127.0.0.1:9"})
            if st != 201:
                errors.append((st, body))

    ts = [threading.Thread(target=run, args=(w,)) for w in range(writers)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    dt = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"writes failed: {errors[:3]}")
    return per * writers / dt


def cluster(a, addr, tmp):
    import sys
    sys.path.insert(0, os.path.join(ROOT, "Tests", "integration"))
    from pgserver import PGServer
    pg = PGServer()
    gws = []
    try:
        db = pg.database()
        settings = pg.settings(db)
        nodes = [GW(a.bin, os.path.join(tmp, f"node{i}"), a.workers, settings) for i in range(a.nodes)]
        nodes[0].cli("migrations", "bootstrap")
        for g in nodes:
            g.cli("start")
            gws.append(g)
        A, B = nodes[0], nodes[1]
        assert A.admin("POST", "/services", {"name": "prop", "url": f"http://{addr}"})[0] == 201
        times, firsts, misses = [], [], []
        for i in range(a.routes):
            st, body = A.admin("POST", "/services/prop/routes", {"paths": [f"/c{i}"]})
            if st != 201:
                raise SystemExit(f"POST route: {st} {body}")
            t0 = time.perf_counter()
            run, miss, first = 0, 0, None
            while run < a.consecutive:
                if B.status(f"/c{i}") == 200:
                    run += 1
                    if first is None:
                        first = time.perf_counter() - t0
                else:
                    run, miss = 0, miss + 1
                if time.perf_counter() - t0 > 30:
                    raise SystemExit(f"/c{i} not served by node B after 30 s")
            times.append(time.perf_counter() - t0)
            firsts.append(first)
            misses.append(miss)
        base = min(baseline(B, "/c0", a.consecutive) for _ in range(5))
        ms = [x * 1000 for x in times]
        fm = [x * 1000 for x in firsts]
        print(f"{a.nodes} nodes x {a.workers} workers on one PostgreSQL, {a.routes} routes created on node A:")
        print(f"  A's 201 -> B's first 200: p50={pct(fm, 50):.2f} ms p99={pct(fm, 99):.2f} ms max={max(fm):.2f} ms")
        print(f"  A's 201 -> {a.consecutive} consecutive new-connection 200s on B (every worker): "
              f"p50={pct(ms, 50):.2f} ms p99={pct(ms, 99):.2f} ms max={max(ms):.2f} ms "
              f"(floor: {a.consecutive} requests on an existing route take {base * 1000:.2f} ms)")
        print(f"  requests B answered 404 after A's 201: {sum(misses)} (routes with any: {sum(1 for m in misses if m)})")
        for w in (1, a.writers):
            print(f"  Admin API writes on PostgreSQL, {w} client(s): {write_throughput(A, a.writes, w, f'pg{w}'):.0f}/s")
        sq = GW(a.bin, os.path.join(tmp, "sqlite"), a.workers)
        sq.cli("start")
        gws.append(sq)
        for w in (1, a.writers):
            print(f"  Admin API writes on SQLite,     {w} client(s): {write_throughput(sq, a.writes, w, f'sq{w}'):.0f}/s")
    finally:
        for g in gws:
            subprocess.run([g.bin, "stop", "-c", g.conf, "-p", g.prefix], capture_output=True)
        pg.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, ".build/release/gateway"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--routes", type=int, default=200)
    ap.add_argument("--consecutive", type=int, default=20)
    ap.add_argument("--big", type=int, default=10000)
    ap.add_argument("--big-samples", type=int, default=5)
    ap.add_argument("--nodes", type=int, default=0, help="cross-node mode on a private PostgreSQL (>= 2)")
    ap.add_argument("--writes", type=int, default=500)
    ap.add_argument("--writers", type=int, default=4)
    a = ap.parse_args()
    global CONSEC
    CONSEC = a.consecutive
    up = start_upstream()
    addr = f"127.0.0.1:{up.server_address[1]}"
    tmp = tempfile.mkdtemp(prefix="gw-prop-")
    gws = []
    if a.nodes:
        if a.nodes < 2:
            raise SystemExit("--nodes needs at least 2")
        try:
            cluster(a, addr, tmp)
        finally:
            up.shutdown()
            shutil.rmtree(tmp, ignore_errors=True)
        return
    try:
        # Phase 1 --------------------------------------------------------------------------------
        gw = GW(a.bin, os.path.join(tmp, "small"), a.workers)
        gws.append(gw)
        gw.cli("start")
        assert gw.admin("POST", "/services", {"name": "prop", "url": f"http://{addr}"})[0] == 201
        times, misses, firsts = [], [], []
        for i in range(a.routes):
            t, m, f1 = measure(gw, f"/p{i}", a.consecutive)
            times.append(t)
            misses.append(m)
            firsts.append(f1)
        base = min(baseline(gw, "/p0", a.consecutive) for _ in range(5))
        print(f"gateway {a.bin}, {a.workers} workers, {a.consecutive} consecutive new-connection 200s required")
        report(f"empty config, {a.routes} routes added one by one", times, misses, firsts, base)
        measure_applied(gw, [f"/q{i}" for i in range(a.routes)])
        pt = publish_times(gw)
        if pt:
            print(f"  master publish time per generation: p50={pct(pt, 50)} ms max={max(pt)} ms")
        gw.cli("stop")
        gws.remove(gw)

        # Phase 2 --------------------------------------------------------------------------------
        if a.big:
            d = os.path.join(tmp, "big")
            os.makedirs(d, exist_ok=True)
            gw = GW(a.bin, d, a.workers)
            yml = os.path.join(d, "big.yml")
            with open(yml, "w") as f:
                f.write('_format_version: "3.0"\nservices:\n')
                f.write(f"- name: prop\n  url: http://{addr}\n  routes:\n")
                for i in range(a.big):
                    f.write(f"  - name: r{i}\n    paths: [\"/big/{i}\"]\n")
            t0 = time.perf_counter()
            gw.cli("config", "db_import", yml)
            t_import = time.perf_counter() - t0
            t0 = time.perf_counter()
            gw.cli("start")
            gws.append(gw)
            while gw.status(f"/big/{a.big - 1}") != 200:
                time.sleep(0.01)
            t_start = time.perf_counter() - t0
            print(f"{a.big} routes: db_import {t_import:.2f} s, start until last route served {t_start:.2f} s")
            times, misses, firsts = [], [], []
            for i in range(a.big_samples):
                t0 = time.perf_counter()
                t, m, f1 = measure(gw, f"/extra{i}", a.consecutive)
                times.append(t)
                misses.append(m)
                firsts.append(f1)
            base = min(baseline(gw, "/extra0", a.consecutive) for _ in range(3))
            report(f"{a.big} routes pre-created, {a.big_samples} more routes", times, misses, firsts, base)
            measure_applied(gw, [f"/extra-q{i}" for i in range(a.big_samples)])
            pt = publish_times(gw)
            if pt:
                print(f"  master publish time per generation: last {pt[-a.big_samples:]} ms")
            log = gw.log().splitlines()
            for line in [l for l in log if "published configuration generation" in l][-2:]:
                print("  master:", line.split("published ", 1)[1])
            for line in [l for l in log if "built: parse" in l or "applied in" in l][-4:]:
                print("  worker:", line.split("configuration ", 1)[1])
            gw.cli("stop")
            gws.remove(gw)
    finally:
        for g in gws:
            subprocess.run([g.bin, "stop", "-c", g.conf, "-p", g.prefix], capture_output=True)
        print(f"upstream saw {Server.resets} connections reset by the gateway")
        up.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
