"""basic-auth and acl through the real proxy (Kong's spec/03-plugins/10-basic-auth/03-access_spec.lua,
18-acl/02-access_spec.lua), and key-auth + basic-auth combined with logical AND / OR
(09-key-auth/02-access_spec.lua "multiple auth without/with anonymous")."""
import base64
import json

from conftest import add_route


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def basic(user, pw):
    return "Basic " + b64(f"{user}:{pw}")


def plugin(g, route_path, body):
    rid = next(r["id"] for r in g.admin("GET", "/routes")[1]["data"] if r["paths"] == [route_path])
    s, b, _ = g.admin("POST", f"/routes/{rid}/plugins", body)
    assert s == 201, b
    return b


def consumer(g, name, **extra):
    s, b, _ = g.admin("POST", "/consumers", dict(extra, username=name))
    assert s == 201, b
    return b


def ok(g, path, headers):
    s, body, h = g.get(path, headers=headers)
    assert s == 200, (path, headers, s, body)
    return h


def unauthorized(g, path, headers=None, realm="service"):
    s, body, h = g.get(path, headers=headers)
    assert s == 401, (path, headers, s, body)
    assert json.loads(body)["message"] == "Unauthorized", body
    assert h["WWW-Authenticate"] == f'Basic realm="{realm}"', h
    return h


def test_basic_auth_access(gateway, upstream):
    g = gateway(workers=2)
    up = upstream("u")
    add_route(g, up, "/ba")
    add_route(g, up, "/realm")
    add_route(g, up, "/hide")
    plugin(g, "/ba", {"name": "basic-auth"})
    plugin(g, "/realm", {"name": "basic-auth", "config": {"realm": "test-realm"}})
    plugin(g, "/hide", {"name": "basic-auth", "config": {"hide_credentials": True}})
    bob = consumer(g, "bob", custom_id="bob-custom")
    consumer(g, "colon")
    assert g.admin("POST", "/consumers/bob/basic-auth", {"username": "bob", "password": "kong"})[0] == 201
    assert g.admin("POST", "/consumers/colon/basic-auth", {"username": "user123", "password": "pass:456"})[0] == 201
    hits = up.hits
    unauthorized(g, "/ba")
    unauthorized(g, "/realm", realm="test-realm")
    unauthorized(g, "/ba", {"Authorization": "foobar"})
    unauthorized(g, "/ba", {"Authorization": "Basic a29uZw=="})  # "kong": no colon
    unauthorized(g, "/ba", {"Authorization": basic("bob", "wrong")})
    unauthorized(g, "/ba", {"Authorization": basic("nobody", "kong")})
    unauthorized(g, "/ba", {"Authorization": basic("bob", "")})
    unauthorized(g, "/ba", {"Authorization": basic("bob", "kon")})
    unauthorized(g, "/ba", {"Authorization": basic("bob", "kong ")})
    assert up.hits == hits
    # Valid: the upstream gets the consumer headers; X-Credential-Identifier is the credential's username.
    ok(g, "/ba", {"Authorization": "Basic Ym9iOmtvbmc="})
    seen = up.requests[-1]["headers"]
    assert seen["X-Consumer-Username"] == "bob" and seen["X-Consumer-ID"] == bob["id"]
    assert seen["X-Consumer-Custom-ID"] == "bob-custom" and seen["X-Credential-Identifier"] == "bob"
    assert seen["Authorization"] == "Basic Ym9iOmtvbmc=" and "X-Anonymous-Consumer" not in seen
    # "basic" in lower case, extra spaces.
    ok(g, "/ba", {"Authorization": "basic   Ym9iOmtvbmc="})
    # Proxy-Authorization is accepted (and tried first).
    ok(g, "/ba", {"Proxy-Authorization": basic("bob", "kong")})
    ok(g, "/ba", {"Proxy-Authorization": basic("bob", "kong"), "Authorization": basic("bob", "wrong")})
    # A password with ':' (split at the first colon).
    ok(g, "/ba", {"Authorization": basic("user123", "pass:456")})
    assert up.requests[-1]["headers"]["X-Credential-Identifier"] == "user123"
    assert up.requests[-1]["headers"]["X-Consumer-Username"] == "colon"
    unauthorized(g, "/ba", {"Authorization": basic("user123", "pass")})
    # Spoofed consumer headers are overwritten / removed.
    ok(g, "/ba", {"Authorization": basic("user123", "pass:456"), "X-Consumer-Custom-ID": "spoof",
                  "X-Consumer-Username": "spoof", "X-Anonymous-Consumer": "true"})
    seen = up.requests[-1]["headers"]
    assert seen["X-Consumer-Username"] == "colon"
    assert "X-Consumer-Custom-ID" not in seen and "X-Anonymous-Consumer" not in seen
    # hide_credentials strips Authorization (and Proxy-Authorization) upstream.
    ok(g, "/hide", {"Authorization": basic("bob", "kong"), "X-Keep": "1"})
    seen = {k.lower(): v for k, v in up.requests[-1]["headers"].items()}
    assert "authorization" not in seen and seen["x-keep"] == "1"
    ok(g, "/hide", {"Proxy-Authorization": basic("bob", "kong")})
    assert "proxy-authorization" not in {k.lower() for k in up.requests[-1]["headers"]}
    ok(g, "/realm", {"Authorization": basic("bob", "kong")})
    # A credential's password PATCHed: the old one stops working.
    assert g.admin("PATCH", "/consumers/bob/basic-auth/bob", {"password": "new"})[0] == 200
    unauthorized(g, "/ba", {"Authorization": basic("bob", "kong")})
    ok(g, "/ba", {"Authorization": basic("bob", "new")})


