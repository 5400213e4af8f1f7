#!/usr/bin/env python3
"""Times GET /metrics with a large metrics table: N services (one route each) × C status codes, every
prometheus flag on (issue #16: 1,000 services × 10 status codes must answer in < 50 ms).

  python3 tools/metrics_scrape.py --gateway .build/release/gateway [--services 1000] [--codes 10] [--scrapes 20]

Starts one gateway (2 workers, DB-less, the configuration posted to /config) and an upstream that answers
with the status named by the path (/200, /404, ...), sends one keep-alive request per (service, code),
then times the scrapes (wall clock of the whole HTTP exchange, from this client) and prints the median,
the best, the worst and the body size. Not part of make test."""
import argparse
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from netutil import free_port  # noqa: E402  (tools/ is on sys.path when run as a script)


class StatusUpstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        code = int(self.path.strip("/").split("/")[-1] or 200)
        body = b"x" * 16
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gateway", default=".build/release/gateway")
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--codes", type=int, default=10)
    ap.add_argument("--scrapes", type=int, default=20)
    args = ap.parse_args()
    codes = [200, 201, 202, 204, 301, 302, 400, 401, 403, 404, 409, 418, 429, 500, 502, 503][:args.codes]
    root = tempfile.mkdtemp(prefix="gwscrape-")
    up = ThreadingHTTPServer(("127.0.0.1", 0), StatusUpstream)
    up.daemon_threads = True
    threading.Thread(target=up.serve_forever, daemon=True).start()
    port, admin = free_port(), free_port()
    conf = os.path.join(root, "gateway.conf")
    with open(conf, "w") as f:
        f.write(f"prefix = {root}/prefix\nproxy_listen = 127.0.0.1:{port}\nadmin_listen = 127.0.0.1:{admin}\n"
                f"status_listen = off\nworker_processes = 2\nproxy_access_log = off\nlog_level = error\n"
                f"database = off\nprometheus_metrics_size = 16m\n")
    subprocess.run([os.path.abspath(args.gateway), "start", "-c", conf, "-p", f"{root}/prefix"], check=True)
    try:
        doc = {"_format_version": "3.0",
               "services": [{"name": f"service-{i:04d}", "url": f"http://127.0.0.1:{up.server_port}",
                             "routes": [{"name": f"route-{i:04d}", "paths": [f"/s{i:04d}/"]}]}
                            for i in range(args.services)],
               "plugins": [{"name": "prometheus", "config": {"status_code_metrics": True, "latency_metrics": True,
                                                              "bandwidth_metrics": True}}]}
        c = http.client.HTTPConnection("127.0.0.1", admin, timeout=120)
        c.request("POST", "/config", json.dumps(doc), {"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        assert r.status in (200, 201), r.status
        pc = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        deadline = time.time() + 60
        while True:
            pc.request("GET", f"/s{args.services - 1:04d}/200")
            r = pc.getresponse()
            r.read()
            if r.status == 200 or time.time() > deadline:
                break
            time.sleep(0.1)
        for i in range(args.services):
            for code in codes:
                pc.request("GET", f"/s{i:04d}/{code}")
                pc.getresponse().read()
        times = []
        heads = []
        size = 0
        for _ in range(args.scrapes):
            t0 = time.perf_counter()
            c.request("GET", "/metrics")
            r = c.getresponse()
            heads.append((time.perf_counter() - t0) * 1000)
            body = r.read()
            times.append((time.perf_counter() - t0) * 1000)
            size = len(body)
            assert r.status == 200
        series = sum(1 for l in body.split(b"\n") if l.startswith(b"kong_http_requests_total{"))
        print(f"{args.services} services x {len(codes)} codes: {series} kong_http_requests_total series, "
              f"{size} bytes; GET /metrics median {statistics.median(times):.1f} ms, "
              f"best {min(times):.1f} ms, worst {max(times):.1f} ms over {args.scrapes} scrapes "
              f"(head received after {statistics.median(heads):.1f} ms median: the master's work)")
    finally:
        subprocess.run([os.path.abspath(args.gateway), "stop", "-c", conf, "-p", f"{root}/prefix"])
        up.shutdown()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
