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
"""
import argparse
import json
import os
import re
import resource
import selectors
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROXIES = ("nginx", "haproxy", "gateway")
ALGOS = ("round-robin", "least-connections", "consistent-hashing", "latency")
ALL_SCENARIOS = ["small-1w", "small-2w", "16k", "upload-1m", "conn-close", "routes-10k"] + \
    [f"targets-100-{a}" for a in ALGOS] + ["idle-10k", "plugins-auth-rl", "cache-hit"]
# TLS on the client side (the upstream stays plain HTTP), every proxy with the same certificate and
# key; tls-new-*: GET /small, one full handshake per request (wrk cannot do that: it
# makes no resumption): 4 parallel `openssl s_time -new` clients; tls-resumed: wrk with `Connection:
# close` (wrk 4.1 resumes every connection with the session of its first one: TLS 1.2 with a ticket);
# tls-small / tls-16k: keep-alive https (wrk: TLS 1.2); idle-tls: idle-10k over TLS.
TLS_SCENARIOS = ["tls-new-ecdsa", "tls-new-rsa", "tls-resumed", "tls-small", "tls-16k", "idle-tls"]
ALL_SCENARIOS += TLS_SCENARIOS
N_IDLE_TLS = 2000
# plugins-auth-rl: the gateway runs global key-auth + rate-limiting (nginx and HAProxy proxy plainly:
#   compare the gateway with its own small-1w figure of the same run).
# cache-hit: every proxy caches /small (gateway proxy-cache, nginx proxy_cache, HAProxy's cache):
#   after the warm-up every request is a hit; compare with small-1w (the proxied, Miss path).
BENCH_KEY = "bench-key-0123456789abcdef"
N_ROUTES = 10000
N_TARGETS = 100
N_IDLE = 10000
NOFILE = resource.getrlimit(resource.RLIMIT_NOFILE)[1]  # hard limit: what the servers may use
# HAProxy reserves two descriptors per connection (client + server) and refuses to start when
# 2 * maxconn + overhead exceeds its descriptor limit, so with a 20 000 hard limit (no
# CAP_SYS_RESOURCE here) the idle test opens a little under 10 000 connections, the same for all.
HAPROXY_MAXCONN = (NOFILE - 300) // 2
N_IDLE = min(N_IDLE, HAPROXY_MAXCONN - 100)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from netutil import free_port  # noqa: E402


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def wait_until(pred, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what} (last: {last!r})")


def http_get(port, path, timeout=3.0):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


# ---- /proc helpers --------------------------------------------------------------------------

def children_map():
    m = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        ppid = int(s[s.rfind(")") + 2:].split()[1])
        m.setdefault(ppid, []).append(int(d))
    return m


def process_tree(root):
    m = children_map()
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(m.get(p, []))
    return out


def cpu_split(pids):
    """(utime, stime) in clock ticks, summed over pids."""
    ut = st = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                s = f.read()
        except OSError:
            continue
        fields = s[s.rfind(")") + 2:].split()
        ut += int(fields[11])  # utime (field 14)
        st += int(fields[12])  # stime (field 15)
    return ut, st


def cpu_ticks(pids):
    return sum(cpu_split(pids))


def machine_ticks():
    """(all, idle) clock ticks of the whole machine from /proc/stat (idle includes iowait; guest time is
    already inside user)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v[:8]), v[3] + v[4]


def status_kb(pids, key):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


def private_kb(pids):
    """Private_Clean + Private_Dirty (smaps_rollup) summed over pids: the memory only these processes use
    (no shared libraries, no copy-on-write pages still shared with a parent)."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith(("Private_Clean:", "Private_Dirty:")):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


def largest_worker_kb(pids):
    """(pid, VmRSS, private) of the largest worker: the process with the largest RSS other than the
    first pid (the master), or the only process (HAProxy's threads share one)."""
    best = (None, 0, 0)
    for p in (pids[1:] if len(pids) > 1 else pids):
        rss = status_kb([p], "VmRSS")
        if rss > best[1]:
            best = (p, rss, private_kb([p]))
    return best


# ---- TLS ----------------------------------------------------------------------------------

# Kong's ssl_cipher_suite = intermediate (the gateway's default), given to nginx and HAProxy too.
INTERMEDIATE_CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
                        "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
                        "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305")


