#!/usr/bin/env python3
"""Instructions, allocations and syscalls per request of one gateway worker (repeatable figures).

Starts the bench upstream (Debian nginx) and the gateway with one worker (access log off, one
service + route "/" as in bench.py), then sends an exact number of keep-alive requests from a small
client (C connections, one request in flight per connection, wrk's request: method, path, Host):

  * --mode callgrind (default): the gateway runs under `valgrind --tool=callgrind`; after a warm-up
    the worker's counters are zeroed (callgrind_control -z), N requests are sent, the counters are
    dumped. Reported: instructions (Ir) per request, calls per request of malloc / free /
    swift_allocObject / swift_retain / swift_release, top functions by self Ir (callgrind_annotate).
    Instruction counts do not depend on the machine's load.
  * --mode strace: the gateway runs normally; `strace -c -f` is attached to the worker while N
    requests are sent: syscalls per request.

Usage: python3 tools/bench/callgrind.py --gateway .build/release/gateway [--mode callgrind|strace]
       [--requests 20000] [--connections 8] [--path /small] [--algorithm consistent-hashing]
       [--out tools/bench/results/profile] [--nginx both|plain|headers|off] [--tls [1.2|1.3]]

With no plugin and no upstream entity, the same requests are then sent to nginx (Debian's) as a
reverse proxy in one process under the same callgrind method, plain and with the headers the gateway
adds by default, and the gateway/nginx ratios are printed (--nginx picks which; off skips it).
"""
import argparse
import json
import os
import re
import selectors
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import servers  # noqa: E402


def drive(port, path, total, conns, headers="", tls=None):
    """Sends `total` GET requests over `conns` keep-alive connections (over TLS with the client context
    `tls`: handshakes first, then the requests); returns the 2xx count."""
    req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}\r\n".encode()
    sel = selectors.DefaultSelector()
    left = total
    ok = 0
    done = 0
    state = {}
    for _ in range(min(conns, total)):
        s = socket.create_connection(("127.0.0.1", port), timeout=120)
        if tls:
            s = tls.wrap_socket(s, server_hostname="localhost")
        s.setblocking(False)
        state[s] = bytearray()
        s.send(req)
        left -= 1
        sel.register(s, selectors.EVENT_READ)
    while done < total:
        for key, _ in sel.select(timeout=30):
            s = key.fileobj
            try:
                data = s.recv(65536)
            except ssl.SSLWantReadError:   # a TLS record not complete yet
                continue
            if not data:
                raise RuntimeError("connection closed by the gateway")
            buf = state[s]
            buf += data
            while True:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    break
                head = bytes(buf[:end])
                m = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.I)
                n = int(m.group(1)) if m else 0
                if len(buf) < end + 4 + n:
                    break
                del buf[:end + 4 + n]
                done += 1
                if head.startswith(b"HTTP/1.1 2"):
                    ok += 1
                if left > 0:
                    s.send(req)
                    left -= 1
    for s in list(state):
        sel.unregister(s)
        s.close()
    return ok


def write_conf(d, port, admin_port, upstream_port, access_log="off", extra=None, tls_port=None):
    conf = os.path.join(d, "gateway.conf")
    with open(conf, "w") as f:
        for k, v in (extra or {}).items():
            f.write(f"{k} = {v}\n")
        tls = f", 127.0.0.1:{tls_port} ssl reuseport backlog=16384" if tls_port else ""
        f.write(f"prefix = {d}/prefix\nproxy_listen = 127.0.0.1:{port} reuseport backlog=16384{tls}\n"
                f"admin_listen = 127.0.0.1:{admin_port}\nstatus_listen = off\nworker_processes = 1\nproxy_access_log = off\n"
                f"log_level = error\n")
        if access_log != "off":
            f.write(f"proxy_access_log = {d}/access.log\nproxy_access_log_format = {access_log}\n")
    return conf


NGINX_GATEWAY_HEADERS = servers.NGINX_GATEWAY_HEADERS   # the "nginx doing the same work"


def nginx_conf(d, port, upstream_port, headers):
    """nginx as the bench's reverse proxy (upstream keepalive, HTTP/1.1), one process (master_process
    off: the same request path as a worker, nothing forked, so callgrind profiles one process)."""
    os.makedirs(f"{d}/tmp", exist_ok=True)
    path = f"{d}/nginx-proxy.conf"
    with open(path, "w") as f:
        f.write(f"""
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx-proxy.pid;
error_log {d}/nginx-proxy.error.log error;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    {servers.NGINX_TEMP.format(d=d)}
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    upstream up {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";{NGINX_GATEWAY_HEADERS if headers else ""}
        }}
    }}
}}
""")
    return path


