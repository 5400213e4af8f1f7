"""Bodies and message framing through the HTTP/1.1 reverse proxy (KONG.md §3): big request and response
bodies (Content-Length, chunked, read to EOF), backpressure both ways, read timeout, upstream errors
passed through, HTTP/1.0 clients, HEAD/204/304, Expect: 100-continue. One gateway (1 worker) serves the
module (proxy_harness); every test uses its own services/routes and upstreams."""
import socket
import time

import pytest

from conftest import refused_port, wait_until
from proxy_harness import BIG, BIG_SHA, HUGE, HUGE_SHA, add, raw_conn, read_response, req, scripted, sha, wait_routed
from proxy_harness import gw  # noqa: F401 - the module's gateway (a fixture)


# --------------------------------------------------------------------------------------------------
# bodies and message framing

def test_big_request_bodies(gw, raw_upstream):
    g = gw
    u = raw_upstream(scripted)
    add(g, u.address, {"paths": ["/bodies"], "strip_path": False})
    wait_routed(g, "/bodies/echo")
    r = req(g, "POST", "/bodies/echo", {"Content-Type": "application/octet-stream"}, body=BIG)
    assert r.status == 200
    assert (r.json()["len"], r.json()["sha"]) == (len(BIG), BIG_SHA)

    def pieces():
        for i in range(0, len(BIG), 12345):
            yield BIG[i:i + 12345]
    r = req(g, "PUT", "/bodies/echo", {"Transfer-Encoding": "chunked"}, body=pieces(), chunked=True)
    assert r.status == 200
    assert (r.json()["len"], r.json()["sha"]) == (len(BIG), BIG_SHA)


def test_backpressure_slow_upstream_and_slow_client(gw, raw_upstream):
    """8 MiB each way with the slow side not reading for a while: nothing is lost and nothing stalls
    (client_body_timeout is 3 s in this module)."""
    g = gw
    u = raw_upstream(scripted)
    add(g, u.address, {"paths": ["/bp"], "strip_path": False})
    wait_routed(g, "/bp/once")
    u.read_delay = 1.0                 # the next upstream connection reads nothing for 1 s
    r = req(g, "POST", "/bp/echo", body=HUGE, timeout=30)
    assert r.status == 200
    assert (r.json()["len"], r.json()["sha"]) == (len(HUGE), HUGE_SHA)
    u.read_delay = 0.0
    s, f = raw_conn(g, timeout=30)
    try:
        s.sendall(b"GET /bp/huge-cl HTTP/1.1\r\nHost: bp.test\r\n\r\n")
        time.sleep(1.0)                # the client reads nothing for 1 s
        r = read_response(f)
        assert r.status == 200
        assert (len(r.body), sha(r.body)) == (len(HUGE), HUGE_SHA)
    finally:
        f.close()
        s.close()


def test_read_timeout_starts_after_the_request_is_sent(gw, raw_upstream):
    """read_timeout (1 s here) bounds the wait for the response, not the upload: an upstream that takes
    1.5 s before reading a large body is fine (write_timeout is the default 60 s)."""
    g = gw
    u = raw_upstream(scripted)
    add(g, u.address, {"paths": ["/rt"], "strip_path": False}, read_timeout=1000)
    wait_routed(g, "/rt/once")
    u.read_delay = 1.5
    r = req(g, "POST", "/rt/echo", body=HUGE, timeout=30)
    assert r.status == 200, r
    assert r.json()["sha"] == HUGE_SHA
    # longer than client_body_timeout (3 s): the client is not the one being slow, so no 408
    u.read_delay = 3.5
    r = req(g, "POST", "/rt/echo", body=HUGE, timeout=30)
    assert r.status == 200, r
    assert r.json()["sha"] == HUGE_SHA