def tls_pair(root, scenario):
    """(certificate, key) paths every proxy uses in a TLS scenario: RSA 2048 for tls-new-rsa, else ECDSA
    P-256; made once per benchmark run with the openssl CLI."""
    kind = "rsa" if scenario == "tls-new-rsa" else "ecdsa"
    crt, key = f"{root}/bench-{kind}.crt", f"{root}/bench-{kind}.key"
    if not os.path.exists(crt):
        newkey = ["-newkey", "rsa:2048"] if kind == "rsa" else ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
        subprocess.run(["openssl", "req", "-x509", *newkey, "-nodes", "-keyout", key, "-out", crt, "-days", "30",
                        "-subj", "/CN=localhost"], check=True, capture_output=True)
        os.chmod(key, 0o644)  # nginx workers run as nobody
    return crt, key


def tls_client_ctx():
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


# ---- servers --------------------------------------------------------------------------------

NGINX_TEMP = """
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
"""


class Server:
    name = "?"

    def __init__(self, root):
        self.dir = tempfile.mkdtemp(prefix=f"{self.name}-", dir=root)
        os.chmod(self.dir, 0o755)  # nginx workers run as nobody
        self.proc = None
        self.port = free_port()
        self.tls_port = free_port()

    def pids(self):
        return process_tree(self.root_pid())

    def root_pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                for p in self.pids():
                    try:
                        os.kill(p, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                self.proc.wait(5)

    def wait_ready(self, path="/small"):
        # 401: the plugins-auth-rl gateway wants its key; the route is in place all the same.
        wait_until(lambda: http_get(self.port, path)[0] in (200, 401), what=f"{self.name} on {self.port}{path}")


class NginxBase(Server):
    def start_with(self, conf):
        os.makedirs(f"{self.dir}/tmp", exist_ok=True)
        path = f"{self.dir}/nginx.conf"
        with open(path, "w") as f:
            f.write(conf)
        self.proc = subprocess.Popen(["nginx", "-p", self.dir, "-c", path, "-g", "daemon off; master_process on;"],
                                     stdout=subprocess.DEVNULL, stderr=open(f"{self.dir}/stderr", "w"))


class Upstream(NginxBase):
    name = "upstream"

    def __init__(self, root, workers):
        super().__init__(root)
        self.extra_ports = free_ports(N_TARGETS)
        os.makedirs(f"{self.dir}/www", exist_ok=True)
        with open(f"{self.dir}/www/small", "w") as f:
            f.write("hello\n")
        with open(f"{self.dir}/www/16k", "wb") as f:
            f.write(b"x" * 16383 + b"\n")
        listens = "\n".join(f"        listen 127.0.0.1:{p};" for p in [self.port] + self.extra_ports)
        self.start_with(f"""
worker_processes {workers};
worker_rlimit_nofile {NOFILE};
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections {NOFILE - 100}; }}
http {{
    access_log off;
    {NGINX_TEMP.format(d=self.dir)}
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    default_type text/plain;
    upstream self {{ server 127.0.0.1:{self.port}; keepalive 64; }}
    server {{
{listens}
        root {self.dir}/www;
        # The whole body is read before answering (a bare `return` answers at once and discards
        # the body afterwards, which makes proxies that stream the body close the connection):
        # proxy_pass buffers the request body, then asks /sink without it.
        location = /upload {{
            client_max_body_size 2m;
            client_body_buffer_size 2m;
            proxy_pass http://self/sink;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
        location = /sink {{ return 200 "ok\\n"; }}
        location / {{ }}
    }}
}}
""")


class NginxProxy(NginxBase):
    name = "nginx"

    def __init__(self, root, workers, upstream, scenario):
        super().__init__(root)
        up = upstream
        servers = f"server 127.0.0.1:{up.port};"
        balance = ""
        if scenario.startswith("targets-100-"):
            alg = scenario[len("targets-100-"):]
            servers = "\n        ".join(f"server 127.0.0.1:{p};" for p in up.extra_ports)
            # nginx OSS has no latency balancer: least_conn is the closest (said in the report).
            balance = {"round-robin": "", "least-connections": "least_conn;", "latency": "least_conn;",
                       "consistent-hashing": "hash $remote_addr consistent;"}[alg]
        proxy = """proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_request_buffering off;"""
        if scenario == "routes-10k":
            # 10 000 prefix locations (nginx keeps them in a static tree), each stripping its prefix
            # like a Kong route with strip_path = true.
            locations = "\n".join(
                f"        location /r{i:05d}/ {{ proxy_pass http://up/; }}" for i in range(1, N_ROUTES + 1))
            locations += "\n        location / { return 404; }"
            common = """proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_request_buffering off;"""
        else:
            cache = ""
            if scenario == "cache-hit":
                cache = """
            proxy_cache c;
            proxy_cache_valid 200 5m;"""
            locations = f"        location / {{\n            {proxy}{cache}\n        }}"
            common = ""
        cache_path = f"proxy_cache_path {self.dir}/cache keys_zone=c:10m;" if scenario == "cache-hit" else ""
        tls = ""
        if scenario in TLS_SCENARIOS:
            # Kong's nginx settings for its https listener (ssl_cipher_suite intermediate, shared session
            # cache of 10m, tickets, one day).
            crt, key = tls_pair(root, scenario)
            tls = f"""listen 127.0.0.1:{self.tls_port} ssl reuseport backlog=16384;
        ssl_certificate {crt};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers {INTERMEDIATE_CIPHERS};
        ssl_prefer_server_ciphers off;
        ssl_session_cache shared:SSL:10m;
        ssl_session_timeout 1d;
        ssl_session_tickets on;"""
        self.start_with(f"""
worker_processes {workers};
worker_rlimit_nofile {NOFILE};
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections {NOFILE - 100}; }}
http {{
    access_log off;
    {NGINX_TEMP.format(d=self.dir)}
    keepalive_requests 10000;
    keepalive_timeout 75s;
    client_max_body_size 0;
    {cache_path}
    upstream up {{
        {balance}
        {servers}
        keepalive 512;
        keepalive_requests 10000;
        keepalive_timeout 60s;
    }}
    server {{
        listen 127.0.0.1:{self.port} reuseport backlog=16384;
        {tls}
        {common}
{locations}
    }}
}}
""")


class HAProxy(Server):
    name = "haproxy"

    def __init__(self, root, workers, upstream, scenario):
        super().__init__(root)
        up = upstream
        servers = f"    server s0 127.0.0.1:{up.port}\n"
        balance = "roundrobin"
        if scenario.startswith("targets-100-"):
            alg = scenario[len("targets-100-"):]
            servers = "".join(f"    server s{i} 127.0.0.1:{p}\n" for i, p in enumerate(up.extra_ports))
            # HAProxy has no latency balancer either: leastconn is the closest.
            balance = {"round-robin": "roundrobin", "least-connections": "leastconn", "latency": "leastconn",
                       "consistent-hashing": "source\n    hash-type consistent"}[alg]
        routing = "    default_backend be\n"
        cache_section = ""
        if scenario == "cache-hit":
            routing = ("    http-request cache-use c\n    http-response cache-store c\n"
                       "    default_backend be\n")
            cache_section = "cache c\n    total-max-size 64\n    max-age 300\n"
        if scenario == "routes-10k":
            # 10 000 prefixes in one path_beg ACL loaded from a file (HAProxy scans that list per
            # request), then the prefix is stripped, like a Kong route with strip_path = true.
            with open(f"{self.dir}/routes.lst", "w") as f:
                f.write("".join(f"/r{i:05d}/\n" for i in range(1, N_ROUTES + 1)))
            routing = (f"    acl known path_beg -f {self.dir}/routes.lst\n"
                       "    http-request deny deny_status 404 unless known\n"
                       "    http-request set-path %[path,regsub(^/r[0-9]+/,/)]\n"
                       "    default_backend be\n")
        tls_bind = ""
        if scenario in TLS_SCENARIOS:
            crt, key = tls_pair(root, scenario)
            pem = f"{self.dir}/pair.pem"
            with open(pem, "w") as f, open(crt) as c, open(key) as k:
                f.write(c.read() + k.read())
            tls_bind = (f"    bind 127.0.0.1:{self.tls_port} ssl crt {pem} ssl-min-ver TLSv1.2 "
                        f"ciphers {INTERMEDIATE_CIPHERS}\n")
        conf = f"""
global
    nbthread {workers}
    ulimit-n {NOFILE}
    maxconn {HAPROXY_MAXCONN}
    pidfile {self.dir}/haproxy.pid
defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 75s
    timeout server 60s
    timeout http-keep-alive 75s
    http-reuse always
frontend fe
    bind 127.0.0.1:{self.port}
{tls_bind}{routing}backend be
    balance {balance}
{servers}{cache_section}"""
        path = f"{self.dir}/haproxy.cfg"
        with open(path, "w") as f:
            f.write(conf)
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", path],
                                     stdout=subprocess.DEVNULL, stderr=open(f"{self.dir}/stderr", "w"))