def test_basic_auth_anonymous(gateway, upstream):
    g = gateway(workers=1)
    up = upstream("u")
    add_route(g, up, "/an")
    anon = consumer(g, "no-body")
    consumer(g, "bob")
    g.admin("POST", "/consumers/bob/basic-auth", {"username": "bob", "password": "kong"})
    plugin(g, "/an", {"name": "basic-auth", "config": {"anonymous": "no-body"}})  # a username works too
    for headers in ({}, {"Authorization": basic("bob", "wrong")}, {"Authorization": "garbage"}):
        ok(g, "/an", headers)
        seen = up.requests[-1]["headers"]
        assert seen["X-Anonymous-Consumer"] == "true" and seen["X-Consumer-ID"] == anon["id"]
        assert "X-Credential-Identifier" not in seen
    ok(g, "/an", {"Authorization": basic("bob", "kong")})
    assert up.requests[-1]["headers"]["X-Consumer-Username"] == "bob"


def test_acl_access(gateway, upstream):
    g = gateway(workers=2)
    up = upstream("u")
    for p in ("/admin", "/deny", "/multi", "/hidden", "/noauth", "/anon"):
        add_route(g, up, p)
    for p in ("/admin", "/deny", "/multi", "/hidden"):
        plugin(g, p, {"name": "key-auth"})
    plugin(g, "/admin", {"name": "acl", "config": {"allow": ["admin"]}})
    plugin(g, "/deny", {"name": "acl", "config": {"deny": ["admin"]}})
    plugin(g, "/multi", {"name": "acl", "config": {"allow": ["pro", "hello"]}})
    plugin(g, "/hidden", {"name": "acl", "config": {"allow": ["admin"], "hide_groups_header": True}})
    plugin(g, "/noauth", {"name": "acl", "config": {"allow": ["admin"]}})
    anon = consumer(g, "anonymous")
    plugin(g, "/anon", {"name": "key-auth", "config": {"anonymous": anon["id"]}})
    plugin(g, "/anon", {"name": "acl", "config": {"allow": ["admin"]}})
    for name, groups in (("admin1", ["admin"]), ("plain", []), ("multi", ["pro", "hello"]), ("other", ["other"])):
        consumer(g, name)
        assert g.admin("POST", f"/consumers/{name}/key-auth", {"key": f"{name}-key"})[0] == 201
        for grp in groups:
            assert g.admin("POST", f"/consumers/{name}/acls", {"group": grp})[0] == 201

    def forbidden(path, key):
        s, body, _ = g.get(path, headers={"apikey": key})
        assert s == 403 and json.loads(body)["message"] == "You cannot consume this service", (path, key, s, body)

    ok(g, "/admin", {"apikey": "admin1-key"})
    assert up.requests[-1]["headers"]["X-Consumer-Groups"] == "admin"
    forbidden("/admin", "other-key")
    forbidden("/admin", "plain-key")  # a consumer without any group, with a credential
    forbidden("/deny", "admin1-key")
    ok(g, "/deny", {"apikey": "other-key"})
    assert up.requests[-1]["headers"]["X-Consumer-Groups"] == "other"
    ok(g, "/deny", {"apikey": "plain-key"})  # no group: a deny list lets it pass
    ok(g, "/multi", {"apikey": "multi-key"})
    assert up.requests[-1]["headers"]["X-Consumer-Groups"] == "pro, hello"
    forbidden("/multi", "admin1-key")
    ok(g, "/hidden", {"apikey": "admin1-key"})
    assert "X-Consumer-Groups" not in up.requests[-1]["headers"]
    # No auth plugin: no consumer and no credential → 401.
    s, body, _ = g.get("/noauth")
    assert s == 401 and json.loads(body)["message"] == "Unauthorized", body
    # The anonymous consumer has no group and no credential under an allow list → 401 (Kong's acl handler);
    # with a group that is not allowed → 403.
    s, body, _ = g.get("/anon")
    assert s == 401 and json.loads(body)["message"] == "Unauthorized", (s, body)
    s, grp, _ = g.admin("POST", "/consumers/anonymous/acls", {"group": "nope"})
    assert s == 201, grp
    s, body, _ = g.get("/anon")
    assert s == 403 and json.loads(body)["message"] == "You cannot consume this service", (s, body)
    assert g.admin("DELETE", f"/consumers/anonymous/acls/{grp['id']}")[0] == 204
    ok(g, "/anon", {"apikey": "admin1-key"})
    # A group added to the anonymous consumer lets anonymous requests through.
    assert g.admin("POST", "/consumers/anonymous/acls", {"group": "admin"})[0] == 201
    ok(g, "/anon", {})
    assert up.requests[-1]["headers"]["X-Anonymous-Consumer"] == "true"


