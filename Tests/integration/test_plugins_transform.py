"""cors, request-transformer and response-transformer on the real proxy path (Kong's
spec/03-plugins/13-cors/01-access_spec.lua, 36-request-transformer/02-access_spec.lua,
15-response-transformer/01-header_transformer_spec.lua); transformations checked on what the
upstream receives and what the client receives."""
import json

from conftest import add_route


def plugin(g, body):
    s, b, _ = g.admin("POST", "/plugins", body)
    assert s == 201, b
    return b


def test_cors_preflight_and_simple(gateway, upstream):
    g = gateway(workers=1)
    up = upstream("u")
    add_route(g, up, "/c")
    plugin(g, {"name": "cors", "config": {"origins": ["example.test"], "methods": ["GET"], "headers": ["origin", "type", "accepts"],
                                         "exposed_headers": ["x-auth-token"], "max_age": 23, "credentials": True}})
    hits = up.hits
    s, body, h = g.get("/c", method="OPTIONS", headers={"Origin": "example.test", "Access-Control-Request-Method": "GET"})
    assert s == 200 and body == b"" and h["Content-Length"] == "0"
    assert h["Access-Control-Allow-Origin"] == "example.test" and h["Access-Control-Max-Age"] == "23"
    assert h["Access-Control-Allow-Headers"] == "origin,type,accepts" and h["Access-Control-Allow-Methods"] == "GET"
    assert h["Access-Control-Allow-Credentials"] == "true" and h["Vary"] == "Origin"
    assert up.hits == hits, "a preflight is answered by the gateway"
    s, _, h = g.get("/c", headers={"Origin": "example.test"})
    assert s == 200 and h["Access-Control-Allow-Origin"] == "example.test"
    assert h["Access-Control-Expose-Headers"] == "x-auth-token"
    # A non-preflight OPTIONS is proxied.
    s, _, _ = g.get("/c", method="OPTIONS", headers={"Origin": "example.test"})
    assert s == 200 and up.hits == hits + 2
    # Errors carry the CORS headers too (a router miss runs only global plugins: this one is global).
    s, _, h = g.get("/nothing", headers={"Origin": "example.test"})
    assert s == 404 and h["Access-Control-Allow-Origin"] == "example.test"
    s, b, _ = g.admin("POST", "/plugins", {"name": "cors", "route": {"id": g.admin("GET", "/routes")[1]["data"][0]["id"]},
                                            "config": {"origins": ["(unclosed"]}})
    assert s == 400 and "is not a valid regex" in json.dumps(b)


def test_request_transformer(gateway, upstream):
    g = gateway(workers=1)
    up = upstream("u")
    add_route(g, up, "/rt")
    plugin(g, {"name": "request-transformer", "config": {
        "remove": {"headers": ["x-remove-me"], "querystring": ["drop"]},
        "rename": {"headers": ["x-old:x-new"]},
        "replace": {"headers": ["x-existing:replaced", "host:example.test"]},
        "add": {"headers": ["x-added:1", "x-existing:not-added", "x-from:$(query_params.who or \"nobody\")"],
                "querystring": ["q2:v2"]},
        "append": {"headers": ["x-multi:a", "x-multi:b"]},
        "http_method": "POST"}})
    s, _, _ = g.get("/rt?drop=1&keep=2&who=alice",
                    headers={"X-Remove-Me": "1", "X-Old": "o", "X-Existing": "e"})
    assert s == 200
    r = up.requests[-1]
    hs = {k.lower(): v for k, v in r["headers"].items()}
    assert r["method"] == "POST"
    assert "x-remove-me" not in hs and hs["x-new"] == "o" and "x-old" not in hs
    assert hs["x-existing"] == "replaced" and hs["x-added"] == "1" and hs["x-from"] == "alice"
    assert hs["host"] == "example.test"
    assert "drop=" not in r["path"] and "keep=2" in r["path"] and "q2=v2" in r["path"]
    # A template the gateway cannot render is refused for body entries too (bodies: test_plugins_bodies.py).
    s, b, _ = g.admin("POST", "/services/svcrt/plugins", {"name": "request-transformer",
                                                          "config": {"add": {"body": ["a:$(type(headers.x))"]}}})
    assert s == 400, b


def test_response_transformer(gateway, upstream):
    g = gateway(workers=1)
    up = upstream("u")
    add_route(g, up, "/rs")
    plugin(g, {"name": "response-transformer", "config": {
        "remove": {"headers": ["x-upstream"]}, "add": {"headers": ["x-added:yes"]},
        "replace": {"headers": ["content-type:application/x-replaced"]}}})
    s, _, h = g.get("/rs")
    h = {k.lower(): v for k, v in h.items()}
    assert s == 200 and "x-upstream" not in h and h["x-added"] == "yes"
    assert h["content-type"] == "application/x-replaced"
    s, b, _ = g.admin("POST", "/services/svcrs/plugins", {"name": "response-transformer", "config": {"add": {"json": ["nocolon:"], "json_types": ["float"]}}})
    assert s == 400, b
