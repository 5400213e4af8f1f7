#!/usr/bin/env python3
"""Soak (issue #13): the gateway under mixed traffic and constant change for a long time.

For --duration seconds (default 1800) this drives, against a gateway started in a temporary prefix
with 2 workers:
  - traffic: keep-alive clients and new-connection clients, GET through an upstream with two
    targets and active health checks;
  - admin churn: a service, a route and a plugin created and deleted every ~300 ms, and a target
    added to / removed from a churn upstream;
  - `gateway reload` every 10 s;
  - a worker SIGKILLed every 60 s (the master replaces it);
  - one upstream target process killed every 45 s and restarted 5 s later (active checks on).

Accounting: a request that fails with a reset/EOF within 2 s of a worker SIGKILL, on a connection
opened before the kill, is counted as `lost_on_killed_worker` (a request in flight on a killed
process cannot be answered); every other failure is `unexpected` (must be 0). A keep-alive client
re-sends once when the server closed an idle reused connection before any byte of the response
(RFC 9112 9.3.1, as browsers do): `retried`. Master and worker RSS and open descriptors are sampled
after a warm-up and at the end. Python 3 standard library only.

    python3 tools/soak.py --duration 1800 [--gateway .build/release/gateway] [--report soak.json]
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
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))
from netutil import free_port  # noqa: E402

RESET = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError,
         http.client.IncompleteRead, http.client.BadStatusLine)


def serve_upstream(port, name):
    """Child process: a keep-alive HTTP/1.1 upstream answering GETs with its name."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *a):
            pass

        def do_GET(self):
            body = json.dumps({"upstream": name, "path": self.path}).encode()
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(body), body))

    class Server(ThreadingHTTPServer):
        allow_reuse_address = True
        daemon_threads = True

        def handle_error(self, request, client_address):
            pass   # connections reset by a killed worker are expected here

    Server(("127.0.0.1", port), H).serve_forever()


