"""Routing through the HTTP/1.1 reverse proxy (KONG.md §3): router priorities, path edge cases, 404/503
bodies, https-only routes, errors before the upstream, strip_path / service.path / preserve_host.
One gateway (1 worker) serves the module (proxy_harness); every test uses its own services/routes."""
import http.client
import re

from conftest import TIMEOUT, wait_until
from proxy_harness import BIG, add, raw_conn, raw_once, read_response, req, wait_routed
from proxy_harness import gw  # noqa: F401 - the module's gateway (a fixture)


# --------------------------------------------------------------------------------------------------
# router

def test_router_priorities(gw, upstream):
    u = upstream("prio")
    g = gw
    routes = {
        "A": {"hosts": ["prio.test"]},
        "B": {"paths": ["/prio-v1"]},
        "C": {"hosts": ["prio.test"], "paths": ["/prio-v1"]},
        "D": {"paths": ["/prio-v1/users"]},
        "E": {"paths": ["~/prio-rx/.*"]},
        "F": {"paths": ["/prio-rx/users"]},
        "G": {"paths": ["~/prio-rp/a"], "regex_priority": 0},
        "H": {"paths": ["~/prio-rp/a.*"], "regex_priority": 10},
        "I": {"paths": ["/prio-m"], "methods": ["POST"]},
        "J": {"paths": ["/prio-m"]},
        "K": {"paths": ["/prio-h"], "headers": {"x-ver": ["v2"]}},
        "L": {"paths": ["/prio-h"]},
        "M": {"hosts": ["*.wild.test"]},
        "N": {"hosts": ["exact.wild.test"]},
        "O": {"hosts": ["wildpre.*"]},
        "P": {"hosts": [f"hp.test:{g.proxy_port}"]},
        "Q": {"hosts": ["hp.test:1"]},
        "S": {"paths": ["/prio-hr"], "headers": {"x-rx": ["~*^ab+c$"]}},
    }
    for k, r in routes.items():
        add(g, u.address, dict(r, strip_path=False), path=f"/{k}")
    # a route without a service, created last: once it answers 503 the whole configuration is live
    st, body, _ = g.admin("POST", "/routes", {"paths": ["/prio-noservice"]})
    assert st == 201, body
    wait_until(lambda: req(g, "GET", "/prio-noservice").status == 503, what="route without service")

    def who(method, path, host=None, headers=None):
        h = dict(headers or {})
        if host:
            h["Host"] = host
        r = req(g, method, path, h)
        if r.status != 200:
            return r.status
        return r.json()["path"].split("/")[1]

    cases = [
        ("GET", "/prio-v1/x", "prio.test", None, "C"),        # hosts+paths (weight 2) beats either alone
        ("GET", "/prio-v1/x", "other.test", None, "B"),
        ("GET", "/x", "prio.test", None, "A"),
        ("GET", "/prio-v1/users/1", None, None, "D"),          # longest prefix
        ("GET", "/prio-v1/users/1", "prio.test", None, "C"),   # weight before prefix length
        ("GET", "/prio-v1users", None, None, "B"),             # plain prefix is not segment-aware
        ("GET", "/prio-rx/users", None, None, "E"),            # regex beats prefix when weights tie
        ("GET", "/prio-rp/abc", None, None, "H"),              # regex_priority
        ("POST", "/prio-m", None, None, "I"),                  # methods add weight
        ("GET", "/prio-m", None, None, "J"),
        ("PUT", "/prio-m", None, None, "J"),
        ("GET", "/prio-h", None, {"X-Ver": "V2"}, "K"),       # header names and values case-insensitive
        ("GET", "/prio-h", None, {"X-Ver": "v3"}, "L"),
        ("GET", "/prio-h", None, None, "L"),
        ("GET", "/prio-hr", None, {"X-Rx": "ABBBC"}, "S"),     # ~* header regex
        ("GET", "/x", "a.b.wild.test", None, "M"),             # suffix wildcard, any depth
        ("GET", "/x", "exact.wild.test", None, "N"),           # plain host beats wildcard
        ("GET", "/x", "wildpre.example.org", None, "O"),       # prefix wildcard
        ("GET", "/x", "hp.test", None, "P"),                   # no port in Host → listening port
        ("GET", "/x", f"hp.test:{g.proxy_port}", None, "P"),
        ("GET", "/x", "hp.test:1", None, "Q"),
        ("GET", "/x", "hp.test:2", None, 404),
        ("GET", "/x", "wild.test", None, 404),                 # "*.wild.test" needs a label before
        ("GET", "/prio-rx", None, None, 404),                  # ~/prio-rx/.* needs the slash
    ]
    got = [(m, p, h, hd, who(m, p, h, hd)) for m, p, h, hd, _ in cases]
    want = [(m, p, h, hd, w) for m, p, h, hd, w in cases]
    assert got == want