def profile_nginx(root, upstream_port, args, headers, label):
    """Instructions per request of nginx under the same callgrind method; returns (Ir/request, lines)."""
    d = os.path.join(root, f"nginx-{label}")
    os.makedirs(d)
    (port,) = bench.free_ports(1)
    conf = nginx_conf(d, port, upstream_port, headers)
    out = os.path.join(d, "callgrind.out")
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", "--compress-strings=no", "--compress-pos=no",
                             f"--callgrind-out-file={out}", "nginx", "-p", d, "-c", conf],
                            stdout=subprocess.DEVNULL, stderr=open(f"{d}/stderr", "w"), start_new_session=True)
    try:
        bench.wait_until(lambda: bench.http_get(port, args.path, timeout=10)[0] == 200, timeout=120,
                         what=f"nginx ({label})")
        drive(port, args.path, 2000, args.connections)
        subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True)
        ok = drive(port, args.path, args.requests, args.connections)
        subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True)
        time.sleep(1)
        dumps = sorted(f for f in os.listdir(d) if f.startswith("callgrind.out."))
        if not dumps:
            raise RuntimeError(f"no nginx dump in {d}: {os.listdir(d)}")
        total_ir, calls, _ = parse_dump(os.path.join(d, dumps[-1]))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    per = total_ir / args.requests
    allocs = sum(v for k, v in calls.items() if k in ("malloc", "calloc", "realloc")) / args.requests
    return per, f"nginx 1 process, {label}: {per:,.0f} instructions per request ({ok} 2xx), " \
                f"malloc+calloc+realloc calls/request {allocs:.2f}"