class Gateway(Server):
    name = "gateway"

    def __init__(self, root, workers, upstream, scenario, binary):
        super().__init__(root)
        self.bin = binary
        self.admin_port = free_port()
        self.prefix = f"{self.dir}/prefix"
        self.conf = f"{self.dir}/gateway.conf"
        settings = {
            "prefix": self.prefix,
            "proxy_listen": f"127.0.0.1:{self.port} reuseport backlog=16384",
            "admin_listen": f"127.0.0.1:{self.admin_port}",
            "status_listen": "off",
            "worker_processes": str(workers),
            "proxy_access_log": "off",
            "log_level": "error",
        }
        if scenario in TLS_SCENARIOS:
            crt, key = tls_pair(root, scenario)
            settings["proxy_listen"] += f", 127.0.0.1:{self.tls_port} ssl reuseport backlog=16384"
            settings.update({"ssl_cert": crt, "ssl_cert_key": key})
        up = upstream
        if scenario == "routes-10k":
            # DB-less with a declarative file: one service, 10 000 prefix routes (strip_path = true).
            decl = {"_format_version": "3.0", "services": [{
                "name": "s", "url": f"http://127.0.0.1:{up.port}",
                "routes": [{"name": f"r{i:05d}", "paths": [f"/r{i:05d}/"]} for i in range(1, N_ROUTES + 1)]}]}
            with open(f"{self.dir}/kong.json", "w") as f:
                json.dump(decl, f)
            settings.update({"database": "off", "declarative_config": f"{self.dir}/kong.json"})
        with open(self.conf, "w") as f:
            for k, v in settings.items():
                f.write(f"{k} = {v}\n")
        r = subprocess.run([self.bin, "start", "-c", self.conf, "-p", self.prefix],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"gateway start failed: {r.stdout}\n{r.stderr}")
        if scenario == "routes-10k":
            return
        wait_until(lambda: self.admin("GET", "/")[0] == 200, what="gateway admin")
        if scenario.startswith("targets-100-"):
            alg = scenario[len("targets-100-"):]
            body = {"name": "u100", "algorithm": alg}
            if alg == "consistent-hashing":
                body["hash_on"] = "ip"
            self.admin_ok("POST", "/upstreams", body)
            for p in up.extra_ports:
                self.admin_ok("POST", "/upstreams/u100/targets", {"target": f"127.0.0.1:{p}"})
            url = "http://u100"
        else:
            url = f"http://127.0.0.1:{up.port}"
        self.admin_ok("POST", "/services", {"name": "s", "url": url})
        self.admin_ok("POST", "/services/s/routes", {"name": "r", "paths": ["/"]})
        if scenario == "plugins-auth-rl":
            self.admin_ok("POST", "/plugins", {"name": "key-auth"})
            self.admin_ok("POST", "/consumers", {"username": "bench"})
            self.admin_ok("POST", "/consumers/bench/key-auth", {"key": BENCH_KEY})
            self.admin_ok("POST", "/plugins", {"name": "rate-limiting", "config": {"hour": 1000000000}})
        if scenario == "cache-hit":
            self.admin_ok("POST", "/plugins", {"name": "proxy-cache", "config": {
                "strategy": "memory", "content_type": ["text/plain"], "cache_ttl": 3600}})

    def admin(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.admin_port}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def admin_ok(self, method, path, body=None):
        st, raw = self.admin(method, path, body)
        if st >= 300:
            raise RuntimeError(f"gateway admin {method} {path}: {st} {raw[:300]!r}")

    def crashes(self):
        """Workers the master saw die from a signal (error.log)."""
        try:
            with open(f"{self.prefix}/logs/error.log", errors="replace") as f:
                return sum(1 for line in f if "killed by signal" in line)
        except OSError:
            return 0

    def root_pid(self):
        with open(f"{self.prefix}/pids/gateway.pid") as f:
            return int(f.read().strip())

    def stop(self):
        try:
            pids = self.pids()
        except (OSError, ValueError):
            return
        subprocess.run([self.bin, "stop", "-c", self.conf, "-p", self.prefix], capture_output=True, timeout=30)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(os.path.exists(f"/proc/{p}") for p in pids):
            time.sleep(0.05)
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass


