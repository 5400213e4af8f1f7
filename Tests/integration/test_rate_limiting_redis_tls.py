"""rate-limiting `policy = redis` over TLS (`config.redis.ssl`, `ssl_verify`, `server_name`; issue #15), with a
private TLS-only redis-server (Debian's 7.0 is built with TLS: `--port 0 --tls-port P`) whose CA and server
certificate the test makes with the openssl CLI. Kong's semantics (lua-resty-redis over ngx_lua's
sslhandshake): ssl_verify off by default; server_name is the SNI and, with ssl_verify, the name checked; the
trust store is `lua_ssl_trusted_certificate` (default `system`). A failed handshake is a Redis error:
fault_tolerant → proxied without rate-limit headers and logged; otherwise 500."""
import json
import os
import socket
import ssl
import subprocess
import threading

import pytest

from conftest import TIMEOUT, free_port, wait_until
from test_rate_limiting_redis import REDIS_BIN, SERVICE_ID, Redis, raw_get, read_resp, rl_headers, setup_node


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=TIMEOUT * 3)


class Certs:
    """A test CA and a server certificate it signs (SAN redis.test and 127.0.0.1), plus an unrelated CA."""

    def __init__(self, d):
        self.d = d
        self.ca, self.ca_key = self.make_ca("Redis Test CA", "ca")
        self.other_ca, _ = self.make_ca("Other CA", "other")
        self.crt, self.key = os.path.join(d, "server.crt"), os.path.join(d, "server.key")
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", self.key, cwd=d)
        openssl("req", "-new", "-key", self.key, "-out", "server.csr", "-subj", "/CN=redis.test", cwd=d)
        with open(os.path.join(d, "server.ext"), "w") as f:
            f.write("subjectAltName=DNS:redis.test,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
        openssl("x509", "-req", "-in", "server.csr", "-CA", self.ca, "-CAkey", self.ca_key, "-CAcreateserial",
                "-out", self.crt, "-days", "2", "-extfile", "server.ext", cwd=d)
        # A longer chain: CA → intermediate → server (chain.crt = server + intermediate, as Redis serves it).
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "inter.key", cwd=d)
        openssl("req", "-new", "-key", "inter.key", "-out", "inter.csr", "-subj", "/CN=Redis Intermediate", cwd=d)
        with open(os.path.join(d, "inter.ext"), "w") as f:
            f.write("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n")
        openssl("x509", "-req", "-in", "inter.csr", "-CA", self.ca, "-CAkey", self.ca_key, "-CAcreateserial",
                "-out", "inter.crt", "-days", "2", "-extfile", "inter.ext", cwd=d)
        openssl("req", "-new", "-key", self.key, "-out", "leaf.csr", "-subj", "/CN=redis.test", cwd=d)
        openssl("x509", "-req", "-in", "leaf.csr", "-CA", "inter.crt", "-CAkey", "inter.key", "-CAcreateserial",
                "-out", "leaf.crt", "-days", "2", "-extfile", "server.ext", cwd=d)
        self.chain = os.path.join(d, "chain.crt")
        with open(self.chain, "w") as out:
            for name in ("leaf.crt", "inter.crt"):
                with open(os.path.join(d, name)) as f:
                    out.write(f.read())

    def make_ca(self, cn, name):
        key, crt = os.path.join(self.d, f"{name}.key"), os.path.join(self.d, f"{name}.crt")
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key, cwd=self.d)
        openssl("req", "-x509", "-new", "-key", key, "-out", crt, "-days", "2", "-subj", f"/CN={cn}",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                cwd=self.d)
        return crt, key


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return Certs(str(tmp_path_factory.mktemp("redis-certs")))