def test_all_targets_refusing(gw):
    g = gw
    assert g.admin("POST", "/upstreams", {"name": "dead-upstream"})[0] == 201
    for _ in range(2):
        assert g.admin("POST", "/upstreams/dead-upstream/targets",
                       {"target": f"127.0.0.1:{refused_port()}"})[0] == 201
    add(g, "dead-upstream", {"paths": ["/alldead"]})
    r = wait_until(lambda: (lambda r: r if r.status != 404 else None)(req(g, "GET", "/alldead")), what="route")
    assert r.status == 502, r
    assert r.body.startswith(b"An invalid response was received from the upstream server")


def test_upstream_error_status_passed_through(gw, raw_upstream):
    g = gw
    u = raw_upstream(scripted)
    add(g, u.address, {"paths": ["/up500"], "strip_path": False})
    wait_routed(g, "/up500/echo")
    hits = u.hits
    r = req(g, "GET", "/up500/s500")
    assert r.status == 500
    assert r.body == b"upstream's own error" and r.headers["content-type"] == "text/x-upstream"
    assert u.hits - hits == 1          # an upstream status is not a reason to retry


@pytest.mark.parametrize("kind", ["big-cl", "big-chunked", "big-eof"])
def test_big_response_bodies(gw, raw_upstream, kind):
    g = gw
    u = raw_upstream(scripted)
    add(g, u.address, {"paths": [f"/resp-{kind}"], "strip_path": False})
    wait_routed(g, f"/resp-{kind}/{kind}")
    r = req(g, "GET", f"/resp-{kind}/{kind}")
    assert r.status == 200
    assert (len(r.body), sha(r.body)) == (len(BIG), BIG_SHA)
    if kind == "big-chunked":
        assert r.headers["transfer-encoding"] == "chunked"
    if kind == "big-eof":
        assert r.headers.get("connection") == "close"


def test_http10_client_gets_no_chunked_framing(gw, raw_upstream):
    g = gw
    u = raw_upstream(scripted)
    add(g, u.address, {"paths": ["/h10"], "strip_path": False})
    wait_routed(g, "/h10/echo")
    s, f = raw_conn(g)
    try:
        s.sendall(b"GET /h10/big-chunked HTTP/1.0\r\nHost: h.test\r\n\r\n")
        r = read_response(f)           # no Content-Length, no chunked: read until close
        assert r.status == 200
        assert "transfer-encoding" not in r.headers
        assert (len(r.body), sha(r.body)) == (len(BIG), BIG_SHA)
    finally:
        f.close()
        s.close()


def test_head_204_304_have_no_body_and_connection_stays_usable(gw, raw_upstream):
    g = gw
    u = raw_upstream(scripted)
    add(g, u.address, {"paths": ["/nobody"], "strip_path": False})
    wait_routed(g, "/nobody/head")
    s, f = raw_conn(g)
    try:
        for method, path, status in [("HEAD", "/nobody/head", 200), ("GET", "/nobody/s204", 204),
                                     ("GET", "/nobody/s304", 304), ("GET", "/nobody/head", 200)]:
            s.sendall(f"{method} {path} HTTP/1.1\r\nHost: nb.test\r\n\r\n".encode())
            r = read_response(f, method)
            assert r.status == status, (method, path, r)
            if method == "HEAD":
                assert r.headers["content-length"] == "1000" and r.headers["x-head"] == "yes"
            if method == "GET" and status == 200:
                assert r.body == b"h" * 1000
        # nothing stray arrived after the body-less responses
        s.settimeout(0.3)
        with pytest.raises(socket.timeout):
            s.recv(1)
    finally:
        f.close()
        s.close()


def test_expect_100_continue(gw, raw_upstream):
    g = gw
    u = raw_upstream(scripted)
    add(g, u.address, {"paths": ["/expect"], "strip_path": False})
    wait_routed(g, "/expect/echo")
    s, f = raw_conn(g)
    try:
        s.sendall(b"POST /expect/echo HTTP/1.1\r\nHost: e.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        interim = read_response(f)
        assert interim.status == 100
        s.sendall(b"hello")
        r = read_response(f)
        assert r.status == 200
        assert r.json()["len"] == 5 and r.json()["sha"] == sha(b"hello")
        assert "expect" not in r.json()["headers"]
    finally:
        f.close()
        s.close()
