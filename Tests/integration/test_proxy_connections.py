"""Connections through the HTTP/1.1 reverse proxy (KONG.md §3): Connection: close honoured, upstream
keep-alive reuse, concurrent clients, pooled connections the upstream closes, client keep-alive and
pipelining, and the Upgrade (WebSocket) tunnel. One gateway (1 worker) serves the module
(proxy_harness); every test uses its own services/routes and upstreams."""
import http.client
import json
import time

from conftest import TIMEOUT
from proxy_harness import add, raw_conn, read_response, req, scripted, wait_routed
from proxy_harness import gw  # noqa: F401 - the module's gateway (a fixture)


def test_connection_close_honoured(gw, upstream):
    g = gw
    u = upstream("cc")
    add(g, u.address, {"paths": ["/cclose"]})
    wait_routed(g, "/cclose")
    s, f = raw_conn(g)
    try:
        s.sendall(b"GET /cclose HTTP/1.1\r\nHost: c.test\r\nConnection: close\r\n\r\n")
        r = read_response(f)
        assert r.status == 200 and r.headers["connection"] == "close"
        assert f.read() == b""          # the gateway closed the connection
    finally:
        f.close()
        s.close()
    # HTTP/1.0 without keep-alive: closed too
    s, f = raw_conn(g)
    try:
        s.sendall(b"GET /cclose HTTP/1.0\r\nHost: c.test\r\n\r\n")
        r = read_response(f)
        assert r.status == 200
        assert f.read() == b""
    finally:
        f.close()
        s.close()


def test_keepalive_reuse_to_upstream(gw, upstream):
    g = gw
    u = upstream("ka")
    add(g, u.address, {"paths": ["/keepalive"]})
    wait_routed(g, "/keepalive")
    before_hits, before_conns = u.hits, u.connections
    for i in range(50):
        r = req(g, "GET", f"/keepalive/{i}")
        assert r.status == 200
    assert u.hits - before_hits == 50
    assert u.connections - before_conns <= 3, u.connections - before_conns


def test_concurrent_clients_get_their_own_responses(gw, upstream):
    """Many clients at once through the shared upstream pool: every response belongs to its request."""
    import concurrent.futures
    g = gw
    u = upstream("conc")
    add(g, u.address, {"paths": ["/conc"], "strip_path": False})
    wait_routed(g, "/conc/0")

    def client(n):
        c = http.client.HTTPConnection("127.0.0.1", g.proxy_port, timeout=TIMEOUT)
        try:
            out = []
            for i in range(10):
                body = f"{n}-{i}".encode() * (i + 1)
                c.request("POST", f"/conc/{n}/{i}", body=body)
                r = c.getresponse()
                j = json.loads(r.read())
                out.append((r.status, j["path"], j["body_len"]) == (200, f"/conc/{n}/{i}", len(body)))
            return all(out)
        finally:
            c.close()
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        results = list(ex.map(client, range(16)))
    assert results == [True] * 16


def test_upstream_closing_pooled_connections(gw, raw_upstream):
    """An upstream that closes kept-alive connections (idle, or right after answering while claiming
    keep-alive): the gateway never hands the client a 502 for a GET."""
    g = gw
    u = raw_upstream(scripted)
    add(g, u.address, {"paths": ["/pooled"], "strip_path": False})
    wait_routed(g, "/pooled/once")
    assert req(g, "GET", "/pooled/closelater").status == 200
    time.sleep(0.6)                    # the pooled connection has been closed by the upstream meanwhile
    assert req(g, "GET", "/pooled/echo").status == 200
    statuses = [req(g, "GET", "/pooled/lie").status for _ in range(30)]
    assert statuses == [200] * 30


def test_client_keepalive_and_pipelining(gw, upstream):
    g = gw
    u = upstream("pipe")
    add(g, u.address, {"paths": ["/pipe"], "strip_path": False})
    wait_routed(g, "/pipe/0")
    s, f = raw_conn(g)
    try:
        s.sendall(b"GET /pipe/1 HTTP/1.1\r\nHost: p.test\r\n\r\n"
                  b"POST /pipe/2 HTTP/1.1\r\nHost: p.test\r\nContent-Length: 3\r\n\r\nabc"
                  b"GET /pipe/3 HTTP/1.1\r\nHost: p.test\r\n\r\n")
        got = []
        for _ in range(3):
            r = read_response(f)
            assert r.status == 200
            got.append((r.json()["path"], r.json()["method"], r.json()["body_len"]))
        assert got == [("/pipe/1", "GET", 0), ("/pipe/2", "POST", 3), ("/pipe/3", "GET", 0)]
        # and the connection is still usable afterwards
        s.sendall(b"GET /pipe/4 HTTP/1.1\r\nHost: p.test\r\n\r\n")
        assert read_response(f).json()["path"] == "/pipe/4"
    finally:
        f.close()
        s.close()


def test_pipelining_with_upstream_closing_each_connection(gw, raw_upstream):
    g = gw
    u = raw_upstream(scripted)
    add(g, u.address, {"paths": ["/pipeclose"], "strip_path": False})
    wait_routed(g, "/pipeclose/once")
    s, f = raw_conn(g)
    try:
        s.sendall(b"GET /pipeclose/once HTTP/1.1\r\nHost: p.test\r\n\r\n" * 3
                  + b"POST /pipeclose/echo HTTP/1.1\r\nHost: p.test\r\nContent-Length: 2\r\n\r\nhi")
        for _ in range(3):
            r = read_response(f)
            assert (r.status, r.body) == (200, b"once")
        r = read_response(f)
        assert r.status == 200 and r.json()["len"] == 2
    finally:
        f.close()
        s.close()


# --------------------------------------------------------------------------------------------------
# Upgrade tunnel

def test_websocket_upgrade_tunnel(gw, raw_upstream):
    g = gw
    u = raw_upstream(scripted)
    add(g, u.address, {"paths": ["/wsock"], "strip_path": False})
    wait_routed(g, "/wsock/echo")
    s, f = raw_conn(g)
    try:
        s.sendall(b"GET /wsock/ws HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        r = read_response(f)
        assert r.status == 101
        assert r.headers["upgrade"] == "websocket" and r.headers["connection"].lower() == "upgrade"
        for msg in (b"hello", b"x" * 100000):
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                d = f.read1(65536)
                assert d, "tunnel closed"
                got += d
            assert got == msg
    finally:
        f.close()
        s.close()
    seen = [x for x in u.requests if x["target"] == "/wsock/ws"][0]["headers"]
    assert seen["upgrade"] == "websocket"
    assert "upgrade" in seen["connection"].lower()
