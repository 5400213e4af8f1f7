"""Headers through the HTTP/1.1 reverse proxy (KONG.md §3): X-Forwarded-*/Via and the response headers
the gateway adds, hop-by-hop headers removed both ways. One gateway (1 worker) serves the module
(proxy_harness); every test uses its own services/routes and upstreams."""
import re

from proxy_harness import add, raw_once, req, scripted, wait_routed
from proxy_harness import gw  # noqa: F401 - the module's gateway (a fixture)


# --------------------------------------------------------------------------------------------------
# headers

def test_forwarded_headers_and_response_headers(gw, upstream):
    g = gw
    u = upstream("hdr")
    add(g, u.address, {"paths": ["/hdrs"], "strip_path": True})
    wait_routed(g, "/hdrs")
    r = req(g, "GET", "/hdrs/a/b?x=1", {
        "Host": "Hdr.Example:9999", "X-Forwarded-For": "10.0.0.1", "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Proto": "https", "X-Forwarded-Port": "1", "X-Forwarded-Path": "/evil",
        "X-Forwarded-Prefix": "/evil", "X-Real-IP": "6.6.6.6"})
    assert r.status == 200
    seen = r.json()
    h = seen["headers"]
    assert seen["path"] == "/a/b?x=1"
    assert h["X-Forwarded-For"] == "10.0.0.1, 127.0.0.1"
    assert h["X-Forwarded-Proto"] == "http"
    assert h["X-Forwarded-Host"] == "hdr.example"
    assert h["X-Forwarded-Port"] == str(g.proxy_port)
    assert h["X-Forwarded-Path"] == "/hdrs/a/b"
    assert h["X-Forwarded-Prefix"] == "/hdrs"
    assert h["X-Real-IP"] == "127.0.0.1"
    assert h["Via"] == "1.1 kong/3.10.0"
    assert re.fullmatch(r"[0-9a-f]{32}", h["X-Kong-Request-Id"])
    assert h["Connection"] == "keep-alive"
    # response side
    assert r.headers["via"] == "1.1 kong/3.10.0"
    assert re.fullmatch(r"\d+", r.headers["x-kong-upstream-latency"])
    assert re.fullmatch(r"\d+", r.headers["x-kong-proxy-latency"])
    assert r.headers["server"].startswith("BaseHTTP")          # the upstream's Server is kept
    assert r.headers["x-kong-request-id"] == h["X-Kong-Request-Id"]
    assert r.headers["x-upstream"] == "hdr"
    # no client X-Forwarded-For, no stripped prefix → no X-Forwarded-Prefix
    add(g, u.address, {"paths": ["/hdrs2"], "strip_path": False})
    wait_routed(g, "/hdrs2")
    h = req(g, "GET", "/hdrs2/z").json()["headers"]
    assert h["X-Forwarded-For"] == "127.0.0.1"
    assert "X-Forwarded-Prefix" not in h
    r = raw_once(g, b"GET /hdrs2/m HTTP/1.1\r\nHost: m.test\r\nX-Forwarded-For: 1.1.1.1\r\n"
                    b"X-Forwarded-For: 2.2.2.2, 3.3.3.3\r\n\r\n")
    assert r.json()["headers"]["X-Forwarded-For"] == "1.1.1.1, 2.2.2.2, 3.3.3.3, 127.0.0.1"
    assert h["X-Forwarded-Host"] == "127.0.0.1"


def test_hop_by_hop_headers_removed(gw, raw_upstream):
    g = gw
    u = raw_upstream(scripted)
    add(g, u.address, {"paths": ["/hop"], "strip_path": False})
    wait_routed(g, "/hop/echo")
    r = raw_once(g, b"GET /hop/echo HTTP/1.1\r\nHost: hop.test\r\nConnection: keep-alive, X-Hop-A\r\n"
                    b"X-Hop-A: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nProxy: http://evil\r\n"
                    b"TE: deflate, trailers\r\nTrailer: X-T\r\nUpgrade: h2c\r\nX-Kept: yes\r\nVia: 1.0 client-proxy\r\n\r\n")
    assert r.status == 200
    h = r.json()["headers"]
    for name in ("x-hop-a", "keep-alive", "proxy-connection", "proxy", "trailer", "upgrade"):
        assert name not in h, (name, h)
    assert h["x-kept"] == "yes"
    assert h["connection"] == "keep-alive"
    assert h["te"] == "trailers"
    assert h["via"] == "1.0 client-proxy, 1.1 kong/3.10.0"
    r = raw_once(g, b"GET /hop/hop HTTP/1.1\r\nHost: hop.test\r\n\r\n")
    assert r.status == 200 and r.body == b"ok"
    assert r.headers["date"].endswith(" GMT")      # added: the upstream sent none
    assert "x-resp-hop" not in r.headers and "keep-alive" not in r.headers
    assert r.headers["x-kept"] == "1"
    assert r.headers["via"] == "1.0 upstream-proxy, 1.1 kong/3.10.0"
