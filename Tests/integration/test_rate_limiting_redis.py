"""rate-limiting `policy = redis` across nodes (issue #15, "Rate limits across nodes"), with a private
redis-server (Debian's) on a random 127.0.0.1 port in a temporary directory. Scenarios from Kong's
spec/03-plugins/23-rate-limiting/04-access_spec.lua and 05-integration_spec.lua (redis strategy):
exact limit across two nodes and their workers, Kong's headers and 429 body, keys with Kong's names
that expire, database selection and ACL authentication, fault_tolerant with Redis down (pass without
headers / 500), recovery, a Redis that never answers (timeout), a client leaving while its request
waits for Redis, a Redis host name resolved by the master (and its answer moving), and the Admin
API's refusals."""
import json
import os
import shutil
import socket
import subprocess
import threading
import time

import pytest

from conftest import TIMEOUT, free_port, wait_until

REDIS_BIN = shutil.which("redis-server") or "/usr/bin/redis-server"
RL_HEADERS = ("x-ratelimit", "ratelimit", "retry-after")


class Redis:
    """A private redis-server: no persistence, its own port and directory; stop() / start() keep both."""

    def __init__(self, tmp, extra=(), host="127.0.0.1", port=None):
        self.dir = os.path.join(tmp, "redis")
        os.makedirs(self.dir, exist_ok=True)
        self.host = host
        self.port = port or free_port()
        self.extra = list(extra)
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            [REDIS_BIN, "--port", str(self.port), "--bind", self.host, "--dir", self.dir, "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--logfile", os.path.join(self.dir, "redis.log"),
             *self.extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self.cmd("PING") == "PONG", what="redis-server up")

    def stop(self):
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(TIMEOUT)
            self.proc = None

    def cmd(self, *args, db=0, auth=None):
        """One command on a fresh connection (RESP by hand); returns str / int / list / None."""
        with socket.create_connection((self.host, self.port), timeout=TIMEOUT) as s:
            f = s.makefile("rb")
            pre = []
            if auth:
                pre.append(("AUTH", *auth))
            if db:
                pre.append(("SELECT", str(db)))
            for c in pre + [args]:
                s.sendall(b"*%d\r\n" % len(c) + b"".join(b"$%d\r\n%s\r\n" % (len(str(a).encode()), str(a).encode()) for a in c))
            out = None
            for _ in pre + [args]:
                out = read_resp(f)
            return out


def read_resp(f):
    line = f.readline()
    t, rest = line[:1], line[1:].rstrip(b"\r\n")
    if t == b"+":
        return rest.decode()
    if t == b"-":
        return RuntimeError(rest.decode())
    if t == b":":
        return int(rest)
    if t == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode()
    if t == b"*":
        n = int(rest)
        return None if n < 0 else [read_resp(f) for _ in range(n)]
    raise ValueError(f"bad RESP {line!r}")


@pytest.fixture
def redis(tmp_path):
    servers = []

    def make(extra=(), host="127.0.0.1", port=None):
        r = Redis(str(tmp_path / f"r{len(servers)}"), extra, host=host, port=port)
        servers.append(r)
        return r
    yield make
    for r in servers:
        r.stop()


SERVICE_ID = "5fd1c1e5-1b43-4a3c-9d2c-5a3b2e3c4d11"
ROUTE_ID = "0b4a5c3e-7a2f-4d6e-8c1b-9e0f1a2b3c4d"


def setup_node(g, up, config, path="/r"):
    """The same service, route (same ids, as nodes sharing a database would have) and plugin on a node."""
    s, b, _ = g.admin("PUT", f"/services/{SERVICE_ID}", {"name": "svc", "url": f"http://{up.address}"})
    assert s in (200, 201), b
    s, b, _ = g.admin("PUT", f"/routes/{ROUTE_ID}", {"paths": [path], "service": {"id": SERVICE_ID}})
    assert s in (200, 201), b
    s, b, _ = g.admin("POST", f"/services/{SERVICE_ID}/plugins", {"name": "rate-limiting", "config": config})
    assert s == 201, b
    return b


