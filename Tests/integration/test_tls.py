"""TLS termination on the proxy listener (issue #14, first part; KONG-TLS-CLUSTER.md A.2, scenarios of Kong's
spec/02-integration/05-proxy/06-ssl_spec.lua that do not need the certificates entity): default certificates
generated in the prefix, ssl_cert pairs, cipher suites, X-Forwarded-Proto, https-only routes, plain HTTP on
the TLS port, large bodies and pipelining over TLS, bad handshakes, renegotiation, resumption across workers.
Clients are Python's ssl module and `openssl s_client`; certificates are made with the openssl CLI."""
import hashlib
import json
import os
import socket
import ssl
import stat
import subprocess
import time

import pytest

from conftest import TIMEOUT, Gateway, TLSTestServer, free_port, wait_until


def client_ctx(**kw):
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    for k, v in kw.items():
        setattr(c, k, v)
    return c


def tls_exchange(port, raw, ctx=None, session=None, read_all=False):
    """Sends raw bytes over TLS; returns (response bytes, the SSL socket's session, reused)."""
    ctx = ctx or client_ctx()
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        with ctx.wrap_socket(s, server_hostname="localhost", session=session) as t:
            t.sendall(raw)
            data = b""
            while True:
                try:
                    chunk = t.recv(65536)
                except (ssl.SSLError, ConnectionResetError):
                    break
                if not chunk:
                    break
                data += chunk
                if not read_all and complete(data):
                    break
            return data, t.session, t.session_reused


def complete(data):
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return True


def status_of(data):
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0


def body_of(data):
    return data.partition(b"\r\n\r\n")[2]


@pytest.fixture
def tlsgw(tmp_path, upstream):
    up = upstream("u")
    made = []

    def make(workers=2, **extra):
        g = Gateway(str(tmp_path / f"gw{len(made)}"), workers=workers,
                    extra=dict({"client_header_timeout": "2s"}, **{k: str(v) for k, v in extra.items()}))
        g.tls_port = free_port()
        g.write_conf(proxy_listen=f"127.0.0.1:{g.proxy_port}, 127.0.0.1:{g.tls_port} ssl")
        r = g.cli("start", "-c", g.conf, "-p", g.prefix)
        made.append(g)
        if r.returncode != 0:
            return g, r
        s, b, _ = g.admin("POST", "/services", {"name": "s", "url": f"http://{up.address}"})
        assert s == 201, b
        s, b, _ = g.admin("POST", "/services/s/routes", {"paths": ["/t"]})
        assert s == 201, b
        g.wait_route("/t")
        return g, r

    yield make, up
    for g in made:
        g.stop()


def test_default_certificate_https_and_forwarded_headers(tlsgw):
    make, up = tlsgw
    g, r = make()
    assert r.returncode == 0, r.stderr
    ssl_dir = os.path.join(g.prefix, "ssl")
    assert sorted(os.listdir(ssl_dir)) == ["kong-default-ecdsa.crt", "kong-default-ecdsa.key", "kong-default.crt", "kong-default.key"]
    for k in ("kong-default.key", "kong-default-ecdsa.key"):
        assert stat.S_IMODE(os.stat(os.path.join(ssl_dir, k)).st_mode) == 0o600
    subject = subprocess.run(["openssl", "x509", "-noout", "-subject", "-in", os.path.join(ssl_dir, "kong-default.crt")],
                             capture_output=True, text=True).stdout
    assert "CN = localhost" in subject and "O = Kong" in subject
    data, _, _ = tls_exchange(g.tls_port, b"GET /t/x HTTP/1.1\r\nHost: example.test\r\n\r\n")
    assert status_of(data) == 200, data
    h = {k.lower(): v for k, v in up.requests[-1]["headers"].items()}
    assert h["x-forwarded-proto"] == "https" and h["x-forwarded-port"] == str(g.tls_port)
    # The plain listener still says http.
    assert g.get("/t/x")[0] == 200
    h = {k.lower(): v for k, v in up.requests[-1]["headers"].items()}
    assert h["x-forwarded-proto"] == "http"
    # An ECDSA-only client gets the ECDSA certificate (both pairs are loaded).
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{g.tls_port}", "-tls1_2", "-sigalgs", "ECDSA+SHA256"],
                         input="", capture_output=True, text=True, timeout=TIMEOUT).stdout
    assert "ECDSA" in out or "id-ecPublicKey" in out or "ecdsa" in out.lower(), out[-800:]
    # Restart: the generated pair is reused, not made again.
    before = open(os.path.join(ssl_dir, "kong-default.crt"), "rb").read()
    g.stop()
    assert g.cli("start", "-c", g.conf, "-p", g.prefix).returncode == 0
    assert open(os.path.join(ssl_dir, "kong-default.crt"), "rb").read() == before


