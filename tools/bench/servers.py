"""The servers a benchmark run starts, each in its own temporary directory with its own config: the
upstream (Debian nginx serving /small, /16k and POST /upload on one main port plus N_TARGETS extra
ports), and the three proxies under test (nginx as a reverse proxy, HAProxy, the gateway configured
through its Admin API or a declarative file), set up for one scenario (TLS listeners: tls_scenarios).
Every server has start, readiness wait, process tree and stop; access logs are off everywhere."""
import json
import os
import resource
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

from benchutil import free_port, free_ports, http_get, wait_until
from procstats import process_tree
from tls_scenarios import gateway_tls, haproxy_tls_bind, nginx_tls

# plugins-auth-rl: the gateway runs global key-auth + rate-limiting (nginx and HAProxy proxy plainly:
#   compare the gateway with its own small-1w figure of the same run).
# cache-hit: every proxy caches /small (gateway proxy-cache, nginx proxy_cache, HAProxy's cache):
#   after the warm-up every request is a hit; compare with small-1w (the proxied, Miss path).
PROXIES = ("nginx", "haproxy", "gateway")
# "nginx-h": the same nginx told to add what the gateway adds to every request and response by default
# (issue #18's "nginx doing the same work"), run beside the others in the keep-alive scenarios, where the
# extra header bytes cost wrk and the upstream CPU on the same cores. Ratios stay against plain nginx;
# the report adds the gateway / nginx-h ratios.
SAME_WORK_SCENARIOS = ("small-1w", "small-2w", "16k", "tls-small", "tls-16k")


def proxies_for(scenario):
    """The proxies a scenario runs, in the order of its interleaved rounds."""
    if scenario in SAME_WORK_SCENARIOS:
        return ("nginx", "nginx-h", "haproxy", "gateway")
    return PROXIES


# What the gateway adds to every proxied request and response by default (KONG.md §3.5), written as
# nginx directives (callgrind.py's "headers" nginx and the bench's nginx-h).
NGINX_GATEWAY_HEADERS = """
            proxy_set_header Host $http_host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Forwarded-Port $server_port;
            proxy_set_header X-Forwarded-Path $uri;
            proxy_set_header X-Forwarded-Prefix /;
            proxy_set_header X-Kong-Request-Id $request_id;
            add_header X-Kong-Request-Id $request_id;
            add_header Via "1.1 gateway";
            add_header X-Kong-Upstream-Latency $upstream_response_time;
            add_header X-Kong-Proxy-Latency $request_time;"""
BENCH_KEY = "bench-key-0123456789abcdef"
N_ROUTES = 10000
N_TARGETS = 100
NOFILE = resource.getrlimit(resource.RLIMIT_NOFILE)[1]  # hard limit: what the servers may use
# HAProxy reserves two descriptors per connection (client + server) and refuses to start when
# 2 * maxconn + overhead exceeds its descriptor limit, so with a 20 000 hard limit (no
# CAP_SYS_RESOURCE here) the idle test opens a little under 10 000 connections, the same for all.
HAPROXY_MAXCONN = (NOFILE - 300) // 2

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

    def __init__(self, root, workers, upstream, scenario, gateway_headers=False):
        super().__init__(root)
        if gateway_headers:
            self.name = "nginx-h"
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
            proxy_request_buffering off;""" + (NGINX_GATEWAY_HEADERS if gateway_headers else "")
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
        tls = nginx_tls(root, scenario, self.tls_port)
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
        tls_bind = haproxy_tls_bind(root, scenario, self.tls_port, self.dir)
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
        gateway_tls(root, scenario, self.tls_port, settings)
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
        # request_buffering false: the body streams upstream as nginx's `proxy_request_buffering off` and
        # HAProxy do here (Kong's default, true, reads the whole body first, spilling past
        # client_body_buffer_size to a temp file: upload-1m measured that instead, 0.55x).
        self.admin_ok("POST", "/services/s/routes", {"name": "r", "paths": ["/"], "request_buffering": False})
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