def raw_get(port, path, extra=b""):
    """A request on a new connection (Connection: close): (status, headers dict lower-case, body)."""
    c = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT * 2)
    c.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + extra + b"\r\n")
    data = b""
    while True:
        d = c.recv(65536)
        if not d:
            break
        data += d
    c.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(lines[0].split(" ")[1]), headers, body


def rl_headers(h):
    return {k: v for k, v in h.items() if k.lower().startswith(RL_HEADERS)}


def test_exact_limit_across_two_nodes(gateway, upstream, redis):
    """Two nodes (own SQLite each, 2 workers each), one Redis, hour=10: exactly 10 of 40 pass."""
    r = redis()
    up = upstream("u")
    cfg = {"hour": 10, "policy": "redis", "limit_by": "ip", "redis": {"host": "127.0.0.1", "port": r.port}}
    nodes = [gateway(workers=2), gateway(workers=2)]
    for g in nodes:
        setup_node(g, up, cfg)
    results = []
    lock = threading.Lock()

    def client(k):
        for i in range(5):
            g = nodes[(k + i) % 2]
            res = raw_get(g.proxy_port, "/r")
            with lock:
                results.append(res)

    ts = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(TIMEOUT * 6)
    assert len(results) == 40
    statuses = [s for s, _, _ in results]
    assert statuses.count(200) == 10, sorted(statuses)
    assert statuses.count(429) == 30
    assert up.hits == 10
    for s, h, body in results:
        assert h["x-ratelimit-limit-hour"] == "10" and h["ratelimit-limit"] == "10"
        assert 1 <= int(h["ratelimit-reset"]) <= 3600
        if s == 429:
            assert json.loads(body)["message"] == "API rate limit exceeded"
            assert h["x-ratelimit-remaining-hour"] == "0" and h["ratelimit-remaining"] == "0"
            assert int(h["retry-after"]) == int(h["ratelimit-reset"])
    remaining = sorted(int(h["x-ratelimit-remaining-hour"]) for s, h, _ in results if s == 200)
    assert remaining == list(range(10)), remaining
    # Kong's key name (the instance's own scope: a service plugin has no route id); it counts the 10 that passed and expires by the end of the hour.
    keys = r.cmd("KEYS", "ratelimit:*")
    assert len(keys) == 1, keys
    now = int(time.time())
    start_ms = (now - now % 3600) * 1000
    k = keys[0]
    assert k.startswith(f"ratelimit:00000000-0000-0000-0000-000000000000:{SERVICE_ID}:127.0.0.1:") and k.endswith(":hour"), k
    assert int(k.split(":")[4]) in (start_ms, start_ms - 3600_000)
    assert r.cmd("GET", k) == "10"
    assert 0 < r.cmd("TTL", k) <= 3600
    for g in nodes:
        assert "Redis" not in g.log()


