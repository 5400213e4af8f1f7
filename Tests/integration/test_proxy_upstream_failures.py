"""Upstream failures behind the HTTP/1.1 reverse proxy (KONG.md §3): closes before or during the response,
invalid framing or status lines, interim 100 skipped, resets mid-body, no answer (read timeout),
connection refused and the retry on connect failure; the client connection stays usable after an
error. One gateway (1 worker) serves the module (proxy_harness); every test uses its own upstreams."""

import pytest

from conftest import refused_port, wait_until
from proxy_harness import BIG, add, raw_conn, read_response, req, scripted, wait_routed, worker
from proxy_harness import gw  # noqa: F401 - the module's gateway (a fixture)


# --------------------------------------------------------------------------------------------------
# upstream failures

def test_upstream_closes_before_responding(gw, raw_upstream):
    g = gw
    u = raw_upstream(scripted)
    add(g, u.address, {"paths": ["/upclose"], "strip_path": False}, retries=2)
    wait_routed(g, "/upclose/once")     # leaves no pooled connection: every try below is a fresh one
    hits = u.hits
    r = req(g, "GET", "/upclose/close")
    assert r.status == 502
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.body.startswith(b"An invalid response was received from the upstream server\nrequest_id: ")
    assert u.hits - hits == 3          # 1 try + 2 retries
    r = req(g, "GET", "/upclose/close", {"Accept": "application/json"})
    assert r.status == 502 and r.json()["message"] == "An invalid response was received from the upstream server"
    assert req(g, "GET", "/upclose/echo").status == 200


@pytest.mark.parametrize("kind", ["resp-clte", "resp-badcl", "resp-twocl"])
def test_upstream_invalid_framing(gw, raw_upstream, kind):
    g = gw
    u = raw_upstream(scripted)
    add(g, u.address, {"paths": [f"/upframing-{kind}"], "strip_path": False})
    wait_routed(g, f"/upframing-{kind}/echo")
    r = req(g, "GET", f"/upframing-{kind}/{kind}")
    assert r.status == 502, r


def test_upstream_interim_100_is_skipped(gw, raw_upstream):
    g = gw
    u = raw_upstream(scripted)
    add(g, u.address, {"paths": ["/up100"], "strip_path": False})
    wait_routed(g, "/up100/echo")
    s, f = raw_conn(g)
    try:
        for _ in range(2):
            s.sendall(b"GET /up100/s100 HTTP/1.1\r\nHost: h.test\r\n\r\n")
            r = read_response(f)
            assert r.status == 200 and r.body == b"after-100"
    finally:
        f.close()
        s.close()


def test_errors_keep_client_connection_usable(gw, raw_upstream):
    """A 502 for a body-less request leaves the client connection open for the next request; a POST
    whose request was sent is not retried (non-idempotent)."""
    g = gw
    u = raw_upstream(scripted)
    add(g, u.address, {"paths": ["/errka"], "strip_path": False})
    wait_routed(g, "/errka/once")
    s, f = raw_conn(g)
    try:
        s.sendall(b"GET /errka/close HTTP/1.1\r\nHost: e.test\r\n\r\n")
        assert read_response(f).status == 502
        s.sendall(b"GET /errka/echo HTTP/1.1\r\nHost: e.test\r\n\r\n")
        assert read_response(f).status == 200
        s.sendall(b"GET /no-such-route-anywhere HTTP/1.1\r\nHost: e.test\r\n\r\n")
        assert read_response(f).status == 404
        s.sendall(b"GET /errka/echo HTTP/1.1\r\nHost: e.test\r\n\r\n")
        assert read_response(f).status == 200
    finally:
        f.close()
        s.close()
    wait_until(lambda: req(g, "GET", "/errka/once").status == 200)
    hits = u.hits
    r = req(g, "POST", "/errka/close", body=b"payload")
    assert r.status == 502
    assert u.hits - hits == 1


def test_upstream_resets_mid_body(gw, raw_upstream):
    g = gw
    w = worker(g)
    u = raw_upstream(scripted)
    add(g, u.address, {"paths": ["/upreset"], "strip_path": False})
    wait_routed(g, "/upreset/echo")
    s, f = raw_conn(g)
    try:
        s.sendall(b"GET /upreset/reset HTTP/1.1\r\nHost: r.test\r\n\r\n")
        line = f.readline()
        assert line.startswith(b"HTTP/1.1 200")
        while f.readline() not in (b"\r\n", b""):
            pass
        got = b""
        try:
            while True:
                d = f.read1(65536)
                if not d:
                    break
                got += d
        except ConnectionResetError:
            pass
        assert 0 < len(got) < len(BIG)        # truncated, then the connection ended
        assert got == BIG[:len(got)]
    finally:
        f.close()
        s.close()
    assert req(g, "GET", "/upreset/echo").status == 200
    assert worker(g) == w


@pytest.mark.parametrize("kind", ["badstatus", "garbage"])
def test_upstream_invalid_status_line(gw, raw_upstream, kind):
    g = gw
    u = raw_upstream(scripted)
    add(g, u.address, {"paths": [f"/upinvalid-{kind}"], "strip_path": False})
    wait_routed(g, f"/upinvalid-{kind}/echo")
    hits = u.hits
    r = req(g, "GET", f"/upinvalid-{kind}/{kind}")
    assert r.status == 502
    assert r.body.startswith(b"An invalid response was received from the upstream server")
    # nginx's proxy_next_upstream default is "error timeout": an invalid header is not retried
    assert u.hits - hits == 1


def test_upstream_never_answers(gw, raw_upstream):
    g = gw
    u = raw_upstream(scripted)
    add(g, u.address, {"paths": ["/uphang"], "strip_path": False}, read_timeout=1000, retries=1)
    wait_routed(g, "/uphang/once")
    hits = u.hits
    r = req(g, "GET", "/uphang/hang")
    assert r.status == 504
    assert r.body.startswith(b"The upstream server is timing out\nrequest_id: ")
    assert u.hits - hits == 2          # the timeout was retried once
    assert req(g, "GET", "/uphang/echo").status == 200


def test_upstream_connection_refused(gw):
    g = gw
    add(g, f"127.0.0.1:{refused_port()}", {"paths": ["/refused"]})
    r = wait_until(lambda: (lambda r: r if r.status != 404 else None)(req(g, "GET", "/refused")), what="route")
    assert r.status == 502
    assert r.body.startswith(b"An invalid response was received from the upstream server")


def test_retry_on_connect_failure(gw, upstream):
    g = gw
    good = upstream("good")
    assert g.admin("POST", "/upstreams", {"name": "retry-upstream"})[0] == 201
    for t in (good.address, f"127.0.0.1:{refused_port()}"):
        assert g.admin("POST", "/upstreams/retry-upstream/targets", {"target": t})[0] == 201
    add(g, "retry-upstream", {"paths": ["/retry"]})
    wait_routed(g, "/retry")
    statuses = [req(g, "GET", "/retry").status for _ in range(20)]
    assert statuses == [200] * 20
    # non-idempotent requests are retried too when nothing was sent (connect failure)
    statuses = [req(g, "POST", "/retry", body=b"p").status for _ in range(6)]
    assert statuses == [200] * 6