def _multi_auth(g, up, anonymous):
    add_route(g, up, "/m")
    u1 = consumer(g, "user1")
    u2 = consumer(g, "user2")
    g.admin("POST", "/consumers/user1/key-auth", {"key": "Mouse"})
    g.admin("POST", "/consumers/user2/basic-auth", {"username": "Aladdin", "password": "OpenSesame"})
    cfg = {"anonymous": anonymous} if anonymous else {}
    plugin(g, "/m", {"name": "key-auth", "config": cfg})
    plugin(g, "/m", {"name": "basic-auth", "config": cfg})
    return u1, u2


def test_key_auth_and_basic_auth_logical_and(gateway, upstream):
    g = gateway(workers=1)
    up = upstream("u")
    u1, u2 = _multi_auth(g, up, None)
    both = {"apikey": "Mouse", "Authorization": basic("Aladdin", "OpenSesame")}
    ok(g, "/m", both)
    seen = up.requests[-1]["headers"]
    assert "X-Anonymous-Consumer" not in seen
    assert seen["X-Consumer-ID"] in (u1["id"], u2["id"])
    # Only the first credential: basic-auth fails.
    s, _, h = g.get("/m", headers={"apikey": "Mouse"})
    assert s == 401 and h["WWW-Authenticate"] == 'Basic realm="service"'
    # Only the second: key-auth (higher priority) fails first.
    s, _, h = g.get("/m", headers={"Authorization": basic("Aladdin", "OpenSesame")})
    assert s == 401 and h["WWW-Authenticate"] == "Key"
    s, body, h = g.get("/m")
    assert s == 401 and h["WWW-Authenticate"] == "Key"
    assert json.loads(body)["message"] == "No API key found in request"


def test_key_auth_and_basic_auth_logical_or(gateway, upstream):
    g = gateway(workers=1)
    up = upstream("u")
    anon = consumer(g, "Anonymous")
    u1, u2 = _multi_auth(g, up, anon["id"])
    ok(g, "/m", {"apikey": "Mouse", "Authorization": basic("Aladdin", "OpenSesame")})
    seen = up.requests[-1]["headers"]
    assert "X-Anonymous-Consumer" not in seen and seen["X-Consumer-ID"] == u1["id"]
    ok(g, "/m", {"apikey": "Mouse"})
    seen = up.requests[-1]["headers"]
    assert "X-Anonymous-Consumer" not in seen and seen["X-Consumer-ID"] == u1["id"]
    ok(g, "/m", {"Authorization": basic("Aladdin", "OpenSesame")})
    seen = up.requests[-1]["headers"]
    assert "X-Anonymous-Consumer" not in seen and seen["X-Consumer-ID"] == u2["id"]
    assert seen["X-Credential-Identifier"] == "Aladdin"
    ok(g, "/m", {})
    seen = up.requests[-1]["headers"]
    assert seen["X-Anonymous-Consumer"] == "true" and seen["X-Consumer-ID"] == anon["id"]
    ok(g, "/m", {"apikey": "wrong", "Authorization": basic("Aladdin", "bad")})
    assert up.requests[-1]["headers"]["X-Anonymous-Consumer"] == "true"
