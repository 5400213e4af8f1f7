"""Bad client input to the HTTP/1.1 reverse proxy (KONG.md §3): malformed requests get Kong's error
status and body and a closed connection without reaching the upstream, no request smuggling, the
slowloris header timeout, clients that close mid-body or mid-response. One gateway (1 worker) serves
the module (proxy_harness); every test uses its own services/routes and upstreams."""
import socket
import time

import pytest

from conftest import TIMEOUT, reset_socket
from proxy_harness import BIG, add, raw_conn, raw_once, read_response, req, scripted, wait_routed, worker
from proxy_harness import gw  # noqa: F401 - the module's gateway (a fixture)


# --------------------------------------------------------------------------------------------------
# bad input

BAD_INPUT = [
    ("cl+te", b"POST /bad/echo HTTP/1.1\r\nHost: b.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"0\r\n\r\n", 400),
    ("two content-lengths", b"POST /bad/echo HTTP/1.1\r\nHost: b.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
                            b"hello!", 400),
    ("invalid chunk size", b"POST /bad/echo HTTP/1.1\r\nHost: b.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"zz\r\nhello\r\n0\r\n\r\n", 400),
    ("unknown transfer-encoding", b"POST /bad/echo HTTP/1.1\r\nHost: b.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                                  b"0\r\n\r\n", 501),
    ("obs-fold", b"GET /bad/echo HTTP/1.1\r\nHost: b.test\r\nX-A: a\r\n b\r\n\r\n", 400),
    ("bare CR", b"GET /bad/echo HTTP/1.1\r\nHost: b.test\r\nX-A: a\rb\r\n\r\n", 400),
    ("NUL in header", b"GET /bad/echo HTTP/1.1\r\nHost: b.test\r\nX-A: a\x00b\r\n\r\n", 400),
    ("space before colon", b"GET /bad/echo HTTP/1.1\r\nHost: b.test\r\nX-A : a\r\n\r\n", 400),
    ("missing Host on 1.1", b"GET /bad/echo HTTP/1.1\r\nX-A: a\r\n\r\n", 400),
    ("two Hosts", b"GET /bad/echo HTTP/1.1\r\nHost: b.test\r\nHost: c.test\r\n\r\n", 400),
    ("over-long request line", b"GET /bad/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: b.test\r\n\r\n", 414),
    ("over-long header line", b"GET /bad/echo HTTP/1.1\r\nHost: b.test\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 400),
    ("over-long header section", b"GET /bad/echo HTTP/1.1\r\nHost: b.test\r\n"
                                 + b"".join(b"X-H%d: %s\r\n" % (i, b"a" * 7000) for i in range(6)) + b"\r\n", 400),
    ("negative content-length", b"POST /bad/echo HTTP/1.1\r\nHost: b.test\r\nContent-Length: -1\r\n\r\n", 400),
    ("non-numeric content-length", b"POST /bad/echo HTTP/1.1\r\nHost: b.test\r\nContent-Length: 1e3\r\n\r\n", 400),
    ("chunked on HTTP/1.0", b"POST /bad/echo HTTP/1.0\r\nHost: b.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"0\r\n\r\n", 400),
    ("chunk size overflow", b"POST /bad/echo HTTP/1.1\r\nHost: b.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"fffffffffffffffffff\r\nx\r\n0\r\n\r\n", 400),
    ("CONNECT method", b"CONNECT b.test:443 HTTP/1.1\r\nHost: b.test:443\r\n\r\n", 405),
    ("bad percent-escape", b"GET /bad/a%2 HTTP/1.1\r\nHost: b.test\r\n\r\n", 400),
    ("bad percent-escape 2", b"GET /bad/a%zz/echo HTTP/1.1\r\nHost: b.test\r\n\r\n", 400),
    ("dot-segments above root", b"GET /bad/../../etc/passwd HTTP/1.1\r\nHost: b.test\r\n\r\n", 400),
    ("encoded dot-segments above root", b"GET /%2e%2E/bad/echo HTTP/1.1\r\nHost: b.test\r\n\r\n", 400),
    ("content-length overflow", b"POST /bad/echo HTTP/1.1\r\nHost: b.test\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400),
    ("space in header name", b"GET /bad/echo HTTP/1.1\r\nHost: b.test\r\nX A: b\r\n\r\n", 400),
    ("invalid Host", b"GET /bad/echo HTTP/1.1\r\nHost: b/../test\r\n\r\n", 400),
    ("garbage request line", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
    ("invalid method", b"G@T /bad/echo HTTP/1.1\r\nHost: b.test\r\n\r\n", 400),
    ("lowercase method", b"get /bad/echo HTTP/1.1\r\nHost: b.test\r\n\r\n", 400),
    ("HTTP/2.0 version", b"GET /bad/echo HTTP/2.0\r\nHost: b.test\r\n\r\n", 505),
    ("garbage version", b"GET /bad/echo HTTP/1.x\r\nHost: b.test\r\n\r\n", 400),
    ("garbage protocol", b"GET /bad/echo HTTX/1.1\r\nHost: b.test\r\n\r\n", 400),
]


@pytest.fixture(scope="module")
def bad_route(gw):
    """A module-wide RawUpstream route for the bad-input cases."""
    from conftest import RawUpstream
    u = RawUpstream(scripted, "bad")
    add(gw, u.address, {"paths": ["/bad"], "strip_path": False})
    wait_routed(gw, "/bad/echo")
    yield u
    u.stop()


@pytest.mark.parametrize("name,data,status", BAD_INPUT, ids=[b[0] for b in BAD_INPUT])
def test_bad_input(gw, bad_route, name, data, status):
    g = gw
    w = worker(g)
    hits = bad_route.hits
    s, f = raw_conn(g)
    try:
        s.sendall(data)
        r = read_response(f)
        assert r is not None, "closed without a response"
        assert r.status == status, r
        messages = {400: b"Bad request", 414: b"URI too long", 505: b"HTTP version not supported",
                    405: b"Method not allowed", 501: b"Not implemented"}
        if name.startswith("over-long header"):
            assert r.body.startswith(b"Request header or cookie too large\n"), r
        else:
            assert r.body.startswith(messages[status] + b"\n"), r
        assert r.headers["content-type"] == "text/plain; charset=utf-8"     # error_default_type
        assert r.headers.get("connection") == "close"
        assert f.read() == b""          # and the connection is closed
    finally:
        f.close()
        s.close()
    assert bad_route.hits == hits, "a bad request reached the upstream"
    r = req(g, "GET", "/bad/echo")
    assert r.status == 200
    assert worker(g) == w


def test_no_request_smuggling(gw, raw_upstream):
    """CL+TE with a second request hidden in the body: rejected, and nothing reaches the upstream."""
    g = gw
    u = raw_upstream(scripted)
    add(g, u.address, {"paths": ["/smuggle"], "strip_path": False})
    wait_routed(g, "/smuggle/echo")
    hits = u.hits
    smuggled = b"GET /smuggle/echo?smuggled=1 HTTP/1.1\r\nHost: s.test\r\n\r\n"
    body = b"0\r\n\r\n" + smuggled
    for te in (b"chunked", b" chunked", b"Chunked"):
        r = raw_once(g, b"POST /smuggle/echo HTTP/1.1\r\nHost: s.test\r\nContent-Length: %d\r\n"
                        b"Transfer-Encoding:%s\r\n\r\n%s" % (len(body), te, body))
        assert r is not None and r.status == 400, (te, r)
    # TE first, then CL
    r = raw_once(g, b"POST /smuggle/echo HTTP/1.1\r\nHost: s.test\r\nTransfer-Encoding: chunked\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    assert r is not None and r.status == 400
    time.sleep(0.2)
    assert u.hits == hits
    assert not any("smuggled" in x["target"] for x in u.requests)


def test_slowloris_header_timeout(gw):
    g = gw
    w = worker(g)
    s, f = raw_conn(g, timeout=10)
    try:
        s.sendall(b"GET /slow HTTP/1.1\r\nHost: slow.test\r\n")
        try:
            r = read_response(f)
        except (ConnectionResetError, socket.timeout) as e:
            pytest.fail(f"no 408/close within the bounded wait: {e!r}")
        assert r is None or r.status == 408, r
    finally:
        f.close()
        s.close()
    # a connection that never sends anything is closed (nginx: silently) after client_header_timeout
    s, f = raw_conn(g, timeout=10)
    try:
        assert f.read() == b""
    finally:
        f.close()
        s.close()
    assert worker(g) == w
    assert req(g, "GET", "/no-such-route-anywhere").status == 404


def test_client_closes_mid_body(gw, raw_upstream):
    g = gw
    w = worker(g)
    u = raw_upstream(scripted)
    add(g, u.address, {"paths": ["/midbody"], "strip_path": False})
    wait_routed(g, "/midbody/echo")
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", g.proxy_port), timeout=TIMEOUT)
        s.sendall(b"POST /midbody/echo HTTP/1.1\r\nHost: m.test\r\nContent-Length: 1000000\r\n\r\n" + BIG[:20000])
        time.sleep(0.1)
        s.close()
    r = req(g, "POST", "/midbody/echo", body=b"x" * 100)
    assert r.status == 200 and r.json()["len"] == 100
    assert worker(g) == w


def test_client_goes_away_before_or_during_the_response(gw, raw_upstream):
    g = gw
    w = worker(g)
    u = raw_upstream(scripted)
    add(g, u.address, {"paths": ["/gone"], "strip_path": False}, read_timeout=1000, retries=0)
    wait_routed(g, "/gone/once")
    # closes while the upstream has not answered yet; the gateway's 504 later meets a closed socket
    s = socket.create_connection(("127.0.0.1", g.proxy_port), timeout=TIMEOUT)
    s.sendall(b"GET /gone/hang HTTP/1.1\r\nHost: g.test\r\n\r\n")
    time.sleep(0.2)
    s.close()
    # resets the connection in the middle of an 8 MiB download
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", g.proxy_port), timeout=TIMEOUT)
        s.sendall(b"GET /gone/huge-cl HTTP/1.1\r\nHost: g.test\r\n\r\n")
        assert s.recv(65536)
        reset_socket(s)
    time.sleep(1.5)                    # past the 1 s read timeout of the abandoned request
    assert req(g, "GET", "/gone/echo").status == 200
    assert worker(g) == w