def test_headers_windows_and_bodies(gateway, upstream, redis):
    """04-access_spec: remaining counts down per window; a request with a body waits for Redis and
    still reaches the upstream whole; error_code / error_message; hide_client_headers."""
    r = redis()
    up = upstream("u")
    g = gateway(workers=2)
    setup_node(g, up, {"minute": 6, "hour": 1000, "policy": "redis",
                       "redis": {"host": "localhost", "port": r.port, "timeout": 1000}})
    wait_until(lambda: time.time() % 60 < 50, timeout=15, what="not the end of a minute")
    seen = []
    for i in range(6):
        if i == 2:
            s, body, h = g.get("/r", method="POST", body=b"x" * 70000, headers={"Content-Type": "application/octet-stream"})
            assert s == 200 and json.loads(body)["body_len"] == 70000
        else:
            s, body, h = g.get("/r")
        assert s == 200
        assert h["X-RateLimit-Limit-Minute"] == "6" and h["X-RateLimit-Limit-Hour"] == "1000"
        seen.append(int(h["X-RateLimit-Remaining-Minute"]))
        # The aggregate follows the window with the lowest remaining.
        assert h["RateLimit-Limit"] == "6" and h["RateLimit-Remaining"] == h["X-RateLimit-Remaining-Minute"]
    assert seen == [5, 4, 3, 2, 1, 0]
    s, body, h = g.get("/r")
    assert s == 429 and json.loads(body)["message"] == "API rate limit exceeded"
    assert h["X-RateLimit-Remaining-Minute"] == "0" and 1 <= int(h["Retry-After"]) <= 60
    # Rejected requests are not counted: the hour window saw only the 6 that passed.
    assert h["X-RateLimit-Remaining-Hour"] == "994"
    # error_code / error_message, hide_client_headers (on a second route: its own keys).
    s, b, _ = g.admin("POST", "/routes", {"paths": ["/e"], "service": {"id": SERVICE_ID}})
    assert s == 201, b
    s, b, _ = g.admin("POST", f"/routes/{b['id']}/plugins", {"name": "rate-limiting", "config": {
        "hour": 1, "policy": "redis", "error_code": 404, "error_message": "Fake Not Found",
        "hide_client_headers": True, "redis": {"host": "127.0.0.1", "port": r.port}}})
    assert s == 201, b
    g.wait_route("/e")   # the first one through counts
    s, body, h = g.get("/e")
    assert s == 404 and json.loads(body)["message"] == "Fake Not Found"
    assert not rl_headers(h)


def test_database_and_acl_auth(gateway, upstream, redis):
    """05-integration_spec: redis.database selects the database; username/password (Redis ACL);
    a wrong password is a store error (fault_tolerant=false → 500)."""
    r = redis()
    assert r.cmd("ACL", "SETUSER", "gw", "on", ">s3cret", "~*", "+@all") == "OK"
    up = upstream("u")
    g = gateway(workers=1)
    setup_node(g, up, {"hour": 3, "policy": "redis", "fault_tolerant": False, "redis": {
        "host": "127.0.0.1", "port": r.port, "database": 3, "username": "gw", "password": "s3cret"}})
    assert [g.get("/r")[0] for _ in range(4)] == [200, 200, 200, 429]
    assert r.cmd("KEYS", "ratelimit:*") == []
    keys = r.cmd("KEYS", "ratelimit:*", db=3)
    assert len(keys) == 1 and r.cmd("GET", keys[0], db=3) == "3"
    # A wrong password: 500 with Kong's body, no rate-limit headers.
    s, b, _ = g.admin("POST", "/routes", {"paths": ["/w"], "service": {"id": SERVICE_ID}})
    s, b, _ = g.admin("POST", f"/routes/{b['id']}/plugins", {"name": "rate-limiting", "config": {
        "hour": 3, "policy": "redis", "fault_tolerant": False, "redis": {
            "host": "127.0.0.1", "port": r.port, "username": "gw", "password": "wrong"}}})
    assert s == 201, b
    s, body, h = wait_until(lambda: (lambda x: x if x[0] != 404 else None)(g.get("/w")), what="/w routed")
    assert s == 500 and json.loads(body)["message"] == "An unexpected error occurred"
    assert not rl_headers(h)
    wait_until(lambda: "failed to auth Redis" in g.log(), what="auth error logged")