# ---- wrk ------------------------------------------------------------------------------------

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def parse_ms(s):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", s)
    return float(m.group(1)) * UNITS[m.group(2)] if m else None


def run_wrk(port, path, duration, conns, threads, extra=(), script=None, scheme="http"):
    cmd = ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{duration}s", "--latency", "--timeout", "5s"]
    cmd += list(extra)
    if script:
        cmd += ["-s", script]
    cmd.append(f"{scheme}://127.0.0.1:{port}{path}")
    out, err, ru, _ = run_client(cmd, duration)
    res = {"rps": 0.0, "requests": 0, "p50_ms": None, "p99_ms": None, "non2xx": 0, "socket_errors": 0,
           "wrk_cpu_s": ru.ru_utime + ru.ru_stime, "raw": out[-2000:] + err[-500:]}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        res["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in", out)
    if m:
        res["requests"] = int(m.group(1))
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", out, re.M)
        if m:
            res[key] = parse_ms(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m:
        res["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        res["socket_errors"] = sum(int(x) for x in m.groups())
    return res


def run_stime(port, path, duration, procs):
    """`procs` parallel `openssl s_time -new` clients: one connection at a time each, a full handshake
    per connection (HTTP/1.0 GET, read to the close). Same result shape as run_wrk (requests = connections)."""
    cmd = ["openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-new", "-time", str(duration), "-www", path]
    outs = [None] * procs
    threads = [threading.Thread(target=lambda i=i: outs.__setitem__(i, run_client(cmd, duration))) for i in range(procs)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0  # s_time's own "real seconds" are whole seconds
    res = {"rps": 0.0, "requests": 0, "p50_ms": None, "p99_ms": None, "non2xx": 0, "socket_errors": 0,
           "wrk_cpu_s": 0.0, "raw": ""}
    for out, err, ru, rc in outs:
        res["wrk_cpu_s"] += ru.ru_utime + ru.ru_stime
        res["raw"] += out[-300:] + err[-200:]
        res["socket_errors"] += 0 if rc == 0 else 1
        m = re.search(r"(\d+) connections in (\d+) real seconds", out)
        if m:
            res["requests"] += int(m.group(1))
    res["rps"] = res["requests"] / wall
    return res


def run_client(cmd, duration):
    """(stdout, stderr, rusage, exit code) of a load client run to completion."""
    # Popen + wait4 rather than subprocess.run: the rusage gives wrk's own CPU time (its share of the
    # machine, reported in the CPU breakdown).
    with tempfile.TemporaryFile("w+") as fo, tempfile.TemporaryFile("w+") as fe:
        proc = subprocess.Popen(cmd, stdout=fo, stderr=fe, text=True)
        deadline = time.monotonic() + duration + 60
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, ru = os.wait4(proc.pid, 0)
                proc.returncode = -9
                break
            time.sleep(0.02)
        fo.seek(0)
        fe.seek(0)
        return fo.read(), fe.read(), ru, proc.returncode


UPLOAD_LUA = """
wrk.method = "POST"
wrk.body = string.rep("a", 1048576)
wrk.headers["Content-Type"] = "application/octet-stream"
"""


def scenario_request(name, root):
    """(path, wrk extra args, lua script or None, connections factor) for a scenario."""
    if name == "16k":
        return "/16k", [], None
    if name == "upload-1m":
        path = os.path.join(root, "upload.lua")
        with open(path, "w") as f:
            f.write(UPLOAD_LUA)
        return "/upload", [], path
    if name in ("conn-close", "tls-resumed"):
        return "/small", ["-H", "Connection: close"], None
    if name == "tls-16k":
        return "/16k", [], None
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
    if name in ("conn-close", "tls-resumed"):
        return max(1, min(args.connections, 32))
    if name in ("tls-new-ecdsa", "tls-new-rsa"):
        return 4  # s_time processes
    return args.connections


def drive(server, name, path, duration, conns, threads, extra, script):
    """One load run against a proxy: wrk (http or https) or s_time for resumed handshakes."""
    if name in ("tls-new-ecdsa", "tls-new-rsa"):
        return run_stime(server.tls_port, path, duration, conns)
    if name in TLS_SCENARIOS:
        return run_wrk(server.tls_port, path, duration, conns, threads, extra, script, scheme="https")
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
    if kind == "nginx":
        return NginxProxy(root, workers, upstream, scenario)
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
    try:
        for kind in PROXIES:
            t0 = time.monotonic()
            servers[kind] = start_proxy(kind, root, workers, upstream, name, args)
            servers[kind].wait_ready("/small" if name != "routes-10k" else path)
            res["proxies"][kind] = {"startup_s": round(time.monotonic() - t0, 2), "runs": []}
        if name in ("idle-10k", "idle-tls"):
            for kind in PROXIES:
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
        for kind in PROXIES:
            drive(servers[kind], name, path, 1, conns, args.threads, extra, script)
        for rnd in range(args.rounds):
            for kind in PROXIES:
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
        for kind in PROXIES:
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


def breakdown(w, c0, c1, up_ticks, m0, m1):
    """Where the machine's time went during one wrk run, in microseconds per request: the proxy's user and
    kernel time, the upstream's and wrk's CPU time, idle time, and the rest (softirq work charged to no
    process, the benchmark itself). `total` is the machine's CPU time (all cores) per request, so
    req/s = cores * 1e6 / total while the run is CPU-bound."""
    n = w["requests"]
    if not n:
        return None
    us = lambda ticks: round(ticks / CLK_TCK / n * 1e6, 2)  # noqa: E731
    total, idle = m1[0] - m0[0], m1[1] - m0[1]
    b = {"proxy_user": us(c1[0] - c0[0]), "proxy_sys": us(c1[1] - c0[1]), "upstream": us(up_ticks),
         "wrk": round(w["wrk_cpu_s"] / n * 1e6, 2), "idle": us(idle), "total": us(total)}
    b["other"] = round(b["total"] - sum(b[k] for k in ("proxy_user", "proxy_sys", "upstream", "wrk", "idle")), 2)
    return b


def median_breakdown(runs):
    rows = [r["breakdown_us"] for r in runs if r.get("breakdown_us")]
    if not rows:
        return None
    return {k: round(statistics.median(r[k] for r in rows), 2) for k in rows[0]}


def ratios(res):
    base = res["proxies"].get("nginx", {})
    for kind, p in res["proxies"].items():
        r = {}
        for key in ("rps", "p50_ms", "p99_ms", "cpu_s_per_100k", "peak_rss_kb", "kb_per_conn"):
            a, b = p.get(key), base.get(key)
            if a is not None and b:
                r[key] = round(a / b, 2)
        p["vs_nginx"] = r


def fmt(v, nd=2):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def markdown(results, meta):
    lines = [f"Command: `{meta['command']}`  ",
             f"Machine: {meta['cpus']} CPUs, load average before/after {meta['load_before']} / {meta['load_after']}; "
             f"{meta['started']} .. {meta['finished']}  ",
             f"wrk {meta['threads']} thread(s), {meta['duration']}s x {meta['rounds']} interleaved rounds, medians; "
             "access logs off for all proxies; ratios are proxy / nginx in the same run. "
             "CPU = utime+stime of all the proxy's processes (master included); peak RSS = sum of VmHWM "
             "of those processes (shared pages counted once per process that touched them); worker: "
             "the VmRSS of the proxy's largest worker process (HAProxy: its one process) and its private "
             "part (smaps_rollup Private_*: without shared libraries and pages still shared copy-on-write "
             "with the master).", "",
             "| scenario | proxy | req/s | p50 ms | p99 ms | CPU s/100k req | peak RSS MiB | non-2xx | sock err "
             "| req/s vs nginx | p99 vs nginx | CPU vs nginx | RSS vs nginx | of RSS: shm MiB "
             "| worker RSS / private MiB |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    idle, crashes = [], []
    for res in results:
        if res.get("error"):
            lines.append(f"| {res['scenario']} | (failed: {res['error'][:80]}) |||||||||||")
            continue
        if res["scenario"] in ("idle-10k", "idle-tls"):
            idle.append(res)
            continue
        for kind in PROXIES:
            p = res["proxies"].get(kind)
            if not p:
                continue
            v = p.get("vs_nginx", {})
            rss = p.get("peak_rss_kb")
            lines.append(
                f"| {res['scenario']} (w={res['workers']}, c={res['connections']}) | {kind} | {fmt(p.get('rps'), 0)} "
                f"| {fmt(p.get('p50_ms'))} | {fmt(p.get('p99_ms'))} | {fmt(p.get('cpu_s_per_100k'))} "
                f"| {fmt(rss / 1024 if rss else None, 1)} | {p.get('non2xx')} | {p.get('socket_errors')} "
                f"| {fmt(v.get('rps'))} | {fmt(v.get('p99_ms'))} | {fmt(v.get('cpu_s_per_100k'))} "
                f"| {fmt(v.get('peak_rss_kb'))} | {fmt((p.get('rss_shmem_kb') or 0) / 1024, 1)} "
                f"| {fmt((p.get('worker_rss_kb') or 0) / 1024, 1)} / {fmt((p.get('worker_private_kb') or 0) / 1024, 1)} |")
            if p.get("worker_crashes"):
                crashes.append(f"{res['scenario']}: {p['worker_crashes']} gateway worker crash(es) (error.log)")
    if crashes:
        lines += ["", "Worker crashes: " + "; ".join(crashes)]
    lines += breakdown_markdown(results)
    for res in idle:
        over = " over TLS" if res["scenario"] == "idle-tls" else ""
        lines += ["", f"Idle keep-alive connections{over} ({res['workers']} worker(s)):", "",
                  "| proxy | connections | answered 200 | RSS before MiB | RSS after MiB | KiB per connection "
                  "| vs nginx |", "|---|---:|---:|---:|---:|---:|---:|"]
        for kind in PROXIES:
            p = res["proxies"].get(kind)
            if not p:
                continue
            lines.append(f"| {kind} | {p.get('connections')} | {p.get('ok')} | {fmt(p['rss_before_kb'] / 1024, 1)} "
                         f"| {fmt(p['rss_after_kb'] / 1024, 1)} | {fmt(p.get('kb_per_conn'))} "
                         f"| {fmt(p.get('vs_nginx', {}).get('kb_per_conn'))} |")
    return "\n".join(lines) + "\n"


def breakdown_markdown(results):
    """The CPU breakdown table and, per scenario, the req/s ceiling over nginx that no user-space work can
    pass: the ratio a proxy would reach if it did nginx's kernel work and no user-space work at all, with
    wrk, the upstream and the idle time as in nginx's run."""
    lines = ["", "Where the machine's time goes, in µs per request (medians; all cores; `other` is mostly "
             "softirq work charged to no process). `ceiling` = total / (total − proxy user) of nginx's run: "
             "the req/s ratio to nginx of a proxy with nginx's kernel work and no user-space work at all.", "",
             "| scenario | proxy | proxy user | proxy kernel | upstream | wrk | idle | other | total | ceiling |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for res in results:
        if res.get("error") or res["scenario"] in ("idle-10k", "idle-tls"):
            continue
        nb = res["proxies"].get("nginx", {}).get("breakdown_us")
        ceiling = round(nb["total"] / (nb["total"] - nb["proxy_user"]), 2) if nb and nb["total"] > nb["proxy_user"] else None
        for kind in PROXIES:
            b = res["proxies"].get(kind, {}).get("breakdown_us")
            if not b:
                continue
            lines.append(f"| {res['scenario']} | {kind} | {fmt(b['proxy_user'])} | {fmt(b['proxy_sys'])} "
                         f"| {fmt(b['upstream'])} | {fmt(b['wrk'])} | {fmt(b['idle'])} | {fmt(b['other'])} "
                         f"| {fmt(b['total'])} | {fmt(ceiling) if kind == 'nginx' else ''} |")
    return lines


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
