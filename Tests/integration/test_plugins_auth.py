"""key-auth, basic-auth and acl on the real proxy path (Kong's Get Started "key authentication" chapter
and spec/03-plugins/09-key-auth/02-access_spec.lua, 10-basic-auth/03-access_spec.lua,
18-acl/02-access_spec.lua), plus the runtime's precedence and propagation rules."""
import base64
import json
import socket

from conftest import add_route, wait_until


def plugin(g, path, body):
    s, b, _ = g.admin("POST", path, body)
    assert s == 201, b
    return b


def test_get_started_key_auth(gateway, upstream):
    g = gateway(workers=2)
    up = upstream("u")
    add_route(g, up, "/mock")
    plugin(g, "/routes/" + g.admin("GET", "/routes")[1]["data"][0]["id"] + "/plugins", {"name": "key-auth"})
    s, body, h = wait_until(lambda: (lambda r: r if r[0] == 401 else None)(g.get("/mock")), what="key-auth in force")
    assert json.loads(body)["message"] == "No API key found in request"
    assert h["WWW-Authenticate"] == "Key"
    assert g.admin("POST", "/consumers", {"username": "luka"})[0] == 201
    assert g.admin("POST", "/consumers/luka/key-auth", {"key": "top-secret-key"})[0] == 201
    # Every worker: new connections (SO_REUSEPORT spreads them) all see the credential at once.
    for _ in range(10):
        assert g.get("/mock", headers={"apikey": "top-secret-key"})[0] == 200
    s, body, h = g.get("/mock", headers={"apikey": "wrong"})
    assert s == 401 and json.loads(body)["message"] == "Unauthorized" and h["WWW-Authenticate"] == "Key"
    assert g.get("/mock?apikey=top-secret-key")[0] == 200
    s, body, _ = g.get("/mock?apikey=top-secret-key&apikey=top-secret-key")
    assert s == 401 and json.loads(body)["message"] == "Duplicate API key found"
    seen = up.requests[-1]["headers"]
    assert seen["X-Consumer-Username"] == "luka"
    assert "X-Anonymous-Consumer" not in seen
    cred = g.admin("GET", "/consumers/luka/key-auth")[1]["data"][0]
    assert seen["X-Credential-Identifier"] == cred["id"]
    # Deleting the credential applies on every worker for the next request.
    assert g.admin("DELETE", f"/consumers/luka/key-auth/{cred['id']}")[0] == 204
    for _ in range(6):
        assert g.get("/mock", headers={"apikey": "top-secret-key"})[0] == 401


def test_key_auth_hide_credentials_and_spoofed_headers(gateway, upstream):
    g = gateway(workers=1)
    up = upstream("u")
    add_route(g, up, "/request")
    plugin(g, "/plugins", {"name": "key-auth", "config": {"hide_credentials": True}})
    g.admin("POST", "/consumers", {"username": "bob"})
    g.admin("POST", "/consumers/bob/key-auth", {"key": "kong"})
    wait_until(lambda: g.get("/request?apikey=kong")[0] == 200, what="credential")
    s, _, _ = g.get("/request?c=value1&b=value2&apikey=kong&a=value3",
                    headers={"X-Consumer-Custom-ID": "spoofed", "X-Anonymous-Consumer": "true"})
    assert s == 200
    r = up.requests[-1]
    assert r["path"] == "/?c=value1&b=value2&a=value3"  # strip_path (default true) removes /request
    assert "X-Consumer-Custom-ID" not in r["headers"] and "X-Anonymous-Consumer" not in r["headers"]
    assert g.get("/request", headers={"apikey": "kong"})[0] == 200
    assert "apikey" not in {k.lower() for k in up.requests[-1]["headers"]}