def test_fault_tolerance_and_recovery(gateway, upstream, redis):
    """Redis stopped: fault_tolerant=true → proxied without rate-limit headers, the error logged at most
    once per interval; false → 500 Kong body. Redis back → limiting resumes without a restart."""
    r = redis()
    up = upstream("u")
    g = gateway(workers=1)   # one worker: its back-off alone decides when limiting resumes
    setup_node(g, up, {"hour": 5, "policy": "redis", "redis": {"host": "127.0.0.1", "port": r.port, "timeout": 500}})
    s, _, h = g.get("/r")
    assert s == 200 and h["X-RateLimit-Remaining-Hour"] == "4"
    r.stop()
    for _ in range(20):
        s, _, h = g.get("/r")
        assert s == 200 and not rl_headers(h), h
    errors = [l for l in g.log().splitlines() if "Redis" in l and "[error]" in l]
    assert errors, g.log()[-2000:]
    assert len(errors) <= 2, errors   # at most once per 10 s (the test takes less)
    # fault_tolerant = false: Kong's 500.
    s, b, _ = g.admin("GET", f"/services/{SERVICE_ID}/plugins")
    pid = b["data"][0]["id"]
    s, b, _ = g.admin("PATCH", f"/plugins/{pid}", {"config": {"fault_tolerant": False}})
    assert s == 200 and b["config"]["fault_tolerant"] is False
    s, body, h = g.get("/r")
    assert s == 500 and json.loads(body)["message"] == "An unexpected error occurred", body
    assert not rl_headers(h)
    assert g.worker_pids() and all(os.path.exists(f"/proc/{p}") for p in g.worker_pids())
    # Redis back (same port, empty): limiting resumes by itself after the back-off.
    r.start()
    s, body, h = wait_until(lambda: (lambda x: x if x[0] == 200 else None)(g.get("/r")), timeout=TIMEOUT * 2,
                            what="limiting resumed")
    assert h["X-RateLimit-Limit-Hour"] == "5"
    statuses = [g.get("/r")[0] for _ in range(8)]
    assert statuses.count(200) <= 4 and statuses[-1] == 429, statuses