def test_path_edge_cases_still_routed(gw, upstream):
    g = gw
    u = upstream("edge")
    add(g, u.address, {"hosts": ["edge.test"]}, path="/svc")
    wait_routed(g, "/", {"Host": "edge.test"})
    cases = {
        b"GET http://edge.test HTTP/1.1\r\nHost: edge.test\r\n\r\n": ("/svc", "/"),
        b"GET http://edge.test/p?q=1 HTTP/1.1\r\nHost: edge.test\r\n\r\n": ("/svc/p?q=1", "/p"),
        b"GET /a/../b/%2e/c HTTP/1.1\r\nHost: edge.test\r\n\r\n": ("/svc/b/c", "/a/../b/%2e/c"),
        b"GET /x/.. HTTP/1.1\r\nHost: edge.test\r\n\r\n": ("/svc", "/x/.."),
    }
    for raw, (path, fwd_path) in cases.items():
        r = raw_once(g, raw)
        assert r.status == 200, (raw, r)
        assert (r.json()["path"], r.json()["headers"]["X-Forwarded-Path"]) == (path, fwd_path), raw


def test_404_and_503_bodies(gw):
    g = gw
    r = req(g, "GET", "/no-such-route-anywhere")
    assert r.status == 404
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    assert r.json()["message"] == "no Route matched with those values"
    assert re.fullmatch(r"[0-9a-f]{32}", r.json()["request_id"])
    assert r.headers["server"] == "kong/3.10.0"
    assert "x-kong-response-latency" in r.headers
    assert re.fullmatch(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", r.headers["date"])
    r = req(g, "GET", "/no-such-route-anywhere", {"Accept": "text/plain"})
    assert r.status == 404
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.body.startswith(b"no Route matched with those values\nrequest_id: ")
    r = req(g, "HEAD", "/no-such-route-anywhere")
    assert r.status == 404 and r.body == b""
    st, body, _ = g.admin("POST", "/routes", {"paths": ["/orphan-route"]})
    assert st == 201, body
    wait_until(lambda: req(g, "GET", "/orphan-route").status == 503, what="503")
    r = req(g, "GET", "/orphan-route/x")
    assert r.status == 503
    assert r.json()["message"] == "no Service found with those values"
    r = req(g, "GET", "/orphan-route", {"Accept": "text/plain"})
    assert r.body.startswith(b"no Service found with those values\nrequest_id: ")


def test_https_only_route_over_http_is_426(gw, upstream):
    g = gw
    u = upstream("tls")
    add(g, u.address, {"paths": ["/tls-only"], "protocols": ["https"]})
    add(g, u.address, {"paths": ["/tls-marker"]})
    wait_routed(g, "/tls-marker")
    r = req(g, "GET", "/tls-only")
    assert r.status == 426
    assert r.json()["message"] == "Please use HTTPS protocol"
    assert r.headers["upgrade"] == "TLS/1.2, HTTP/1.1"
    assert r.headers["connection"] == "Upgrade"
    assert u.hits == 1                 # only the marker request


def test_error_before_upstream_discards_the_body_and_keeps_the_connection(gw):
    """nginx discards an unread request body after an early answer (404 here) and keeps the connection."""
    g = gw
    c = http.client.HTTPConnection("127.0.0.1", g.proxy_port, timeout=TIMEOUT)
    try:
        for body in (BIG, b"x" * 10):
            c.request("POST", "/no-such-route-anywhere", body=body)
            r = c.getresponse()
            assert r.status == 404 and b"no Route matched" in r.read()
            assert r.getheader("Connection") == "keep-alive"
    finally:
        c.close()
    s, f = raw_conn(g)
    try:
        s.sendall(b"POST /no-such-route-anywhere HTTP/1.1\r\nHost: d.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"5\r\nhello\r\n0\r\n\r\n"
                  b"GET /no-such-route-anywhere/2 HTTP/1.1\r\nHost: d.test\r\n\r\n")
        assert read_response(f).status == 404
        assert read_response(f).status == 404
    finally:
        f.close()
        s.close()


# --------------------------------------------------------------------------------------------------
# strip_path / service.path / preserve_host

STRIP_ROWS = [
    # service.path, route path (None = host-only route), strip, request, upstream path
    ("/", "/", True, "/route/req", "/route/req"),
    ("/", "/", False, "/route/req", "/route/req"),
    ("/", "/route", False, "/routereq", "/routereq"),
    ("/", "/route", True, "/route", "/"),
    ("/", "/route", True, "/route/", "/"),
    ("/", "/route", True, "/routereq", "/req"),
    ("/srv", "/rou", False, "/roureq", "/srv/roureq"),
    ("/srv", "/rou", True, "/roureq", "/srv/req"),
    ("/srv/", "/rou", True, "/rou", "/srv"),
    ("/service", "/", True, "/", "/service"),
    ("/service", "/", False, "/", "/service"),
    ("/service", "/", True, "/route/", "/service/route/"),
    ("/service", "/", False, "/route/", "/service/route/"),
    ("/service", "/route", False, "/route", "/service/route"),
    ("/service", "/route", True, "/route", "/service"),
    ("/service", "/route", True, "/route/", "/service/"),
    ("/service", "/route", True, "/routereq", "/service/req"),
    ("/service", "/route/", True, "/route/", "/service/"),
    ("/service/", "/route", True, "/route", "/service"),
    ("/service/", "/route", False, "/route/", "/service/route/"),
    ("/service/", None, True, "/route", "/service/route"),
    ("/service/", None, False, "/route", "/service/route"),
    ("/service", "/route", True, "/route%2E%2E/req", "/service/req"),
    ("/service", "/route", False, "/route%2E/req", "/service/route./req"),
    ("/service", "/route", True, "/route/x?a=1&b=%20", "/service/x?a=1&b=%20"),
    ("/", "/qq", False, "/qq?", "/qq?"),
    ("/", "~/rx/(?<n>[0-9]+)", True, "/rx/42/tail", "/tail"),
    ("/", "/enc", False, "/enc/a%20b/%7Euser/%2F", "/enc/a%20b/~user/%2F"),
    ("/", "/dots", False, "/dots/a/../b/./c//d", "/dots/b/c/d"),
]


def test_strip_path_matrix(gw, upstream):
    g = gw
    u = upstream("strip")
    for i, (spath, rpath, strip, _, _) in enumerate(STRIP_ROWS):
        route = {"hosts": [f"sp{i}.strip.test"], "strip_path": strip}
        if rpath is not None:
            route["paths"] = [rpath]
        add(g, u.address, route, path=spath)
    last = len(STRIP_ROWS) - 1
    wait_routed(g, STRIP_ROWS[last][3], {"Host": f"sp{last}.strip.test"})
    got, want = [], []
    for i, (spath, rpath, strip, request, expect) in enumerate(STRIP_ROWS):
        r = req(g, "GET", request, {"Host": f"sp{i}.strip.test"})
        got.append((spath, rpath, strip, request, r.status, r.json()["path"] if r.status == 200 else r.body))
        want.append((spath, rpath, strip, request, 200, expect))
    assert got == want


def test_preserve_host(gw, upstream):
    g = gw
    u = upstream("ph")
    add(g, u.address, {"paths": ["/ph-on"], "preserve_host": True})
    add(g, u.address, {"paths": ["/ph-off"], "preserve_host": False})
    wait_routed(g, "/ph-off")
    wait_routed(g, "/ph-on")
    r = req(g, "GET", "/ph-on", {"Host": "ph.example:8080"})
    assert r.status == 200 and r.json()["headers"]["Host"] == "ph.example:8080"
    r = req(g, "GET", "/ph-off", {"Host": "ph.example:8080"})
    assert r.status == 200 and r.json()["headers"]["Host"] == f"127.0.0.1:{u.port}"


def test_preserve_host_off_with_upstream_entity_uses_target_host(gw, upstream):
    g = gw
    u = upstream("ph-ups")
    assert g.admin("POST", "/upstreams", {"name": "ph-upstream"})[0] == 201
    assert g.admin("POST", "/upstreams/ph-upstream/targets", {"target": u.address})[0] == 201
    add(g, "ph-upstream", {"paths": ["/ph-ups"]})
    wait_routed(g, "/ph-ups")
    r = req(g, "GET", "/ph-ups", {"Host": "client.example"})
    assert r.status == 200 and r.json()["headers"]["Host"] == u.address