def test_key_auth_anonymous_and_preflight(gateway, upstream):
    g = gateway(workers=1)
    up = upstream("u")
    add_route(g, up, "/a")
    anon = g.admin("POST", "/consumers", {"username": "anon"})[1]
    rid = g.admin("GET", "/routes")[1]["data"][0]["id"]
    p = plugin(g, f"/routes/{rid}/plugins", {"name": "key-auth", "config": {"anonymous": anon["id"], "run_on_preflight": False}})
    wait_until(lambda: g.get("/a")[0] == 200, what="anonymous")
    assert up.requests[-1]["headers"]["X-Anonymous-Consumer"] == "true"
    assert up.requests[-1]["headers"]["X-Consumer-Username"] == "anon"
    # PATCH takes effect for the next request: no anonymous → 401; OPTIONS passes (run_on_preflight=false).
    assert g.admin("PATCH", f"/plugins/{p['id']}", {"config": {"anonymous": None}})[0] == 200
    assert g.get("/a")[0] == 401
    assert g.get("/a", method="OPTIONS")[0] == 200
    missing = "00000000-0000-4000-8000-000000000001"
    assert g.admin("PATCH", f"/plugins/{p['id']}", {"config": {"anonymous": missing}})[0] == 200
    s, body, _ = g.get("/a")
    assert s == 500 and json.loads(body)["message"] == f"anonymous consumer {missing} is configured but doesn't exist"
    # Disabled: the route is open again; DELETE: likewise.
    assert g.admin("PATCH", f"/plugins/{p['id']}", {"enabled": False, "config": {"anonymous": None}})[0] == 200
    assert g.get("/a")[0] == 200
    assert g.admin("PATCH", f"/plugins/{p['id']}", {"enabled": True})[0] == 200
    assert g.get("/a")[0] == 401
    assert g.admin("DELETE", f"/plugins/{p['id']}")[0] == 204
    assert g.get("/a")[0] == 200


def test_key_auth_bad_input(gateway, upstream):
    g = gateway(workers=1)
    up = upstream("u")
    add_route(g, up, "/b")
    plugin(g, "/plugins", {"name": "key-auth"})
    wait_until(lambda: g.get("/b")[0] == 401, what="key-auth")
    # A huge key (within the header limits) and binary garbage: 401, the worker keeps serving.
    assert g.get("/b", headers={"apikey": "x" * 7000})[0] == 401
    assert g.get("/b?apikey=%00%ff%zz")[0] == 401
    s = socket.create_connection(("127.0.0.1", g.proxy_port), timeout=5)
    s.sendall(b"GET /b HTTP/1.1\r\nHost: x\r\napikey: \xff\xfe\r\n\r\n")
    assert s.recv(4096).startswith(b"HTTP/1.1 401")
    s.close()
    # Invalid configs: Kong's 400 with field errors, nothing stored.
    s, b, _ = g.admin("POST", "/plugins", {"name": "key-auth", "config": {"key_names": ["bad name"]}})
    assert s == 400 and "config" in b["fields"]
    s, b, _ = g.admin("POST", "/plugins", {"name": "key-auth", "config": {"key_in_body": "yes please"}})
    assert s == 400, b
    assert len(g.admin("GET", "/plugins")[1]["data"]) == 1
    assert g.get("/b")[0] == 401


def test_precedence_route_service_global(gateway, upstream):
    """One rate-limiting instance per scope: the most specific one's limit is in the headers."""
    g = gateway(workers=1)
    up = upstream("u")
    add_route(g, up, "/p1")
    routes = g.admin("GET", "/routes")[1]["data"]
    rid, sid = routes[0]["id"], routes[0]["service"]["id"]
    plugin(g, "/plugins", {"name": "rate-limiting", "config": {"hour": 8}})
    plugin(g, f"/services/{sid}/plugins", {"name": "rate-limiting", "config": {"hour": 7}})
    r = plugin(g, f"/routes/{rid}/plugins", {"name": "rate-limiting", "config": {"hour": 6}})
    assert g.get("/p1")[2]["X-RateLimit-Limit-Hour"] == "6"
    assert g.admin("DELETE", f"/plugins/{r['id']}")[0] == 204
    assert g.get("/p1")[2]["X-RateLimit-Limit-Hour"] == "7"
    # A router miss runs no access plugin: 404 without rate-limit headers.
    s, _, h = g.get("/nothing-here")
    assert s == 404 and "X-RateLimit-Limit-Hour" not in h


def test_global_key_auth_and_rate_limiting(gateway, upstream):
    """Kong's plugins_triggering_spec scenario 1."""
    g = gateway(workers=1)
    up = upstream("u")
    add_route(g, up, "/t")
    plugin(g, "/plugins", {"name": "key-auth"})
    plugin(g, "/plugins", {"name": "rate-limiting", "config": {"hour": 1}})
    g.admin("POST", "/consumers", {"username": "bob"})
    g.admin("POST", "/consumers/bob/key-auth", {"key": "secret1"})
    s, _, h = g.get("/t")
    assert s == 401 and "X-RateLimit-Limit-Hour" not in h
    s, _, h = g.get("/t", headers={"apikey": "secret1"})
    assert s == 200 and h["X-RateLimit-Limit-Hour"] == "1"
    s, body, h = g.get("/t", headers={"apikey": "secret1"})
    assert s == 429 and json.loads(body)["message"] == "API rate limit exceeded"