class BlackHole:
    """A TCP server that accepts and reads but never answers (a Redis that hangs)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.running = True
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while self.running:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)

    def close(self):
        self.running = False
        self.sock.close()
        for c in self.conns:
            c.close()


def test_timeout_and_client_gone_while_waiting(gateway, upstream):
    """A Redis that never answers: each request waits redis.timeout, then passes (fault_tolerant) or
    gets 500. Clients that close while their request waits leave no crash and no stuck state."""
    bh = BlackHole()
    try:
        up = upstream("u")
        g = gateway(workers=1)
        setup_node(g, up, {"hour": 5, "policy": "redis", "redis": {"host": "127.0.0.1", "port": bh.port, "timeout": 300}})
        pids = g.worker_pids()
        t0 = time.monotonic()
        s, _, h = g.get("/r")
        assert s == 200 and not rl_headers(h)
        assert time.monotonic() - t0 < TIMEOUT
        # Clients that give up while their request waits for Redis.
        for _ in range(20):
            c = socket.create_connection(("127.0.0.1", g.proxy_port), timeout=TIMEOUT)
            c.sendall(b"GET /r HTTP/1.1\r\nHost: t\r\n\r\n")
            c.close()
        c = socket.create_connection(("127.0.0.1", g.proxy_port), timeout=TIMEOUT)
        c.sendall(b"POST /r HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc")
        c.close()
        time.sleep(0.1)
        # Each request was answered in its time or dropped; the worker is the same process.
        wait_until(lambda: g.get("/r")[0] == 200, what="served after clients left")
        assert g.worker_pids() == pids
        s, b, _ = g.admin("GET", f"/services/{SERVICE_ID}/plugins")
        pid = b["data"][0]["id"]
        assert g.admin("PATCH", f"/plugins/{pid}", {"config": {"fault_tolerant": False}})[0] == 200
        s, body, _ = wait_until(lambda: (lambda x: x if x[0] == 500 else None)(g.get("/r")), what="500 on timeout")
        assert json.loads(body)["message"] == "An unexpected error occurred"
        assert g.worker_pids() == pids
        assert "timeout" in g.log()
    finally:
        bh.close()


def test_admin_api_refusals_and_shorthands(gateway, redis):
    g = gateway(workers=1)

    def post(cfg):
        return g.admin("POST", "/plugins", {"name": "rate-limiting", "config": cfg})

    # cluster: needs database = postgres (this node's database is SQLite; test_rate_limiting_cluster.py).
    s, b, _ = post({"minute": 1, "policy": "cluster"})
    assert s == 400 and "needs database = postgres" in b["fields"]["config"]["policy"], b
    # redis needs a host (Kong's conditional entity check).
    s, b, _ = post({"minute": 1, "policy": "redis"})
    assert s == 400 and b["fields"]["config"]["redis"]["host"] == "required field missing", b
    assert "failed conditional validation given value of field 'config.policy'" in b["fields"]["@entity"]
    # TLS to Redis is accepted (test_rate_limiting_redis_tls.py); server_name is Kong's typedefs.sni.
    s, b, _ = post({"minute": 1, "policy": "redis", "redis": {"host": "127.0.0.1", "ssl": True, "ssl_verify": True,
                                                             "server_name": "redis.test"}})
    assert s == 201 and (b["config"]["redis"]["ssl"], b["config"]["redis"]["server_name"]) == (True, "redis.test"), b
    assert g.admin("DELETE", f"/plugins/{b['id']}")[0] == 204
    s, b, _ = post({"minute": 1, "policy": "redis", "redis": {"host": "127.0.0.1", "ssl": True, "server_name": "10.0.0.1"}})
    assert s == 400 and b["fields"]["config"]["redis"]["server_name"] == "must not be an IP", b
    # A host name is accepted (the master resolves it); a malformed host is Kong's typedefs.host error.
    s, b, _ = post({"minute": 1, "policy": "redis", "redis": {"host": "redis.example"}})
    assert s == 201 and b["config"]["redis"]["host"] == "redis.example", b
    assert g.admin("DELETE", f"/plugins/{b['id']}")[0] == 204
    s, b, _ = post({"minute": 1, "policy": "redis", "redis": {"host": "redis^example"}})
    assert s == 400 and b["fields"]["config"]["redis"]["host"] == "invalid value: redis^example", b
    s, b, _ = post({"minute": 1, "policy": "redis", "sync_rate": 0.01, "redis": {"host": "127.0.0.1"}})
    assert s == 400 and b["fields"]["config"] == "sync_rate must be greater than 0.02, or -1 to disable", b
    s, b, _ = post({"minute": 1, "policy": "redis", "sync_rate": 1, "redis": {"host": "127.0.0.1"}})
    assert s == 400 and "sync_rate" in b["fields"]["config"], b
    s, b, _ = post({"minute": 1, "policy": "local", "sync_rate": 1})
    assert s == 400 and b["fields"]["config"] == "sync_rate can only be used with the redis policy", b
    s, b, _ = post({"minute": 1, "policy": "redis", "redis": {"host": "127.0.0.1", "port": 70000}})
    assert s == 400 and "port" in b["fields"]["config"]["redis"], b
    # Kong 3.10's deprecated flat fields still work: they land in config.redis.
    s, b, _ = post({"minute": 1, "policy": "redis", "redis_host": "127.0.0.1", "redis_port": 6390,
                    "redis_timeout": 1500, "redis_database": 2, "redis_password": "p"})
    assert s == 201, b
    rd = b["config"]["redis"]
    assert (rd["host"], rd["port"], rd["timeout"], rd["database"], rd["password"]) == ("127.0.0.1", 6390, 1500, 2, "p")
    # 06-shorthand_fields_spec: the answers (POST, PATCH, GET) show the legacy fields too, mirroring config.redis.
    c = b["config"]
    assert (c["redis_host"], c["redis_port"], c["redis_timeout"], c["redis_database"], c["redis_ssl"]) == (
        "127.0.0.1", 6390, 1500, 2, False)
    s, b, _ = g.admin("PATCH", f"/plugins/{b['id']}", {"config": {"redis_host": "127.0.0.2"}})
    assert s == 200 and b["config"]["redis"]["host"] == "127.0.0.2" and b["config"]["redis_host"] == "127.0.0.2", b
    s, b, _ = g.admin("PATCH", f"/plugins/{b['id']}", {"config": {"redis": {"port": 6391}}})
    assert s == 200 and b["config"]["redis_port"] == 6391, b
    s, b, _ = g.admin("GET", f"/plugins/{b['id']}")
    assert s == 200 and (b["config"]["redis_host"], b["config"]["redis_port"]) == ("127.0.0.2", 6391)
    s, b, _ = post({"minute": 1, "policy": "redis", "redis_host": "127.0.0.1", "redis": {"host": "127.0.0.3"}})
    assert s == 400 and b["fields"]["config"]["redis_host"] == ("both deprecated and new field are used but their "
                                                                "values mismatch: redis_host = 127.0.0.1 vs redis.host = 127.0.0.3"), b
    # Defaults (kong/tools/redis/schema.lua).
    s, b, _ = g.admin("POST", "/routes", {"paths": ["/d"]})
    s, b, _ = g.admin("POST", f"/routes/{b['id']}/plugins", {"name": "rate-limiting", "config": {
        "minute": 1, "policy": "redis", "redis": {"host": "127.0.0.1"}}})
    assert s == 201, b
    rd = b["config"]["redis"]
    assert (rd["port"], rd["timeout"], rd["database"], rd["ssl"], rd["ssl_verify"]) == (6379, 2000, 0, False, False)


def test_pipelined_requests_and_body_plugins_wait_in_order(gateway, upstream, redis):
    """Pipelined requests on one connection each wait for Redis in turn and are answered in order; a
    plugin after rate-limiting that reads the body (request-transformer, priority 801) still sees it
    when access resumes after the wait."""
    r = redis()
    up = upstream("u")
    g = gateway(workers=1)
    setup_node(g, up, {"hour": 3, "policy": "redis", "redis": {"host": "127.0.0.1", "port": r.port}})
    c = socket.create_connection(("127.0.0.1", g.proxy_port), timeout=TIMEOUT)
    c.sendall(b"GET /r?a HTTP/1.1\r\nHost: t\r\n\r\n" * 3 + b"GET /r?b HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        d = c.recv(65536)
        if not d:
            break
        data += d
    c.close()
    heads = [p.split(b"\r\n\r\n")[0] for p in data.split(b"HTTP/1.1 ")[1:]]
    assert [int(h[:3]) for h in heads] == [200, 200, 200, 429], data[:300]
    assert [h.split(b"X-RateLimit-Remaining-Hour: ")[1][:1] for h in heads] == [b"2", b"1", b"0", b"0"]
    # request-transformer adds a form field: it reads the body after rate-limiting's wait.
    s, b, _ = g.admin("POST", "/routes", {"paths": ["/t"], "service": {"id": SERVICE_ID}})
    rid = b["id"]
    assert g.admin("POST", f"/routes/{rid}/plugins", {"name": "rate-limiting", "config": {
        "hour": 100, "policy": "redis", "redis": {"host": "127.0.0.1", "port": r.port}}})[0] == 201
    assert g.admin("POST", f"/routes/{rid}/plugins", {"name": "request-transformer", "config": {
        "add": {"body": ["added:yes"]}}})[0] == 201
    s, body, h = wait_until(lambda: (lambda x: x if x[0] == 200 and "X-RateLimit-Limit-Hour" in x[2] else None)(
        g.get("/t", method="POST", body=b"k=v", headers={"Content-Type": "application/x-www-form-urlencoded"})),
        what="/t with both plugins")
    got = up.requests[-1]["body"]
    assert b"k=v" in got and b"added=yes" in got, got
    assert h["X-RateLimit-Limit-Hour"] == "100"


def test_redis_host_by_name_resolved_by_the_master(gateway, upstream, redis):
    """config.redis.host as a name: the master resolves it (c-ares, dns_resolver) and hands the answer
    to the handler of each generation; the exact limit holds across a node using the name and one
    using `localhost`; a name without an answer is Redis down (fault_tolerant: proxied without headers,
    logged at most once per interval; otherwise 500); a changed answer moves new commands."""
    from test_dns import FakeDNS
    server = FakeDNS()
    try:
        r1 = redis()
        server.records["redis.test"] = [("A", "127.0.0.1", 1)]
        up = upstream("u")
        # One worker by name: when the answer moves, every later request of that node takes the new address.
        by_name = gateway(workers=1, dns_resolver=server.address)
        by_localhost = gateway(workers=2)
        setup_node(by_name, up, {"hour": 6, "policy": "redis", "limit_by": "ip",
                                 "redis": {"host": "redis.test", "port": r1.port}})
        setup_node(by_localhost, up, {"hour": 6, "policy": "redis", "limit_by": "ip",
                                      "redis": {"host": "localhost", "port": r1.port}})
        wait_until(lambda: server.count("redis.test", 1) >= 1, what="the master asks for the name")
        # Until the answer is published a request passes without headers (not counted in Redis).
        wait_until(lambda: rl_headers(by_name.get("/r")[2]), what="the name resolved and used")
        statuses = []
        for i in range(12):
            g = (by_name, by_localhost)[i % 2]
            statuses.append(g.get("/r")[0])
        # One request already counted by the probe above: 5 more pass across both nodes, then 429.
        assert statuses.count(200) == 5 and statuses.count(429) == 7, statuses
        keys = r1.cmd("KEYS", "ratelimit:*")
        assert len(keys) == 1 and r1.cmd("GET", keys[0]) == "6", keys
        # The name moves to another Redis (same port, 127.0.0.2, empty; TTL 1 s): new commands go there.
        r2 = redis(host="127.0.0.2", port=r1.port)
        server.records["redis.test"] = [("A", "127.0.0.2", 1)]

        def moved():
            by_name.get("/r")
            return r2.cmd("KEYS", "ratelimit:*")
        keys2 = wait_until(moved, timeout=TIMEOUT * 2, what="commands to the new address")
        used = int(r2.cmd("GET", keys2[0]))
        assert 1 <= used <= 6
        statuses = [by_name.get("/r")[0] for _ in range(8)]
        assert statuses.count(200) == 6 - used and statuses[-1] == 429, (used, statuses)
        assert r2.cmd("GET", keys2[0]) == "6"
        assert r1.cmd("GET", keys[0]) == "6"   # rejected requests are counted nowhere; none went to r1
        assert "Redis" not in by_localhost.log()
        # Names with no answer (NXDOMAIN): Redis down. fault_tolerant = false → Kong's 500.
        for path, name, tolerant in (("/strict", "nowhere.test", False), ("/tolerant", "gone.test", True)):
            s, b, _ = by_name.admin("POST", "/routes", {"paths": [path], "service": {"id": SERVICE_ID}})
            assert s == 201, b
            s, b, _ = by_name.admin("POST", f"/routes/{b['id']}/plugins", {"name": "rate-limiting", "config": {
                "hour": 1, "policy": "redis", "fault_tolerant": tolerant, "redis": {"host": name, "port": r1.port}}})
            assert s == 201, b
        wait_until(lambda: server.count("gone.test", 1) >= 1 and by_name.get("/tolerant")[0] == 200,
                   what="the route and the lookup")
        t0 = time.monotonic()
        for _ in range(6):
            s, _, h = by_name.get("/tolerant")
            assert s == 200 and not rl_headers(h), h
        s, body, h = by_name.get("/strict")
        assert s == 500 and json.loads(body)["message"] == "An unexpected error occurred", body
        assert not rl_headers(h)
        elapsed = time.monotonic() - t0
        wait_until(lambda: "no address for Redis host gone.test" in by_name.log(), what="the missing answer logged")
        lines = [l for l in by_name.log().splitlines() if "no address for Redis host gone.test" in l]
        # At most once per 10 s (+ 1 for the wait before t0).
        assert 1 <= len(lines) <= int(elapsed // 10) + 2, lines
    finally:
        server.stop()