class Soak:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="gw-soak-")
        self.prefix = os.path.join(self.tmp, "prefix")
        self.proxy_port, self.admin_port = free_port(), free_port()
        self.conf = os.path.join(self.tmp, "gateway.conf")
        with open(self.conf, "w") as f:
            f.write(f"prefix = {self.prefix}\nproxy_listen = 127.0.0.1:{self.proxy_port}\n"
                    f"admin_listen = 127.0.0.1:{self.admin_port}\nstatus_listen = off\nworker_processes = 2\nlog_level = info\n"
                    "proxy_access_log = off\n")
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.kills = []            # monotonic times of worker SIGKILLs
        self.counts = {"ok": 0, "retried": 0, "lost_on_killed_worker": 0, "unexpected": 0, "reloads": 0,
                       "worker_kills": 0, "target_restarts": 0, "admin_writes": 0, "admin_errors": 0}
        self.errors = {}
        self.upstreams = {}
        self.target_ports = [free_port(), free_port()]

    # processes ---------------------------------------------------------------------------------
    def gw(self, *a, check=True):
        r = subprocess.run([self.args.gateway, *a, "-c", self.conf, "-p", self.prefix], capture_output=True, text=True,
                           timeout=60)
        if check and r.returncode != 0:
            raise RuntimeError(f"gateway {a}: {r.stdout}{r.stderr}")
        return r

    def start_upstream(self, i):
        self.upstreams[i] = subprocess.Popen([sys.executable, __file__, "--serve-upstream", str(self.target_ports[i]), f"t{i}"])
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.target_ports[i]), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("upstream did not start")

    def admin(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.admin_port}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def master_pid(self):
        with open(os.path.join(self.prefix, "pids", "gateway.pid")) as f:
            return int(f.read())

    def worker_pids(self):
        try:
            with open(os.path.join(self.prefix, "pids", "workers")) as f:
                return [int(x) for x in f.read().split()]
        except (FileNotFoundError, ValueError):
            return []

    @staticmethod
    def proc(pid):
        try:
            with open(f"/proc/{pid}/status") as f:
                rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
            return {"pid": pid, "rss_kib": rss, "fds": len(os.listdir(f"/proc/{pid}/fd"))}
        except (FileNotFoundError, StopIteration, ProcessLookupError):
            return None

    def sample(self):
        return {"master": self.proc(self.master_pid()), "workers": [p for p in map(self.proc, self.worker_pids()) if p]}

    # accounting --------------------------------------------------------------------------------
    def near_kill(self, opened):
        now = time.monotonic()
        with self.lock:
            return any(opened is not None and opened <= k <= now and now - k < 2.0 for k in self.kills)

    def record(self, ok, why=None, opened=None):
        with self.lock:
            if ok:
                self.counts["ok"] += 1
                return
            now = time.monotonic()
            near_kill = any(opened is not None and opened <= k <= now and now - k < 2.0 for k in self.kills)
            if near_kill and why in ("reset", "eof"):
                self.counts["lost_on_killed_worker"] += 1
            else:
                self.counts["unexpected"] += 1
                self.errors[why] = self.errors.get(why, 0) + 1

    # drivers -----------------------------------------------------------------------------------
    def keepalive_client(self):
        conn, opened, reused = None, None, False
        while not self.stop.is_set():
            if conn is None:
                conn, opened, reused = http.client.HTTPConnection("127.0.0.1", self.proxy_port, timeout=10), time.monotonic(), False
            for attempt in (0, 1):
                try:
                    conn.request("GET", "/soak")
                    r = conn.getresponse()
                    body = r.read()
                    ok = r.status == 200 and b'"upstream"' in body
                    self.record(ok, None if ok else f"status {r.status}", opened)
                    if r.getheader("Connection", "").lower() == "close":
                        conn.close()
                        conn = None
                    else:
                        reused = True
                    break
                except RESET as e:
                    conn.close()
                    # A reused idle connection the server closed as the request was sent shows as EOF,
                    # or as a reset when the request bytes were still unread at close.
                    if attempt == 0 and reused and not self.near_kill(opened) and \
                            isinstance(e, (http.client.RemoteDisconnected, ConnectionResetError)):
                        with self.lock:
                            self.counts["retried"] += 1
                        conn, reused = http.client.HTTPConnection("127.0.0.1", self.proxy_port, timeout=10), False
                        continue
                    self.record(False, "eof" if isinstance(e, http.client.RemoteDisconnected) else "reset", opened)
                    conn = None
                    break
                except OSError as e:
                    conn.close()
                    conn = None
                    self.record(False, type(e).__name__, opened)
                    break

    def fresh_client(self):
        while not self.stop.is_set():
            opened = time.monotonic()
            c = http.client.HTTPConnection("127.0.0.1", self.proxy_port, timeout=10)
            try:
                c.request("GET", "/soak", headers={"Connection": "close"})
                r = c.getresponse()
                body = r.read()
                ok = r.status == 200 and b'"upstream"' in body
                self.record(ok, None if ok else f"status {r.status}", opened)
            except RESET as e:
                self.record(False, "eof" if isinstance(e, http.client.RemoteDisconnected) else "reset", opened)
            except OSError as e:
                self.record(False, type(e).__name__, opened)
            finally:
                c.close()

    def churn(self):
        n = 0
        while not self.stop.is_set():
            n += 1
            name = f"churn{n}"
            writes = [("POST", "/services", {"name": name, "url": "http://churn_up/"}),
                      ("POST", f"/services/{name}/routes", {"name": name, "paths": [f"/{name}"]}),
                      ("POST", f"/services/{name}/plugins", {"name": "rate-limiting", "config": {"minute": 1000}}),
                      ("POST", "/upstreams/churn_up/targets", {"target": f"127.0.0.{(n % 200) + 2}:80"})]
            for m, p, b in writes:
                s, _ = self.admin(m, p, b)
                with self.lock:
                    self.counts["admin_writes"] += 1
                    self.counts["admin_errors"] += s >= 300
            time.sleep(0.3)
            if n > 1:
                old = f"churn{n - 1}"
                for m, p in [("DELETE", f"/routes/{old}"), ("DELETE", f"/services/{old}"),
                             ("DELETE", f"/upstreams/churn_up/targets/127.0.0.{((n - 1) % 200) + 2}:80")]:
                    s, _ = self.admin(m, p)
                    with self.lock:
                        self.counts["admin_writes"] += 1
                        self.counts["admin_errors"] += s >= 300
            time.sleep(0.3)

    def every(self, seconds, action):
        while not self.stop.wait(seconds):
            action()

    def reload(self):
        self.gw("reload", check=False)
        with self.lock:
            self.counts["reloads"] += 1

    def kill_worker(self):
        pids = self.worker_pids()
        if not pids:
            return
        with self.lock:
            self.kills.append(time.monotonic())
            self.counts["worker_kills"] += 1
        try:
            os.kill(pids[0], signal.SIGKILL)
        except ProcessLookupError:
            pass

    def restart_target(self):
        p = self.upstreams[0]
        p.kill()
        p.wait()
        if self.stop.wait(5):
            return
        self.start_upstream(0)
        with self.lock:
            self.counts["target_restarts"] += 1

    # run ---------------------------------------------------------------------------------------
    def run(self):
        for i in (0, 1):
            self.start_upstream(i)
        self.gw("start")
        try:
            checks = {"active": {"http_path": "/", "healthy": {"interval": 1, "successes": 1},
                                 "unhealthy": {"interval": 1, "tcp_failures": 1, "timeouts": 2, "http_failures": 1}}}
            assert self.admin("POST", "/upstreams", {"name": "soak_up", "healthchecks": checks})[0] == 201
            for port in self.target_ports:
                assert self.admin("POST", "/upstreams/soak_up/targets", {"target": f"127.0.0.1:{port}"})[0] == 201
            assert self.admin("POST", "/upstreams", {"name": "churn_up"})[0] == 201
            assert self.admin("POST", "/services", {"name": "soak", "host": "soak_up", "retries": 5})[0] == 201
            assert self.admin("POST", "/services/soak/routes", {"paths": ["/soak"]})[0] == 201
            deadline = time.time() + 10
            while time.time() < deadline:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{self.proxy_port}/soak", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    time.sleep(0.1)
            threads = [threading.Thread(target=self.keepalive_client, daemon=True) for _ in range(self.args.keepalive)]
            threads += [threading.Thread(target=self.fresh_client, daemon=True) for _ in range(self.args.fresh)]
            side = [threading.Thread(target=self.churn, daemon=True),
                    threading.Thread(target=self.every, args=(10, self.reload), daemon=True),
                    threading.Thread(target=self.every, args=(60, self.kill_worker), daemon=True),
                    threading.Thread(target=self.every, args=(45, self.restart_target), daemon=True)]
            for t in threads + side:
                t.start()
            # Warm-up with everything running (caches, pools and the store reach their working size),
            # then the first sample; the run's figures are from here to the end.
            warmup = max(20, self.args.duration // 10)
            time.sleep(warmup)
            start = self.sample()
            gen0 = self.generation()
            t0 = time.time()
            samples, next_sample = [], 0.0
            while time.time() - t0 < self.args.duration:
                time.sleep(5)
                if time.time() - t0 >= next_sample:
                    m = self.proc(self.master_pid())
                    samples.append([round(time.time() - t0), m and m["rss_kib"], m and m["fds"]])
                    next_sample += max(30, self.args.duration / 30)
                if self.args.verbose:
                    print(json.dumps(self.counts), flush=True)
            self.stop.set()
            for t in side + threads:
                t.join(timeout=15)
            time.sleep(3)   # let the churn settle, then compare memory
            end = self.sample()
            report = {"duration_s": self.args.duration, "warmup_s": warmup, "master_rss_kib_fds_over_time": samples, "counts": self.counts, "unexpected_errors": self.errors,
                      "generations_applied": self.generation() - gen0, "start": start, "end": end}
            report["master_rss_growth_pct"] = round(100.0 * (end["master"]["rss_kib"] - start["master"]["rss_kib"])
                                                    / start["master"]["rss_kib"], 2)
            report["master_fd_delta"] = end["master"]["fds"] - start["master"]["fds"]
            sw = sorted(w["rss_kib"] for w in start["workers"])
            ew = sorted(w["rss_kib"] for w in end["workers"])
            report["worker_rss_kib_start_end"] = [sw, ew]
            report["worker_fds_start_end"] = [sorted(w["fds"] for w in start["workers"]), sorted(w["fds"] for w in end["workers"])]
            return report
        finally:
            self.stop.set()
            self.gw("stop", check=False)
            for p in self.upstreams.values():
                p.kill()
            if not self.args.keep:
                shutil.rmtree(self.tmp, ignore_errors=True)

    def generation(self):
        """The last configuration generation the master published (from its error log)."""
        import re
        try:
            with open(os.path.join(self.prefix, "logs", "error.log")) as f:
                found = re.findall(r"published configuration generation (\d+)", f.read())
            return int(found[-1]) if found else 0
        except FileNotFoundError:
            return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=1800)
    ap.add_argument("--gateway", default=os.path.join(ROOT, ".build/release/gateway"))
    ap.add_argument("--keepalive", type=int, default=4)
    ap.add_argument("--fresh", type=int, default=2)
    ap.add_argument("--report", default=None)
    ap.add_argument("--keep", action="store_true", help="keep the temporary prefix")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--serve-upstream", nargs=2, metavar=("PORT", "NAME"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve_upstream:
        serve_upstream(int(a.serve_upstream[0]), a.serve_upstream[1])
        return 0
    report = Soak(a).run()
    out = json.dumps(report, indent=2)
    print(out)
    if a.report:
        with open(a.report, "w") as f:
            f.write(out + "\n")
    ok = report["counts"]["unexpected"] == 0 and report["master_fd_delta"] <= 0 + 2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
