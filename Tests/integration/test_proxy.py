"""HTTP/1.1 reverse proxy behaviour (KONG.md §3): router priorities, strip_path/preserve_host, headers, bodies,
keep-alive, pipelining, bad input and upstream failures. One gateway (1 worker) serves the whole module; every
test uses its own services/routes (unique paths or hosts) and its own upstreams."""
import hashlib
import http.client
import itertools
import json
import os
import re
import signal
import socket
import time

import pytest

from conftest import (TIMEOUT, Gateway, http_response, reset_socket, refused_port, wait_until)

BIG = os.urandom(1 << 20)
BIG_SHA = hashlib.sha256(BIG).hexdigest()
HUGE = BIG * 8                     # 8 MiB: more than the loopback socket buffers absorb
HUGE_SHA = hashlib.sha256(HUGE).hexdigest()


def sha(b):
    return hashlib.sha256(b).hexdigest()


# --------------------------------------------------------------------------------------------------
# fixtures and helpers

@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    g = Gateway(str(tmp_path_factory.mktemp("proxy")), workers=1,
                extra={"client_header_timeout": "2s", "client_body_timeout": "3s"})
    g.start()
    yield g
    try:
        pid = g.master_pid()
    except (FileNotFoundError, ValueError):
        pid = None
    g.stop()
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


_ids = itertools.count()


def add(g, target, route, **svc):
    """Creates a service for `target` ("ip:port" or an upstream name) and one route on it. Returns the name."""
    n = next(_ids)
    name = f"px{n}"
    if ":" in target:
        host, port = target.rsplit(":", 1)
        body = {"name": name, "host": host, "port": int(port)}
    else:
        body = {"name": name, "host": target}
    body.update(svc)
    st, s, _ = g.admin("POST", "/services", body)
    assert st == 201, s
    st, r, _ = g.admin("POST", f"/services/{name}/routes", dict({"name": name}, **route))
    assert st == 201, r
    return name


class Resp:
    def __init__(self, status, headers, body, raw_head=b""):
        self.status, self.headers, self.body, self.raw_head = status, headers, body, raw_head

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"Resp({self.status}, {self.headers}, {self.body[:200]!r})"


def req(g, method, path, headers=None, body=None, chunked=False, timeout=TIMEOUT):
    """One request on a fresh connection via http.client (a Host header in `headers` is sent as given)."""
    c = http.client.HTTPConnection("127.0.0.1", g.proxy_port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
        r = c.getresponse()
        data = r.read()
        return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        c.close()


def read_response(f, method="GET"):
    """Reads one response from a binary socket file; None if the connection closed first."""
    line = f.readline(65536)
    if not line:
        return None
    m = re.match(rb"HTTP/1\.[01] (\d{3})", line)
    assert m, f"bad status line {line!r}"
    status = int(m.group(1))
    headers, raw = {}, line
    while True:
        h = f.readline(65536)
        raw += h
        if h in (b"\r\n", b"\n", b""):
            break
        k, v = h.decode("latin-1").split(":", 1)
        k = k.strip().lower()
        headers[k] = headers[k] + ", " + v.strip() if k in headers else v.strip()
    body = b""
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        pass
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int(f.readline(65536).split(b";")[0].strip(), 16)
            if size == 0:
                while f.readline(65536) not in (b"\r\n", b"\n", b""):
                    pass
                break
            body += f.read(size)
            f.readline(65536)
    elif "content-length" in headers:
        body = f.read(int(headers["content-length"]))
    else:
        body = f.read()
    return Resp(status, headers, body, raw)


def raw_conn(g, timeout=TIMEOUT):
    s = socket.create_connection(("127.0.0.1", g.proxy_port), timeout=timeout)
    return s, s.makefile("rb")


def raw_once(g, data, method="GET", timeout=TIMEOUT):
    """Writes `data` on a new connection and reads one response (None when closed without one)."""
    s, f = raw_conn(g, timeout)
    try:
        s.sendall(data)
        try:
            return read_response(f, method)
        except ConnectionResetError:
            return None
    finally:
        f.close()
        s.close()


def wait_routed(g, path, headers=None, method="GET"):
    """Waits until the new configuration is live: the request no longer gets the router's 404."""
    return wait_until(lambda: (lambda r: r if not (r.status == 404 and b"no Route matched" in r.body) else None)(
        req(g, method, path, headers)), what=f"route for {path}")


def worker(g):
    pids = g.worker_pids()
    assert len(pids) == 1, pids
    return pids[0]


def scripted(c, r, up):
    """RawUpstream behaviour chosen by the last path segment of the request target."""
    seg = r["target"].split("?")[0].rstrip("/").rsplit("/", 1)[-1]
    body = r["body"]
    if seg == "echo":
        payload = json.dumps({"sha": sha(body), "len": len(body), "chunked": r["chunked"],
                              "headers": r["headers"], "target": r["target"], "method": r["method"]}).encode()
        c.sendall(http_response(200, payload, {"Content-Type": "application/json"}))
    elif seg == "big-cl":
        c.sendall(http_response(200, BIG, {"Content-Length": len(BIG), "X-Sha": BIG_SHA}))
    elif seg == "big-chunked":
        c.sendall(http_response(200, BIG, {"X-Sha": BIG_SHA}, chunked=True, chunk_size=10000))
    elif seg == "huge-cl":
        c.sendall(http_response(200, HUGE))
    elif seg == "s100":
        c.sendall(b"HTTP/1.1 100 Continue\r\n\r\n" + http_response(200, b"after-100"))
    elif seg == "resp-clte":
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        return False
    elif seg == "resp-badcl":
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nabc")
        return False
    elif seg == "resp-twocl":
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd")
        return False
    elif seg == "lie":
        # claims keep-alive, then closes right after the response
        c.sendall(http_response(200, b"lie"))
        return False
    elif seg == "closelater":
        c.sendall(http_response(200, b"later"))
        time.sleep(0.3)
        return False
    elif seg == "s500":
        c.sendall(http_response(500, b"upstream's own error", {"Content-Type": "text/x-upstream"}))
    elif seg == "big-eof":
        c.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + BIG)
        return False
    elif seg == "head":
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nX-Head: yes\r\n\r\n"
                  + (b"" if r["method"] == "HEAD" else b"h" * 1000))
    elif seg == "s204":
        c.sendall(b"HTTP/1.1 204 No Content\r\nX-S: 204\r\n\r\n")
    elif seg == "s304":
        c.sendall(b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 50\r\n\r\n")
    elif seg == "hop":
        c.sendall(b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Resp-Hop\r\nX-Resp-Hop: 1\r\n"
                  b"Keep-Alive: timeout=5\r\nX-Kept: 1\r\nVia: 1.0 upstream-proxy\r\nContent-Length: 2\r\n\r\nok")
    elif seg == "close":
        return False
    elif seg == "once":
        c.sendall(http_response(200, b"once", {"Connection": "close"}))
        return False
    elif seg == "reset":
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BIG) + BIG[:100000])
        time.sleep(0.2)
        reset_socket(c)
        return False
    elif seg == "badstatus":
        c.sendall(b"HTTP/1.1 abc Broken\r\nContent-Length: 0\r\n\r\n")
        return False
    elif seg == "garbage":
        c.sendall(b"hello there\r\n\r\n")
        return False
    elif seg == "hang":
        try:
            c.recv(1)
        except OSError:
            pass
        return False
    elif seg == "ws":
        c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        while True:
            d = c.recv(65536)
            if not d:
                break
            c.sendall(d)
        return False
    else:
        c.sendall(http_response(200, b"default"))
    return True


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