def log_collectors():
    """Local receivers for the logging plugins: a TCP drain, a UDP socket, an HTTP server answering 200."""
    import http.server
    import threading
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(16)

    def drain(c):
        while c.recv(1 << 20):
            pass

    def accept():
        while True:
            c, _ = tcp.accept()
            threading.Thread(target=drain, args=(c,), daemon=True).start()
    threading.Thread(target=accept, daemon=True).start()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    threading.Thread(target=lambda: [udp.recv(65536) for _ in iter(int, 1)], daemon=True).start()

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return tcp.getsockname()[1], udp.getsockname()[1], srv.server_address[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gateway", default=os.path.join(bench.HERE, "../../.build/release/gateway"))
    ap.add_argument("--mode", choices=("callgrind", "strace"), default="callgrind")
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--path", default="/small")
    ap.add_argument("--out", default=os.path.join(bench.HERE, "results", "profile"))
    ap.add_argument("--top", type=int, default=35)
    ap.add_argument("--plugins", default="",
                    help="comma-separated global plugins: key-auth (a consumer, its key sent in apikey), "
                         "ip-restriction (deny 2 entries, allow 3: the client matches the last), bot-detection "
                         "(default rules; send a User-Agent with --request-header), correlation-id (uuid#counter), "
                         "request-termination (200 {\"message\":\"ok\"}), "
                         "rate-limiting (hour = 10^9), rate-limiting-cluster (the same with policy cluster; "
                         "needs --postgres), proxy-cache (text/plain cached: requests are hits), "
                         "file-log, tcp-log, udp-log, http-log (to local receivers; http-log with its default "
                         "queue: one POST per entry), prometheus (every metrics flag on)")
    ap.add_argument("--plugin-json", action="append", default=[],
                    help="a global plugin as the JSON body of POST /plugins, e.g. "
                         "'{\"name\": \"correlation-id\", \"config\": {\"generator\": \"uuid\"}}' (repeatable)")
    ap.add_argument("--access-log", choices=("off", "text", "json"), default="off",
                    help="the worker's access log (default off, as in bench.py)")
    ap.add_argument("--request-header", action="append", default=[],
                    help="extra request header 'Name: value' (repeatable); --plugins key-auth adds its apikey "
                         "header itself, so a plugin-free baseline of the same request needs "
                         "--request-header 'apikey: bench-key-0123456789abcdef'")
    ap.add_argument("--algorithm", default=None,
                    help="route through an upstream with this algorithm (one target, the bench upstream; "
                         "consistent-hashing hashes on ip) instead of a service URL")
    ap.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                    help="an extra gateway.conf line, e.g. --conf 'headers = off' (repeatable)")
    ap.add_argument("--postgres", action="store_true",
                    help="database = postgres on a private PostgreSQL (Tests/integration/pgserver.py: "
                         "initdb on a random port, bootstrapped with `gateway migrations bootstrap`)")
    ap.add_argument("--keep-debug", action="store_true",
                    help="profile the binary as given, debug info included (for line-level figures: a build "
                         "with DWARF 4, which valgrind 3.19 reads, e.g. swift build -c release --scratch-path "
                         ".build-prof -Xswiftc -g -Xswiftc -dwarf-version=4; then callgrind_annotate --auto=yes)")
    ap.add_argument("--tls", nargs="?", const="1.3", choices=("1.2", "1.3"), default=None,
                    help="the requests go over keep-alive TLS 1.3 or (--tls 1.2) TLS 1.2 (the gateway's self-signed "
                         "default certificates, Python's ssl client and its default ciphers: TLS_AES_256_GCM_SHA384 / "
                         "ECDHE-ECDSA-AES256-GCM-SHA384); nginx is not profiled")
    ap.add_argument("--nginx", choices=("both", "plain", "headers", "off"), default="both",
                    help="also profile nginx (Debian's) as a reverse proxy under the same method, and print the "
                         "gateway/nginx ratio: plain (upstream keepalive only), headers (plus what the gateway "
                         "adds by default: Host, X-Real-IP, X-Forwarded-*, request id both ways, Via, two latency "
                         "headers), both (default), off")
    args = ap.parse_args()
    args.gateway = os.path.abspath(args.gateway)
    os.makedirs(args.out, exist_ok=True)
    root = tempfile.mkdtemp(prefix="gwcg-")
    os.chmod(root, 0o755)
    up = bench.Upstream(root, 1)
    port, admin_port, tls_port = bench.free_ports(3)
    gw = None
    pgs = None
    report = []
    try:
        up.wait_ready()
        extra = {}
        if args.postgres:
            sys.path.insert(0, os.path.join(bench.HERE, "../../Tests/integration"))
            from pgserver import PGServer
            pgs = PGServer()
            extra = pgs.settings(pgs.database())
            extra["pg_timeout"] = "30000"   # under valgrind
        for kv in args.conf:
            k, _, v = kv.partition("=")
            extra[k.strip()] = v.strip()
        conf = write_conf(root, port, admin_port, up.port, args.access_log, extra, tls_port if args.tls else None)
        tls = None
        if args.tls:
            tls = ssl.create_default_context()
            tls.check_hostname = False
            tls.verify_mode = ssl.CERT_NONE
            v = ssl.TLSVersion.TLSv1_2 if args.tls == "1.2" else ssl.TLSVersion.TLSv1_3
            tls.minimum_version = tls.maximum_version = v
        if args.postgres:
            subprocess.run([args.gateway, "migrations", "bootstrap", "-c", conf], check=True, capture_output=True)
        tcp_port, udp_port, http_port = log_collectors()
        cmd = [args.gateway, "start", "--foreground", "-c", conf, "-p", f"{root}/prefix"]
        if args.mode == "callgrind":
            # valgrind 3.19 cannot read the DWARF 5 that swiftc emits: profile a copy without debug
            # info (the symbol table stays, so functions are still named).
            # (--keep-debug: a DWARF 4 build, profiled as is.)
            if not args.keep_debug:
                nodebug = os.path.join(root, "gateway-nodebug")
                subprocess.run(["strip", "--strip-debug", "-o", nodebug, args.gateway], check=True)
                cmd[0] = nodebug
            cmd = ["valgrind", "--tool=callgrind", "--trace-children=yes", "--compress-strings=no", "--compress-pos=no",
                   f"--callgrind-out-file={root}/callgrind.%p"] + cmd
        gw = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(f"{root}/gw.stderr", "w"),
                              start_new_session=True)

        def admin(method, p, body):
            import json
            import urllib.error
            import urllib.request
            r = urllib.request.Request(f"http://127.0.0.1:{admin_port}{p}", data=json.dumps(body).encode(),
                                       method=method, headers={"Content-Type": "application/json"})
            deadline = time.monotonic() + 120
            while True:
                try:
                    with urllib.request.urlopen(r, timeout=60) as resp:
                        return resp.status
                except urllib.error.HTTPError as e:
                    # PostgreSQL: the master connects on its loop after start; writes answer 500 until then.
                    if not (args.postgres and e.code == 500 and time.monotonic() < deadline):
                        raise
                    time.sleep(0.5)

        def admin_up():
            try:
                return bench.http_get(admin_port, "/", timeout=10)[0] == 200
            except OSError:
                return False
        bench.wait_until(admin_up, timeout=120, what="admin")
        if args.algorithm:
            body = {"name": "u", "algorithm": args.algorithm}
            if args.algorithm == "consistent-hashing":
                body["hash_on"] = "ip"
            admin("POST", "/upstreams", body)
            admin("POST", "/upstreams/u/targets", {"target": f"127.0.0.1:{up.port}"})
            admin("POST", "/services", {"name": "s", "url": "http://u"})
        else:
            admin("POST", "/services", {"name": "s", "url": f"http://127.0.0.1:{up.port}"})
        admin("POST", "/services/s/routes", {"name": "r", "paths": ["/"]})
        headers = "".join(f"{h}\r\n" for h in args.request_header)
        for plugin in [p for p in args.plugins.split(",") if p]:
            if plugin == "key-auth":
                admin("POST", "/plugins", {"name": "key-auth"})
                admin("POST", "/consumers", {"username": "bench"})
                admin("POST", "/consumers/bench/key-auth", {"key": bench.BENCH_KEY})
                if f"apikey: {bench.BENCH_KEY}" not in args.request_header:
                    headers += f"apikey: {bench.BENCH_KEY}\r\n"
            elif plugin == "rate-limiting":
                admin("POST", "/plugins", {"name": "rate-limiting", "config": {"hour": 1000000000}})
            elif plugin == "rate-limiting-cluster":
                admin("POST", "/plugins", {"name": "rate-limiting", "config": {"hour": 1000000000, "policy": "cluster"}})
            elif plugin == "ip-restriction":
                # The client (127.0.0.1) passes the deny list, then matches the third allow entry.
                admin("POST", "/plugins", {"name": "ip-restriction", "config": {
                    "deny": ["127.0.0.2", "10.0.0.0/8"], "allow": ["192.168.0.0/16", "::1", "127.0.0.0/8"]}})
            elif plugin == "bot-detection":
                admin("POST", "/plugins", {"name": "bot-detection"})
            elif plugin == "correlation-id":
                admin("POST", "/plugins", {"name": "correlation-id"})
            elif plugin == "request-termination":
                admin("POST", "/plugins", {"name": "request-termination", "config": {"status_code": 200,
                                                                                     "message": "ok"}})
            elif plugin == "proxy-cache":
                admin("POST", "/plugins", {"name": "proxy-cache", "config": {
                    "strategy": "memory", "content_type": ["text/plain"], "cache_ttl": 3600}})
            elif plugin == "file-log":
                admin("POST", "/plugins", {"name": "file-log", "config": {"path": f"{root}/file-log.log"}})
            elif plugin == "tcp-log":
                admin("POST", "/plugins", {"name": "tcp-log", "config": {"host": "127.0.0.1", "port": tcp_port}})
            elif plugin == "udp-log":
                admin("POST", "/plugins", {"name": "udp-log", "config": {"host": "127.0.0.1", "port": udp_port}})
            elif plugin == "prometheus":
                admin("POST", "/plugins", {"name": "prometheus", "config": {
                    "status_code_metrics": True, "latency_metrics": True, "bandwidth_metrics": True,
                    "upstream_health_metrics": True}})
            elif plugin == "http-log":
                admin("POST", "/plugins", {"name": "http-log", "config": {
                    "http_endpoint": f"http://127.0.0.1:{http_port}/log"}})
            else:
                ap.error(f"unknown plugin {plugin}")
        for doc in args.plugin_json:
            admin("POST", "/plugins", json.loads(doc))
        # (urllib's User-Agent is a bot to bot-detection: 403)
        bench.wait_until(lambda: bench.http_get(port, args.path, timeout=10)[0] in (200, 401, 403), timeout=120,
                         what="proxy")
        workers = [p for p in bench.process_tree(gw.pid) if p != gw.pid]
        # the worker: the process that holds the proxy port's connections; with one worker, the
        # youngest descendant that is not a valgrind helper
        worker = max(workers)
        dport = tls_port if args.tls else port
        drive(dport, args.path, 2000, args.connections, headers, tls)   # warm-up (pools, buffers, caches)
        n = args.requests
        if args.mode == "callgrind":
            subprocess.run(["callgrind_control", "-z", str(worker)], check=True, capture_output=True)
            ok = drive(dport, args.path, n, args.connections, headers, tls)
            subprocess.run(["callgrind_control", "-d", str(worker)], check=True, capture_output=True)
            time.sleep(1)
            dumps = sorted(f for f in os.listdir(root) if f.startswith(f"callgrind.{worker}."))
            if not dumps:
                raise RuntimeError(f"no dump for worker {worker}: {os.listdir(root)}")
            dump = os.path.join(root, dumps[-1])
            shutil.copy(dump, os.path.join(args.out, "callgrind.out"))
            total_ir, calls, self_ir = parse_dump(dump)
            report.append(f"{n} requests ({ok} 2xx) over {args.connections} keep-alive {'TLS ' + args.tls + ' ' if args.tls else ''}"
                          f"connections, path {args.path}, 1 worker")
            report.append(f"instructions per request: {total_ir / n:,.0f}")
            for fn in ("malloc", "free", "realloc", "calloc", "swift_allocObject", "swift_retain",
                       "swift_release", "swift_bridgeObjectRetain", "swift_bridgeObjectRelease"):
                c = sum(v for k, v in calls.items() if k == fn or k.startswith(fn + "'"))
                report.append(f"  {fn:20s} calls/request {c / n:8.2f}")
            report.append("")
            report.append("top functions by self instructions (Ir per request, % of total):")
            top = sorted(self_ir.items(), key=lambda kv: -kv[1])[:args.top]
            for (name, ir), dn in zip(top, demangle([k for k, _ in top])):
                report.append(f"  {ir / n:9,.0f}  {100 * ir / total_ir:5.1f}%  {dn[:140]}")
            if args.nginx != "off" and args.plugins == "" and not args.plugin_json and not args.algorithm and not args.tls:
                report.append("")
                gw_per = total_ir / n
                for label in (("plain", "headers") if args.nginx == "both" else (args.nginx,)):
                    per, line = profile_nginx(root, up.port, args, label == "headers", label)
                    report.append(line)
                    report.append(f"  gateway / nginx ({label}): {gw_per / per:.2f}")
        else:
            st = subprocess.Popen(["strace", "-c", "-f", "-p", str(worker)], stderr=subprocess.PIPE, text=True)
            time.sleep(1)
            ok = drive(dport, args.path, n, args.connections, headers, tls)
            st.send_signal(signal.SIGINT)
            out = st.communicate(timeout=30)[1]
            report.append(f"{n} requests ({ok} 2xx) over {args.connections} keep-alive connections, path {args.path}")
            report.append("syscalls per request:")
            total = 0
            for ln in out.splitlines():
                m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$", ln)
                if m and m.group(2) != "total":
                    report.append(f"  {m.group(2):16s} {int(m.group(1)) / n:6.2f}")
                    total += int(m.group(1))
            report.append(f"  {'total':16s} {total / n:6.2f}")
    except BaseException:
        try:
            with open(f"{root}/gw.stderr") as f:
                sys.stderr.write("gateway's stderr (tail):\n" + "".join(f.readlines()[-30:]))
        except OSError:
            pass
        raise
    finally:
        if gw and gw.poll() is None:
            try:
                os.killpg(gw.pid, signal.SIGTERM)
                gw.wait(30)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(gw.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        up.stop()
        if pgs:
            pgs.close()
        shutil.rmtree(root, ignore_errors=True)
    text = "\n".join(report) + "\n"
    with open(os.path.join(args.out, f"{args.mode}-summary.txt"), "w") as f:
        f.write(text)
    print(text)


def parse_dump(path):
    """Total Ir, call counts per callee and self Ir per function from an uncompressed callgrind dump."""
    calls = {}
    self_ir = {}
    total = 0
    fn = cfn = None
    after_calls = False
    with open(path, errors="replace") as f:
        for line in f:
            c = line[:1]
            if c.isdigit() or c in "+-*":
                if after_calls:
                    after_calls = False     # the inclusive cost of the call: not self cost
                    continue
                parts = line.split()
                if len(parts) >= 2 and fn is not None:
                    self_ir[fn] = self_ir.get(fn, 0) + int(parts[1])
            elif line.startswith("fn="):
                fn = line[3:].strip()
            elif line.startswith("cfn="):
                cfn = line[4:].strip()
            elif line.startswith("calls="):
                calls[cfn] = calls.get(cfn, 0) + int(line[6:].split()[0])
                after_calls = True
            elif line.startswith("summary:") or line.startswith("totals:"):
                total = int(line.split()[1])
    return total, calls, self_ir


def demangle(names):
    try:
        out = subprocess.run(["swift", "demangle", "--simplified", "--compact"], input="\n".join(names),
                             capture_output=True, text=True, timeout=60).stdout.splitlines()
        if len(out) == len(names):
            return out
    except (OSError, subprocess.TimeoutExpired):
        pass
    return names


if __name__ == "__main__":
    main()