def test_https_only_route_and_plain_http_on_tls_port(tlsgw):
    make, up = tlsgw
    g, _ = make(workers=1)
    s, b, _ = g.admin("POST", "/services/s/routes", {"paths": ["/secure"], "protocols": ["https"]})
    assert s == 201, b
    wait_until(lambda: g.get("/secure")[0] == 426, what="https-only route")
    data, _, _ = tls_exchange(g.tls_port, b"GET /secure HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(data) == 200
    with socket.create_connection(("127.0.0.1", g.tls_port), timeout=TIMEOUT) as s:
        s.sendall(b"GET /t HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n\r\n")
        f = s.makefile("rb")
        resp = f.read()   # answered, then closed
    assert resp.startswith(b"HTTP/1.1 400") and b"The plain HTTP request was sent to HTTPS port" in resp


def test_large_bodies_and_pipelining_over_tls(tlsgw, raw_upstream):
    make, _ = tlsgw
    g, _ = make(workers=1)
    big = os.urandom(1 << 20)

    def answer(sock, req, u):
        if req["method"] == "POST":
            body = json.dumps({"sha": hashlib.sha256(req["body"]).hexdigest(), "len": len(req["body"])}).encode()
        else:
            body = big
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        return True

    up = raw_upstream(answer)
    s, b, _ = g.admin("POST", "/services", {"name": "big", "url": f"http://{up.address}"})
    assert s == 201
    s, b, _ = g.admin("POST", "/services/big/routes", {"paths": ["/big"]})
    assert s == 201
    wait_until(lambda: g.get("/big")[0] == 200, what="route")
    data, _, _ = tls_exchange(g.tls_port, b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(big) + big)
    assert status_of(data) == 200 and json.loads(body_of(data))["sha"] == hashlib.sha256(big).hexdigest()
    data, _, _ = tls_exchange(g.tls_port, b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
    assert body_of(data) == big
    # Two pipelined requests in one TLS write: two answers, in order.
    data, _, _ = tls_exchange(g.tls_port, b"GET /t/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /t/2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                              read_all=True)
    assert data.count(b"HTTP/1.1 200") == 2
    first, second = data.split(b"HTTP/1.1 200")[1:3]
    assert b'"/t/1"' in first or b"/1" in first


def test_bad_handshakes_do_not_disturb_others(tlsgw):
    make, _ = tlsgw
    g, _ = make(workers=1)
    garbage = socket.create_connection(("127.0.0.1", g.tls_port), timeout=TIMEOUT)
    garbage.sendall(b"\x16\x03\x01\x00\x05hello-not-tls" * 10)
    stalled = socket.create_connection(("127.0.0.1", g.tls_port), timeout=TIMEOUT)
    stalled.sendall(b"\x16\x03\x01")   # a record header, then nothing
    # Others are served meanwhile.
    data, _, _ = tls_exchange(g.tls_port, b"GET /t HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(data) == 200
    garbage.settimeout(TIMEOUT)
    assert garbage.recv(4096)[:1] in (b"\x15", b"")   # a TLS alert or a close
    stalled.settimeout(TIMEOUT)
    t0 = time.monotonic()
    assert stalled.recv(4096) == b""                  # closed by client_header_timeout (2 s)
    assert time.monotonic() - t0 < TIMEOUT
    garbage.close()
    stalled.close()
    # Client-initiated renegotiation is refused.
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{g.tls_port}", "-tls1_2"],
                         input="R\n", capture_output=True, text=True, timeout=TIMEOUT)
    assert "no renegotiation" in (out.stdout + out.stderr)
    data, _, _ = tls_exchange(g.tls_port, b"GET /t HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(data) == 200
    assert g.master_pid() and len(g.worker_pids()) == 1


def test_session_resumption_across_workers(tlsgw):
    make, _ = tlsgw
    g, _ = make(workers=2)
    ctx = client_ctx()
    for proto in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ctx = client_ctx(maximum_version=proto, minimum_version=proto)
        _, session, reused = tls_exchange(g.tls_port, b"GET /t HTTP/1.1\r\nHost: x\r\n\r\n", ctx=ctx)
        assert not reused and session is not None
        # SO_REUSEPORT spreads new connections over both workers: every resumption succeeds whichever
        # worker takes it (the ticket key is shared).
        for _ in range(8):
            data, _, reused = tls_exchange(g.tls_port, b"GET /t HTTP/1.1\r\nHost: x\r\n\r\n", ctx=ctx, session=session)
            assert status_of(data) == 200 and reused, proto


def test_configured_certificates_and_suites(tlsgw, tmp_path):
    make, _ = tlsgw
    crt, key = str(tmp_path / "c.crt"), str(tmp_path / "c.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt, "-days", "2",
                    "-subj", "/CN=configured.test"], check=True, capture_output=True)
    g, r = make(workers=1, ssl_cert=crt, ssl_cert_key=key, ssl_cipher_suite="modern")
    assert r.returncode == 0, r.stderr
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{g.tls_port}"], input="", capture_output=True,
                         text=True, timeout=TIMEOUT).stdout
    assert "CN = configured.test" in out and "TLSv1.3" in out
    assert not os.path.exists(os.path.join(g.prefix, "ssl"))
    # modern: TLS 1.2 is refused.
    with pytest.raises(ssl.SSLError):
        tls_exchange(g.tls_port, b"GET /t HTTP/1.1\r\nHost: x\r\n\r\n",
                     ctx=client_ctx(maximum_version=ssl.TLSVersion.TLSv1_2))
    g.stop()
    # Start-up errors, in Kong's words.
    for extra, message in [({"ssl_cert": crt}, "ssl_cert_key must be specified"),
                           ({"ssl_cert": "/nonexistent.crt", "ssl_cert_key": key}, "ssl_cert: failed loading certificate from /nonexistent.crt"),
                           ({"ssl_cipher_suite": "fancy"}, "Undefined cipher suite fancy")]:
        g2, r2 = make(workers=1, **extra)
        assert r2.returncode != 0 and message in (r2.stdout + r2.stderr), (extra, r2.stdout, r2.stderr)


def test_http2_flag_is_refused(tmp_path):
    g = Gateway(str(tmp_path / "h2"), workers=1)
    g.write_conf(proxy_listen=f"127.0.0.1:{g.proxy_port} ssl http2")
    r = g.cli("start", "-c", g.conf, "-p", g.prefix)
    assert r.returncode != 0 and "http2" in r.stderr and "not supported" in r.stderr


class TLSUpstream(TLSTestServer):
    """An HTTPS upstream on 127.0.0.1 with a self-signed certificate: records the SNI of each TLS connection,
    the connections and the requests; answers 200 with a JSON summary (keep-alive)."""

    def __init__(self, tmp_path):
        self.crt, self.key = str(tmp_path / "up.crt"), str(tmp_path / "up.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.key, "-out", self.crt,
                        "-days", "2", "-subj", "/CN=upstream.test"], check=True, capture_output=True)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(self.crt, self.key)
        self.snis, self.connections, self.requests = [], 0, []
        self.ctx.sni_callback = lambda sock, name, ctx: self.snis.append(name)
        self.listen()

    def serve(self, c):
        from conftest import read_http_request
        try:
            t = self.ctx.wrap_socket(c, server_side=True)
        except (ssl.SSLError, OSError):
            c.close()
            return
        self.connections += 1
        f = t.makefile("rb")
        try:
            while True:
                r = read_http_request(f)
                if r is None:
                    break
                self.requests.append(r)
                body = json.dumps({"len": len(r["body"]), "sha": hashlib.sha256(r["body"]).hexdigest(),
                                   "host": r["headers"].get("host")}).encode()
                t.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        except (OSError, ValueError, ssl.SSLError):
            pass
        finally:
            t.close()


def test_https_upstream(gateway, tmp_path):
    g = gateway(workers=1)
    up = TLSUpstream(tmp_path)
    try:
        # A host name: sent as SNI (Kong sends none for an IP address).
        s, b, _ = g.admin("POST", "/services", {"name": "tls-up", "url": f"https://localhost:{up.port}/"})
        assert s == 201, b
        s, b, _ = g.admin("POST", "/services/tls-up/routes", {"paths": ["/up"]})
        assert s == 201, b
        g.wait_route("/up")
        for _ in range(5):
            s, body, _ = g.get("/up")
            assert s == 200 and json.loads(body)["host"] == f"localhost:{up.port}"
        assert up.connections == 1, "the TLS connection is kept alive and pooled"
        assert up.snis and set(up.snis) == {"localhost"}
        big = os.urandom(1 << 20)
        s, body, _ = g.get("/up", method="POST", body=big)
        assert s == 200 and json.loads(body)["sha"] == hashlib.sha256(big).hexdigest()
        # An IP address: no SNI.
        s, b, _ = g.admin("POST", "/services", {"name": "tls-ip", "url": f"https://127.0.0.1:{up.port}/"})
        assert s == 201
        s, b, _ = g.admin("POST", "/services/tls-ip/routes", {"paths": ["/ip"]})
        assert s == 201
        g.wait_route("/ip")
        assert None in up.snis
        # tls_verify: the self-signed certificate is not trusted by the system store → 502, the worker goes on.
        s, b, _ = g.admin("PATCH", "/services/tls-up", {"tls_verify": True, "tls_verify_depth": 2})
        assert s == 200, b
        wait_until(lambda: g.get("/up")[0] == 502, what="verification failure")
        assert "TLS handshake failed" in g.log() and "certificate verify failed" in g.log()
        assert g.get("/ip")[0] == 200
        # Not run yet, so refused: client certificates and CA certificates.
        s, b, _ = g.admin("PATCH", "/services/tls-up", {"ca_certificates": ["4e3ad2e4-0bc4-4638-8e34-c84a417ba39b"]})
        assert s == 400 and "ca_certificates" in b["fields"], b
    finally:
        up.stop()


def test_https_active_health_checks(gateway, tmp_path):
    g = gateway(workers=1)
    up = TLSUpstream(tmp_path)
    try:
        checks = {"active": {"type": "https", "https_sni": "probe.test", "https_verify_certificate": False,
                             "http_path": "/status", "timeout": 2,
                             "healthy": {"interval": 1, "successes": 1},
                             "unhealthy": {"interval": 1, "tcp_failures": 1, "http_failures": 1}}}
        s, b, _ = g.admin("POST", "/upstreams", {"name": "tls-hc", "healthchecks": checks})
        assert s == 201, b
        s, b, _ = g.admin("POST", "/upstreams/tls-hc/targets", {"target": f"127.0.0.1:{up.port}"})
        assert s == 201, b

        def health():
            return g.admin("GET", "/upstreams/tls-hc/health")[1]["data"][0]["health"]

        wait_until(lambda: any(r["target"] == "/status" for r in up.requests), what="an https probe")
        assert "probe.test" in up.snis
        wait_until(lambda: health() == "HEALTHY", what="healthy over TLS")
        # Verification on: the self-signed certificate fails the handshake → a TCP failure → UNHEALTHY.
        checks["active"]["https_verify_certificate"] = True
        s, b, _ = g.admin("PATCH", "/upstreams/tls-hc", {"healthchecks": checks})
        assert s == 200, b
        wait_until(lambda: health() == "UNHEALTHY", timeout=15, what="unhealthy after verification fails")
    finally:
        up.stop()
