"""response-transformer on JSON bodies (Kong's spec/03-plugins/15-response-transformer/02-body_transformer_spec.lua
and 04-filter_spec.lua): the body is held (bounded by response_transformer_max_body_size), transformed, and
sent with its own Content-Length; Content-Length and chunked upstream bodies alike; larger bodies and
non-JSON bodies pass through untouched."""
import json

import pytest

from conftest import http_response


def plugin(g, body):
    s, b, _ = g.admin("POST", "/plugins", body)
    assert s == 201, b
    return b


DOC = {"p1": "v1", "p2": "v2", "p3": "v3", "keep": [1], "nested": {"a": 1}}


def answer(sock, req, up):
    path = req["target"]
    if path.startswith("/j/chunked"):
        sock.sendall(http_response(200, json.dumps(DOC).encode(), {"Content-Type": "application/json"}, chunked=True, chunk_size=7))
    elif path.startswith("/j/big"):
        big = json.dumps({"pad": "x" * 5000}).encode()
        sock.sendall(http_response(200, big, {"Content-Type": "application/json; charset=utf-8"}, chunked=True, chunk_size=1000))
    elif path.startswith("/j/bigcl"):
        sock.sendall(http_response(200, json.dumps({"pad": "x" * 5000}).encode(), {"Content-Type": "application/json"}))
    elif path.startswith("/j/text"):
        sock.sendall(http_response(200, b"p1=v1", {"Content-Type": "text/plain"}))
    elif path.startswith("/j/broken"):
        sock.sendall(http_response(200, b"{not json", {"Content-Type": "application/json"}))
    else:
        sock.sendall(http_response(200, json.dumps(DOC).encode(), {"Content-Type": "application/json"}))
    return True


@pytest.fixture
def setup(gateway, raw_upstream):
    g = gateway(workers=1, response_transformer_max_body_size="4k")
    up = raw_upstream(answer)
    s, b, _ = g.admin("POST", "/services", {"name": "j", "url": f"http://{up.address}"})
    assert s == 201, b
    s, b, _ = g.admin("POST", "/services/j/routes", {"paths": ["/j"], "strip_path": False})
    assert s == 201, b
    plugin(g, {"name": "response-transformer", "config": {
        "remove": {"json": ["p1"]},
        "rename": {"json": ["p2:renamed"]},
        "replace": {"json": ["p3:42", "absent:x"], "json_types": ["number", "string"]},
        "add": {"json": ["p3:not-added", "flag:true", "s:text"], "json_types": ["string", "boolean", "string"]},
        "append": {"json": ["keep:2", "list:a"], "json_types": ["number", "string"]}}})
    g.wait_route("/j/x")
    return g, up


EXPECTED = {"renamed": "v2", "p3": 42, "keep": [1, 2], "nested": {"a": 1}, "flag": True, "s": "text", "list": ["a"]}


@pytest.mark.parametrize("path", ["/j/cl", "/j/chunked"])
def test_json_body_transformed(setup, path):
    g, _ = setup
    s, body, h = g.get(path)
    assert s == 200
    assert json.loads(body) == EXPECTED
    assert h["Content-Length"] == str(len(body)) and "Transfer-Encoding" not in h


def test_untouched_bodies(setup):
    g, _ = setup
    for path in ("/j/big", "/j/bigcl"):   # larger than response_transformer_max_body_size (4k)
        s, body, _ = g.get(path)
        assert s == 200 and json.loads(body) == {"pad": "x" * 5000}, path
    assert "relayed untransformed" in g.log()
    s, body, _ = g.get("/j/text")
    assert s == 200 and body == b"p1=v1"
    s, body, _ = g.get("/j/broken")
    assert s == 200 and body == b"{not json"
    # HEAD: no body to hold.
    s, body, h = g.get("/j/cl", method="HEAD")
    assert s == 200 and body == b""