class TLSRedis(Redis):
    """A redis-server that speaks TLS only (no plain port); cmd() talks TLS to it."""

    def __init__(self, tmp, certs, extra=(), cert=None):
        self.certs = certs
        self.cert = cert or certs.crt
        super().__init__(tmp, extra)

    def start(self):
        c = self.certs
        self.proc = subprocess.Popen(
            [REDIS_BIN, "--port", "0", "--tls-port", str(self.port), "--bind", self.host, "--dir", self.dir,
             "--tls-cert-file", self.cert, "--tls-key-file", c.key, "--tls-ca-cert-file", c.ca, "--tls-auth-clients", "no",
             "--save", "", "--appendonly", "no", "--daemonize", "no",
             "--logfile", os.path.join(self.dir, "redis.log"), *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self.cmd("PING") == "PONG", what="TLS redis-server up")

    def cmd(self, *args, db=0, auth=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.certs.ca)
        try:
            raw = socket.create_connection((self.host, self.port), timeout=TIMEOUT)
        except OSError:
            return None
        with ctx.wrap_socket(raw, server_hostname="redis.test") as s:
            f = s.makefile("rb")
            pre = [("AUTH", *auth)] if auth else []
            if db:
                pre.append(("SELECT", str(db)))
            for c in pre + [args]:
                s.sendall(b"*%d\r\n" % len(c) + b"".join(b"$%d\r\n%s\r\n" % (len(str(a).encode()), str(a).encode()) for a in c))
            out = None
            for _ in pre + [args]:
                out = read_resp(f)
            return out


@pytest.fixture
def tls_redis(tmp_path, certs):
    servers = []

    def make(extra=(), cert=None):
        r = TLSRedis(str(tmp_path / f"tr{len(servers)}"), certs, extra, cert=cert)
        servers.append(r)
        return r
    yield make
    for r in servers:
        r.stop()


def test_tls_exact_limit_across_two_nodes(gateway, upstream, tls_redis):
    """ssl = true (ssl_verify off, Kong's default): two nodes × 2 workers, hour = 10 → exactly 10 of 40 pass,
    counted in the TLS-only Redis under Kong's key."""
    r = tls_redis()
    up = upstream("u")
    cfg = {"hour": 10, "policy": "redis", "limit_by": "ip", "fault_tolerant": False,
           "redis": {"host": "127.0.0.1", "port": r.port, "ssl": True}}
    nodes = [gateway(workers=2), gateway(workers=2)]
    for g in nodes:
        b = setup_node(g, up, cfg)
        assert b["config"]["redis"]["ssl"] is True and b["config"]["redis"]["ssl_verify"] is False
    results = []
    lock = threading.Lock()

    def client(k):
        for i in range(5):
            res = raw_get(nodes[(k + i) % 2].proxy_port, "/r")
            with lock:
                results.append(res)

    ts = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(TIMEOUT * 6)
    statuses = sorted(s for s, _, _ in results)
    assert len(results) == 40
    assert statuses.count(200) == 10 and statuses.count(429) == 30, statuses
    assert up.hits == 10
    remaining = sorted(int(h["x-ratelimit-remaining-hour"]) for s, h, _ in results if s == 200)
    assert remaining == list(range(10)), remaining
    keys = r.cmd("KEYS", "ratelimit:*")
    assert len(keys) == 1 and keys[0].endswith(":hour") and r.cmd("GET", keys[0]) == "10", keys
    for g in nodes:
        assert "Redis" not in g.log(), g.log()[-2000:]


def test_tls_verified_with_trusted_ca_auth_and_database(gateway, upstream, tls_redis, certs):
    """ssl_verify = true with the test CA in lua_ssl_trusted_certificate and server_name matching the
    certificate: limiting works; AUTH (ACL user) and SELECT run on the new TLS connection."""
    r = tls_redis()
    assert r.cmd("ACL", "SETUSER", "gw", "on", ">s3cret", "~*", "+@all") == "OK"
    up = upstream("u")
    g = gateway(workers=2, lua_ssl_trusted_certificate=certs.ca)
    setup_node(g, up, {"hour": 3, "policy": "redis", "fault_tolerant": False, "redis": {
        "host": "127.0.0.1", "port": r.port, "ssl": True, "ssl_verify": True, "server_name": "redis.test",
        "database": 2, "username": "gw", "password": "s3cret"}})
    assert [g.get("/r")[0] for _ in range(4)] == [200, 200, 200, 429]
    keys = r.cmd("KEYS", "ratelimit:*", db=2)
    assert len(keys) == 1 and r.cmd("GET", keys[0], db=2) == "3"
    assert r.cmd("KEYS", "ratelimit:*") == []
    # `system` listed too: the test CA still verifies (the files are joined, as Kong's combined bundle).
    g2 = gateway(workers=1, lua_ssl_trusted_certificate=f"system,{certs.ca}", lua_ssl_verify_depth=2)
    setup_node(g2, up, {"hour": 100, "policy": "redis", "fault_tolerant": False, "redis": {
        "host": "127.0.0.1", "port": r.port, "ssl": True, "ssl_verify": True, "server_name": "redis.test"}})
    s, _, h = g2.get("/r")
    assert s == 200 and h["X-RateLimit-Remaining-Hour"] == "99"
    assert "Redis" not in g.log() + g2.log()
    # lua_ssl_verify_depth (OpenSSL's count, as nginx's): a chain with an intermediate CA needs 1 (Kong's
    # default); 0 allows the server certificate and its trust anchor only.
    r2 = tls_redis(cert=certs.chain)
    for depth, expect in ((1, 200), (0, 500)):
        g3 = gateway(workers=1, lua_ssl_trusted_certificate=certs.ca, lua_ssl_verify_depth=depth)
        setup_node(g3, up, {"hour": 100, "policy": "redis", "fault_tolerant": False, "redis": {
            "host": "127.0.0.1", "port": r2.port, "ssl": True, "ssl_verify": True, "server_name": "redis.test"}})
        s, body, h = g3.get("/r")
        assert s == expect and bool(rl_headers(h)) == (expect == 200), (depth, body)
    wait_until(lambda: "certificate chain too long" in g3.log(), what="the depth failure logged")


def test_tls_verification_failures(gateway, upstream, tls_redis, certs):
    """A server_name the certificate does not name, or a CA the node does not trust, fails the handshake:
    fault_tolerant → proxied without headers and the error logged; otherwise Kong's 500. Without
    ssl_verify the same names pass (no check, as Kong). Plain RESP to the TLS port is a Redis error too."""
    r = tls_redis()
    up = upstream("u")
    g = gateway(workers=1, lua_ssl_trusted_certificate=certs.ca)
    setup_node(g, up, {"hour": 100, "policy": "redis", "fault_tolerant": False, "redis": {
        "host": "127.0.0.1", "port": r.port, "ssl": True, "ssl_verify": True, "server_name": "redis.test"}})
    routes = {
        "/wrong-name-strict": ({"ssl": True, "ssl_verify": True, "server_name": "other.test"}, False),
        "/wrong-name-tolerant": ({"ssl": True, "ssl_verify": True, "server_name": "wrong.test"}, True),
        "/no-verify": ({"ssl": True, "server_name": "other.test"}, False),
        "/plain-to-tls": ({"ssl": False}, False),
    }
    for path, (tls, tolerant) in routes.items():
        s, b, _ = g.admin("POST", "/routes", {"paths": [path], "service": {"id": SERVICE_ID}})
        assert s == 201, b
        s, b, _ = g.admin("POST", f"/routes/{b['id']}/plugins", {"name": "rate-limiting", "config": {
            "hour": 100, "policy": "redis", "fault_tolerant": tolerant,
            "redis": {"host": "127.0.0.1", "port": r.port, "timeout": 1000, **tls}}})
        assert s == 201, b
    g.wait_route("/no-verify")
    s, _, h = g.get("/no-verify")
    assert s == 200 and h["X-RateLimit-Limit-Hour"] == "100"
    s, body, h = g.get("/wrong-name-strict")
    assert s == 500 and json.loads(body)["message"] == "An unexpected error occurred", body
    assert not rl_headers(h)
    for _ in range(3):
        s, _, h = g.get("/wrong-name-tolerant")
        assert s == 200 and not rl_headers(h), h
    wait_until(lambda: "TLS handshake failed" in g.log() and "(62:hostname mismatch)" in g.log(),
               what="the handshake failure logged with its reason")
    s, body, h = g.get("/plain-to-tls")
    assert s == 500 and not rl_headers(h), body
    # The good endpoint is untouched by the others' failures.
    s, _, h = g.get("/r")
    assert s == 200 and h["X-RateLimit-Limit-Hour"] == "100"
    # A node that trusts the system store only: the test CA is unknown → the handshake fails.
    g2 = gateway(workers=1)
    setup_node(g2, up, {"hour": 5, "policy": "redis", "fault_tolerant": False, "redis": {
        "host": "127.0.0.1", "port": r.port, "ssl": True, "ssl_verify": True, "server_name": "redis.test"}})
    s, body, h = g2.get("/r")
    assert s == 500 and json.loads(body)["message"] == "An unexpected error occurred" and not rl_headers(h)
    wait_until(lambda: "(19:self-signed certificate in certificate chain)" in g2.log(), what="the untrusted CA logged")
    s, b, _ = g2.admin("GET", f"/services/{SERVICE_ID}/plugins")
    assert g2.admin("PATCH", f"/plugins/{b['data'][0]['id']}", {"config": {"fault_tolerant": True}})[0] == 200
    s, _, h = wait_until(lambda: (lambda x: x if x[0] == 200 else None)(g2.get("/r")), what="fault tolerant pass")
    assert not rl_headers(h)
    assert r.cmd("KEYS", "ratelimit:*") and len(r.cmd("KEYS", "ratelimit:*")) == 2   # /r of g and /no-verify only


def test_tls_redis_stopped_and_back(gateway, upstream, tls_redis):
    """The TLS Redis stopped: fault_tolerant → proxied without headers; false → 500. Back on the same port:
    limiting resumes (a new connection and handshake) without a restart."""
    r = tls_redis()
    up = upstream("u")
    g = gateway(workers=1)
    setup_node(g, up, {"hour": 5, "policy": "redis", "redis": {"host": "127.0.0.1", "port": r.port, "ssl": True,
                                                               "timeout": 500}})
    s, _, h = g.get("/r")
    assert s == 200 and h["X-RateLimit-Remaining-Hour"] == "4"
    r.stop()
    for _ in range(5):
        s, _, h = g.get("/r")
        assert s == 200 and not rl_headers(h), h
    s, b, _ = g.admin("GET", f"/services/{SERVICE_ID}/plugins")
    assert g.admin("PATCH", f"/plugins/{b['data'][0]['id']}", {"config": {"fault_tolerant": False}})[0] == 200
    s, body, h = wait_until(lambda: (lambda x: x if x[0] == 500 else None)(g.get("/r")), what="500 with Redis down")
    assert json.loads(body)["message"] == "An unexpected error occurred" and not rl_headers(h)
    r.start()
    s, _, h = wait_until(lambda: (lambda x: x if x[0] == 200 else None)(g.get("/r")), timeout=TIMEOUT * 2,
                         what="limiting resumed")
    assert h["X-RateLimit-Limit-Hour"] == "5"
    statuses = [g.get("/r")[0] for _ in range(6)]
    assert statuses.count(200) <= 4 and statuses[-1] == 429, statuses


def test_trusted_certificate_setting_checked_at_start(gateway, certs, tmp_path):
    """Kong's conf_loader error for a file that does not hold a certificate; a depth that is not a number."""
    missing = str(tmp_path / "nope.pem")
    g = gateway(workers=1, start=False, lua_ssl_trusted_certificate=missing)
    res = g.cli("start", "-c", g.conf, "-p", g.prefix)
    assert res.returncode != 0
    assert f"lua_ssl_trusted_certificate: failed loading certificate from {missing}" in res.stdout + res.stderr
    g2 = gateway(workers=1, start=False, lua_ssl_trusted_certificate=certs.ca, lua_ssl_verify_depth="x")
    res = g2.cli("start", "-c", g2.conf, "-p", g2.prefix)
    assert res.returncode != 0 and "lua_ssl_verify_depth" in res.stdout + res.stderr


def test_idle_connection_closed_by_redis_reconnects(gateway, upstream, tls_redis):
    """Redis closing an idle TLS connection (its `timeout` setting) is no error: the next request opens
    a new connection at once and is counted (fault_tolerant = false would give 500 otherwise)."""
    r = tls_redis(extra=("--timeout", "1"))
    up = upstream("u")
    g = gateway(workers=1)
    setup_node(g, up, {"hour": 5, "policy": "redis", "fault_tolerant": False,
                       "redis": {"host": "127.0.0.1", "port": r.port, "ssl": True}})
    s, _, h = g.get("/r")
    assert s == 200 and h["X-RateLimit-Remaining-Hour"] == "4"

    def clients():
        return [l for l in (r.cmd("CLIENT", "LIST") or "").splitlines() if "cmd=evalsha" in l or "cmd=script" in l]
    wait_until(lambda: not clients(), timeout=TIMEOUT * 2, what="Redis closed the idle gateway connection")
    s, _, h = g.get("/r")
    assert s == 200 and h["X-RateLimit-Remaining-Hour"] == "3", h
    assert "Redis" not in g.log()


def test_https_health_checks_use_the_same_trust_store(gateway, tmp_path):
    """Kong's active https checks verify against the cosocket store too (lua_ssl_trusted_certificate): a
    self-signed upstream is UNHEALTHY with the system store, HEALTHY once its certificate is trusted
    (applied on reload)."""
    from test_tls import TLSUpstream
    g = gateway(workers=1)
    up = TLSUpstream(tmp_path)
    try:
        checks = {"active": {"type": "https", "https_sni": "upstream.test", "https_verify_certificate": True,
                             "http_path": "/status", "timeout": 2,
                             "healthy": {"interval": 1, "successes": 1},
                             "unhealthy": {"interval": 1, "tcp_failures": 1, "http_failures": 1}}}
        s, b, _ = g.admin("POST", "/upstreams", {"name": "tls-hc", "healthchecks": checks})
        assert s == 201, b
        s, b, _ = g.admin("POST", "/upstreams/tls-hc/targets", {"target": f"127.0.0.1:{up.port}"})
        assert s == 201, b

        def health():
            return g.admin("GET", "/upstreams/tls-hc/health")[1]["data"][0]["health"]
        wait_until(lambda: health() == "UNHEALTHY", timeout=15, what="untrusted: unhealthy")
        assert not any(r["target"] == "/status" for r in up.requests)
        g.write_conf(lua_ssl_trusted_certificate=up.crt)
        g.cli("reload", "-c", g.conf, "-p", g.prefix, check=True)
        wait_until(lambda: health() == "HEALTHY", timeout=15, what="trusted after reload: healthy")
        assert any(r["target"] == "/status" for r in up.requests)
    finally:
        up.stop()
