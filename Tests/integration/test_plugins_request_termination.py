"""request-termination through the real proxy (Kong's spec/03-plugins/14-request-termination/01-schema_spec.lua,
02-access_spec.lua): default and custom status / message, raw bodies with and without content_type, 204
without Content-Length, a service-less route, echo (with the request's shape, uri captures and the raw
body) and trigger by header or query argument; correlation-id's echo on a terminated request
(11-correlation-id "executes with echo_downstream"); schema errors."""
import json
import re
import socket
import time

from conftest import TIMEOUT, add_route, wait_until


def raw(port, method, target, headers=(), body=b""):
    """One request with exactly these headers (plus Host-less framing): (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        lines = [f"{method} {target} HTTP/1.1", *headers, "Connection: close"]
        if body:
            lines.append(f"Content-Length: {len(body)}")
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    hdrs = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return int(lines[0].split(" ")[1]), hdrs, rest


def route(g, up, path, config, service=True, **route_extra):
    if service:
        name = "svc" + re.sub(r"[^a-z0-9]", "", path)
        s, b, _ = g.admin("POST", "/services", {"name": name, "url": f"http://{up.address}"})
        assert s == 201, b
        s, r, _ = g.admin("POST", f"/services/{name}/routes", dict({"paths": [path]}, **route_extra))
    else:
        s, r, _ = g.admin("POST", "/routes", dict({"paths": [path]}, **route_extra))
    assert s == 201, r
    if config is not None:
        s, b, _ = g.admin("POST", f"/routes/{r['id']}/plugins", {"name": "request-termination", "config": config})
        assert s == 201, b
    return r


def test_status_message_and_body(gateway, upstream):
    g = gateway(workers=2)
    up = upstream("u")
    route(g, up, "/t1", {})
    route(g, up, "/t2", {"status_code": 404})
    route(g, up, "/t3", {"status_code": 406, "message": "Invalid"})
    route(g, up, "/t4", {"body": "<html><body><h1>Service is down for maintenance</h1></body></html>"})
    route(g, up, "/t5", {"status_code": 451, "content_type": "text/html",
                         "body": "<html><body><h1>Service is down due to content infringement</h1></body></html>"})
    route(g, up, "/t6", {"status_code": 503, "body": '{"code": 1, "message": "Service unavailable"}'})
    route(g, up, "/t7", {}, service=False)
    route(g, up, "/t8", {"status_code": 204})
    route(g, up, "/t9", {"status_code": 200})
    route(g, up, "/t10", {"status_code": 418})
    wait_until(lambda: raw(g.proxy_port, "GET", "/t10", ["Host: x"])[0] == 418, what="plugins active")
    p = g.proxy_port

    s, h, b = raw(p, "GET", "/t1/status/200", ["Host: api1.request-termination.test"])
    assert s == 503 and json.loads(b) == {"message": "Service unavailable"}, b
    assert h["content-type"] == "application/json; charset=utf-8" and h["content-length"] == str(len(b))
    assert h["server"].startswith("kong/")
    s, h, b = raw(p, "GET", "/t7", ["Host: x"])               # a route without service
    assert s == 503 and json.loads(b) == {"message": "Service unavailable"}, b
    s, h, b = raw(p, "GET", "/t2", ["Host: x"])
    assert s == 404 and json.loads(b) == {"message": "Not found"}, b
    s, h, b = raw(p, "GET", "/t3", ["Host: x"])
    assert s == 406 and json.loads(b) == {"message": "Invalid"}, b
    s, h, b = raw(p, "GET", "/t4", ["Host: x"])
    assert s == 503 and b == b"<html><body><h1>Service is down for maintenance</h1></body></html>", b
    assert "content-type" not in h, h
    s, h, b = raw(p, "GET", "/t5", ["Host: x"])
    assert s == 451 and b == b"<html><body><h1>Service is down due to content infringement</h1></body></html>"
    assert h["content-type"] == "text/html"
    s, h, b = raw(p, "GET", "/t6", ["Host: x"])
    assert s == 503 and json.loads(b) == {"code": 1, "message": "Service unavailable"}
    s, h, b = raw(p, "GET", "/t8/status/204", ["Host: x"])
    assert s == 204 and "content-length" not in h and b == b"", (h, b)
    s, h, b = raw(p, "GET", "/t9", ["Host: x"])               # no default message for 200: empty body
    assert s == 200 and h["content-length"] == "0" and b == b"" and "content-type" not in h, (h, b)
    s, h, b = raw(p, "HEAD", "/t3", ["Host: x"])
    assert s == 406 and b == b""
    assert all(r["path"].startswith("/t") is False for r in up.requests), up.requests


def test_echo_and_trigger(gateway, upstream):
    g = gateway(workers=1)
    up = upstream("u")
    r9 = route(g, up, "~/(?<parameter>[^#?/]+)/200", {"echo": True, "status_code": 404},
               strip_path=False, hosts=["api9.request-termination.test"])
    r10 = route(g, up, "/status", {"echo": True, "trigger": "gimme-an-echo", "status_code": 404},
                hosts=["api10.request-termination.test"])
    wait_until(lambda: raw(g.proxy_port, "GET", "/status/200", ["Host: api9.request-termination.test"])[0] == 404,
               what="plugins active")
    p = g.proxy_port

    s, h, b = raw(p, "GET", "/status/200?hello=there", ["Host: api9.request-termination.test"], b"cool body")
    assert s == 404 and h["content-type"] == "application/json; charset=utf-8", (s, h)
    doc = json.loads(b)
    assert doc["message"] == "Not found"
    assert doc["matched_route"]["hosts"] == ["api9.request-termination.test"] and doc["matched_route"]["id"] == r9["id"]
    assert doc["matched_service"]["host"] == "127.0.0.1"
    assert isinstance(doc["kong"]["worker_pid"], int) and doc["kong"]["hostname"]
    assert doc["request"] == {
        "headers": {"content-length": "9", "host": "api9.request-termination.test", "connection": "close"},
        "host": "api9.request-termination.test",
        "method": "GET",
        "path": "/status/200",
        "port": p,
        "query": {"hello": "there"},
        "raw_body": "cool body",
        "scheme": "http",
        "uri_captures": {"named": {"parameter": "status"}, "unnamed": ["status"]},
    }, doc["request"]

    # trigger absent: proxied.
    s, h, b = raw(p, "GET", "/status/200", ["Host: api10.request-termination.test"])
    assert s == 200 and json.loads(b)["upstream"] == "u"
    # trigger as a header (any case) or a query argument: echoed.
    s, h, b = raw(p, "GET", "/status/200?hello=there", ["Host: api10.request-termination.test",
                                                         "Gimme-An-Echo: anything will do"], b"cool body")
    assert s == 404, (s, b)
    req = json.loads(b)["request"]
    assert req["headers"] == {"content-length": "9", "gimme-an-echo": "anything will do", "connection": "close",
                              "host": "api10.request-termination.test"}
    assert req["query"] == {"hello": "there"} and req["raw_body"] == "cool body"
    assert req["uri_captures"] == {"named": {}, "unnamed": []}
    s, h, b = raw(p, "GET", "/status/200?hello=there&gimme-an-echo=anything%20will%20do&flag&a=1&a=2",
                  ["Host: api10.request-termination.test"], b"cool body")
    assert s == 404, (s, b)
    req = json.loads(b)["request"]
    assert req["query"] == {"hello": "there", "gimme-an-echo": "anything will do", "flag": True, "a": ["1", "2"]}
    # A JSON or form body is parsed into `body`; no body → raw_body "".
    s, h, b = raw(p, "POST", "/status/200?gimme-an-echo", ["Host: api10.request-termination.test",
                                                           "Content-Type: application/json"], b'{"a": [1, 2]}')
    req = json.loads(b)["request"]
    assert req["method"] == "POST" and req["body"] == {"a": [1, 2]} and req["raw_body"] == '{"a": [1, 2]}'
    s, h, b = raw(p, "POST", "/status/200?gimme-an-echo", ["Host: api10.request-termination.test",
                                                           "Content-Type: application/x-www-form-urlencoded"],
                  b"x=1&y=a+b")
    assert json.loads(b)["request"]["body"] == {"x": "1", "y": "a b"}
    s, h, b = raw(p, "GET", "/status/200?gimme-an-echo", ["Host: api10.request-termination.test"])
    req = json.loads(b)["request"]
    assert req["raw_body"] == "" and "body" not in req
    # A body sent after the head, in pieces, is read before access; a chunked one too.
    with socket.create_connection(("127.0.0.1", p), timeout=TIMEOUT) as c:
        c.sendall(b"POST /status/200?gimme-an-echo HTTP/1.1\r\nHost: api10.request-termination.test\r\n"
                  b"Content-Length: 11\r\nConnection: close\r\n\r\n")
        time.sleep(0.2)
        c.sendall(b"late ")
        time.sleep(0.2)
        c.sendall(b"body!")
        time.sleep(0.1)
        c.sendall(b"!")
        data = b""
        while True:
            chunk = c.recv(65536)
            if not chunk:
                break
            data += chunk
    assert json.loads(data.partition(b"\r\n\r\n")[2])["request"]["raw_body"] == "late body!!"
    with socket.create_connection(("127.0.0.1", p), timeout=TIMEOUT) as c:
        c.sendall(b"POST /status/200?gimme-an-echo HTTP/1.1\r\nHost: api10.request-termination.test\r\n"
                  b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n")
        data = b""
        while True:
            chunk = c.recv(65536)
            if not chunk:
                break
            data += chunk
    assert json.loads(data.partition(b"\r\n\r\n")[2])["request"]["raw_body"] == "abcdefg"
    # A body larger than client_body_buffer_size (8k) is not in memory: no raw_body (Kong: get_raw_body fails).
    s, h, b = raw(p, "POST", "/status/200?gimme-an-echo", ["Host: api10.request-termination.test",
                                                           "Content-Type: application/json"], b"[" + b"1," * 10000 + b"1]")
    req = json.loads(b)["request"]
    assert s == 404 and "raw_body" not in req and "body" not in req, req.keys()
    # A repeated header is an array.
    s, h, b = raw(p, "GET", "/status/200", ["Host: api10.request-termination.test", "gimme-an-echo: 1", "X-A: 1", "x-a: 2"])
    assert json.loads(b)["request"]["headers"]["x-a"] == ["1", "2"]
    assert r10["id"]


def test_correlation_id_echo_on_terminated_request(gateway, upstream):
    g = gateway(workers=1)
    up = upstream("u")
    r = route(g, up, "/teapot", {"status_code": 418, "message": "I'm a teapot"})
    s, b, _ = g.admin("POST", f"/routes/{r['id']}/plugins",
                      {"name": "correlation-id", "config": {"generator": "uuid", "echo_downstream": True}})
    assert s == 201, b
    wait_until(lambda: "kong-request-id" in raw(g.proxy_port, "GET", "/teapot", ["Host: x"])[1], what="plugins")
    s, h, b = raw(g.proxy_port, "GET", "/teapot", ["Host: x"])
    assert s == 418 and json.loads(b) == {"message": "I'm a teapot"}
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", h["kong-request-id"])
    s, h, b = raw(g.proxy_port, "GET", "/teapot", ["Host: x", "kong-request-id: my very personal id"])
    assert s == 418 and h["kong-request-id"] == "my very personal id"


def test_schema(gateway):
    g = gateway(workers=1)

    def refused(config):
        s, b, _ = g.admin("POST", "/plugins", {"name": "request-termination", "config": config})
        assert s == 400, (config, s, b)
        assert b["name"] == "schema violation"
        return b["fields"]["config"]

    assert refused({"status_code": "abcd"}) == {"status_code": "expected an integer"}
    assert refused({"status_code": None}) == {"status_code": "required field missing"}
    assert refused({"status_code": 99}) == {"status_code": "value should be between 100 and 599"}
    assert refused({"status_code": 600}) == {"status_code": "value should be between 100 and 599"}
    assert refused({"message": "error", "body": "test"}) == "message cannot be used with content_type or body"
    assert refused({"message": "error", "content_type": "text/html", "body": "test"}) == \
        "message cannot be used with content_type or body"
    assert refused({"message": "error", "content_type": "text/html"}) == "message cannot be used with content_type or body"
    assert refused({"content_type": "text/html"}) == "content_type requires a body"
    assert refused({"echo": True, "content_type": "text/html", "body": "<body><h1>Not found</h1>"}) == \
        "echo cannot be used with content_type and body"
    assert "trigger" in refused({"trigger": "bad header"})
    assert g.admin("GET", "/plugins")[1]["data"] == []
    for ok in ({"status_code": 404}, {"message": "Not found"}, {"content_type": "text/html", "body": "<b>x</b>"},
               {"body": "<body><h1>Not found</h1>"}, {"echo": True, "trigger": "header_name"}):
        s, b, _ = g.admin("POST", "/plugins", {"name": "request-termination", "config": ok})
        assert s == 201, (ok, b)
        assert g.admin("DELETE", f"/plugins/{b['id']}")[0] == 204
    s, b, _ = g.admin("POST", "/plugins", {"name": "request-termination"})
    assert b["config"] == {"status_code": 503, "message": None, "content_type": None, "body": None, "echo": False,
                           "trigger": None}, b
