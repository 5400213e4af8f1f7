"""Which plugin instance runs (Kong's spec/02-integration/15-plugins-iterator/01-precedence_spec.lua and
spec/02-integration/05-proxy/04-plugins_triggering_spec.lua), through the Admin API and the real proxy:
the 8 scope levels, `enabled=false` never shadowing, no_consumer plugins, short-circuited requests running
the collected header_filter, and a router miss running only the global plugins."""
import json

from conftest import add_route


def plugin(g, path, body):
    s, b, _ = g.admin("POST", path, body)
    assert s == 201, (path, body, b)
    return b


def consumer(g, name):
    s, b, _ = g.admin("POST", "/consumers", {"username": name})
    assert s == 201, b
    return b["id"]


def route_ids(g, path):
    for r in g.admin("GET", "/routes")[1]["data"]:
        if path in (r.get("paths") or []):
            return r["id"], r["service"]["id"]
    raise AssertionError(f"no route {path}")


def limit_hour(g, path, key):
    s, body, h = g.get(path, headers={"apikey": key})
    assert s == 200, (s, body)
    return h.get("X-RateLimit-Limit-Hour")


def test_eight_levels_removed_one_by_one(gateway, upstream):
    g = gateway(workers=2)
    up = upstream("u")
    add_route(g, up, "/prec")
    rid, sid = route_ids(g, "/prec")
    bob = consumer(g, "bob")
    assert g.admin("POST", "/consumers/bob/key-auth", {"key": "bob-key"})[0] == 201
    plugin(g, f"/routes/{rid}/plugins", {"name": "key-auth"})
    R, S, C = {"id": rid}, {"id": sid}, {"id": bob}
    # Most specific first; distinct hour limits (large: each check consumes one request of the hour).
    levels = [
        ("route+service+consumer", {"route": R, "service": S, "consumer": C}, 1001),
        ("route+consumer", {"route": R, "consumer": C}, 1002),
        ("service+consumer", {"service": S, "consumer": C}, 1003),
        ("route+service", {"route": R, "service": S}, 1004),
        ("consumer", {"consumer": C}, 1005),
        ("route", {"route": R}, 1006),
        ("service", {"service": S}, 1007),
        ("global", {}, 1008),
    ]
    ids = []
    # Created from the least specific up, so each creation is seen to take over at once.
    for name, scope, hour in reversed(levels):
        p = plugin(g, "/plugins", dict(scope, name="rate-limiting", config={"hour": hour}))
        ids.append(p["id"])
        assert limit_hour(g, "/prec", "bob-key") == str(hour), name
    ids.reverse()
    for i, (name, _, hour) in enumerate(levels):
        assert limit_hour(g, "/prec", "bob-key") == str(hour), name
        nxt = levels[i + 1][2] if i + 1 < len(levels) else None
        # A disabled instance never shadows a less specific one.
        s, b, _ = g.admin("PATCH", f"/plugins/{ids[i]}", {"enabled": False})
        assert s == 200 and b["enabled"] is False, b
        assert limit_hour(g, "/prec", "bob-key") == (str(nxt) if nxt else None), f"{name} disabled"
        assert g.admin("PATCH", f"/plugins/{ids[i]}", {"enabled": True})[0] == 200
        assert limit_hour(g, "/prec", "bob-key") == str(hour), f"{name} re-enabled"
        assert g.admin("DELETE", f"/plugins/{ids[i]}")[0] == 204
        assert limit_hour(g, "/prec", "bob-key") == (str(nxt) if nxt else None), f"{name} deleted"
    # One entity per (name, route, service, consumer): a duplicate is a 409.
    plugin(g, "/plugins", {"name": "rate-limiting", "route": R, "config": {"hour": 5}})
    s, b, _ = g.admin("POST", "/plugins", {"name": "rate-limiting", "route": R, "config": {"hour": 6}})
    assert s == 409, b


def test_consumer_scope_only_for_that_consumer(gateway, upstream):
    """Kong's plugins_triggering scenario 2: route+service hour=2, consumer2 hour=3, route2+consumer2 hour=4."""
    g = gateway(workers=1)
    up = upstream("u")
    add_route(g, up, "/api1")
    add_route(g, up, "/api2")
    add_route(g, up, "/api3")
    r1, s1 = route_ids(g, "/api1")
    r2, _ = route_ids(g, "/api2")
    c1, c2 = consumer(g, "c1"), consumer(g, "c2")
    g.admin("POST", "/consumers/c1/key-auth", {"key": "secret1"})
    g.admin("POST", "/consumers/c2/key-auth", {"key": "secret2"})
    plugin(g, "/plugins", {"name": "key-auth"})
    plugin(g, "/plugins", {"name": "rate-limiting", "route": {"id": r1}, "service": {"id": s1}, "config": {"hour": 2}})
    plugin(g, "/plugins", {"name": "rate-limiting", "consumer": {"id": c2}, "config": {"hour": 3}})
    plugin(g, "/plugins", {"name": "rate-limiting", "route": {"id": r2}, "consumer": {"id": c2}, "config": {"hour": 4}})
    assert limit_hour(g, "/api1", "secret1") == "2"
    assert limit_hour(g, "/api3", "secret2") == "3"
    assert limit_hour(g, "/api2", "secret2") == "4"
    assert limit_hour(g, "/api2", "secret1") is None  # c1 on api2: no instance applies
    assert limit_hour(g, "/api1", "secret2") == "2"  # route+service (level 4) ranks above consumer (level 5)


def test_no_consumer_plugins_refuse_a_consumer_scope(gateway):
    g = gateway(workers=1)
    cid = consumer(g, "bob")
    for name in ("key-auth", "basic-auth", "cors"):
        s, b, _ = g.admin("POST", "/plugins", {"name": name, "consumer": {"id": cid}})
        assert s == 400, (name, b)
        assert b["name"] == "schema violation" and b["fields"]["consumer"] == "value must be null", b
        s, b, _ = g.admin("POST", f"/consumers/{cid}/plugins", {"name": name})
        assert s == 400 and b["fields"]["consumer"] == "value must be null", (name, b)
    s, b, _ = g.admin("POST", "/plugins", {"name": "acl", "consumer": {"id": cid}, "config": {"allow": ["a"]}})
    assert s == 400 and b["fields"]["consumer"] == "value must be null", b
    assert g.admin("GET", "/plugins")[1]["data"] == []
    # rate-limiting may be consumer-scoped.
    plugin(g, f"/consumers/{cid}/plugins", {"name": "rate-limiting", "config": {"hour": 3}})


def test_global_key_auth_and_rate_limiting_401_has_no_limit_headers(gateway, upstream):
    """plugins_triggering scenario 1, on two workers."""
    g = gateway(workers=2)
    up = upstream("u")
    add_route(g, up, "/t")
    plugin(g, "/plugins", {"name": "key-auth"})
    plugin(g, "/plugins", {"name": "rate-limiting", "config": {"hour": 1}})
    consumer(g, "bob")
    g.admin("POST", "/consumers/bob/key-auth", {"key": "secret1"})
    hits = up.hits
    for _ in range(4):
        s, body, h = g.get("/t")
        assert s == 401 and json.loads(body)["message"] == "No API key found in request"
        assert not any(k.lower().startswith(("x-ratelimit", "ratelimit", "retry-after")) for k in h), h
    s, _, h = g.get("/t", headers={"apikey": "secret1"})
    assert s == 200 and h["X-RateLimit-Limit-Hour"] == "1" and h["X-RateLimit-Remaining-Hour"] == "0"
    for _ in range(3):
        s, body, h = g.get("/t", headers={"apikey": "secret1"})
        assert s == 429 and json.loads(body)["message"] == "API rate limit exceeded"
    assert up.hits == hits + 1


def test_anonymous_consumer_scoped_rate_limiting(gateway, upstream):
    """plugins_triggering scenario 3: key-auth (anonymous) + rate-limiting on route+service+anonymous hour=5."""
    g = gateway(workers=2)
    up = upstream("u")
    add_route(g, up, "/anon")
    rid, sid = route_ids(g, "/anon")
    anon = consumer(g, "anonymous")
    consumer(g, "bob")
    g.admin("POST", "/consumers/bob/key-auth", {"key": "bob-key"})
    plugin(g, f"/routes/{rid}/plugins", {"name": "key-auth", "config": {"anonymous": anon}})
    plugin(g, "/plugins", {"name": "rate-limiting", "route": {"id": rid}, "service": {"id": sid},
                           "consumer": {"id": anon}, "config": {"hour": 5}})
    for remaining in (4, 3):
        s, _, h = g.get("/anon")
        assert s == 200 and h["X-RateLimit-Limit-Hour"] == "5" and h["X-RateLimit-Remaining-Hour"] == str(remaining)
        assert up.requests[-1]["headers"]["X-Anonymous-Consumer"] == "true"
    # bob is not the anonymous consumer: no instance for him.
    s, _, h = g.get("/anon", headers={"apikey": "bob-key"})
    assert s == 200 and "X-RateLimit-Limit-Hour" not in h
    assert up.requests[-1]["headers"]["X-Consumer-Username"] == "bob"
    # A wrong key falls back to anonymous too.
    s, _, h = g.get("/anon", headers={"apikey": "wrong"})
    assert s == 200 and h["X-RateLimit-Remaining-Hour"] == "2"


def test_short_circuit_runs_collected_header_filter(gateway, upstream):
    """plugins_triggering scenario 4: a key-auth 401 still gets the response-transformer's header."""
    g = gateway(workers=2)
    up = upstream("u")
    add_route(g, up, "/sc")
    rid, _ = route_ids(g, "/sc")
    plugin(g, f"/routes/{rid}/plugins", {"name": "key-auth"})
    plugin(g, f"/routes/{rid}/plugins", {"name": "response-transformer", "config": {"add": {"headers": ["X-Rt:on-401"]}}})
    plugin(g, f"/routes/{rid}/plugins", {"name": "rate-limiting", "config": {"hour": 100}})
    hits = up.hits
    s, body, h = g.get("/sc")
    assert s == 401 and json.loads(body)["message"] == "No API key found in request"
    assert h.get("X-Rt") == "on-401", h
    assert h["WWW-Authenticate"] == "Key"
    # rate-limiting (priority 910) comes after the exit: its access was skipped, it adds no headers.
    assert "X-RateLimit-Limit-Hour" not in h
    assert up.hits == hits


def test_router_miss_runs_only_global_header_filter(gateway, upstream):
    """plugins_triggering: a 404 from the router runs the global plugins' header_filter only; on a matched
    route the route-scoped instance shadows the global one."""
    g = gateway(workers=2)
    up = upstream("u")
    add_route(g, up, "/hit")
    rid, sid = route_ids(g, "/hit")
    plugin(g, "/plugins", {"name": "response-transformer", "config": {"add": {"headers": ["X-Global:1"]}}})
    plugin(g, f"/routes/{rid}/plugins", {"name": "response-transformer", "config": {"add": {"headers": ["X-Route:1"]}}})
    plugin(g, f"/services/{sid}/plugins", {"name": "cors", "config": {"origins": ["*"]}})
    plugin(g, "/plugins", {"name": "rate-limiting", "config": {"hour": 100}})
    s, body, h = g.get("/no-such-route", headers={"Origin": "a.test"})
    assert s == 404 and json.loads(body)["message"] == "no Route matched with those values"
    assert h.get("X-Global") == "1" and "X-Route" not in h, h
    assert "Access-Control-Allow-Origin" not in h  # service-scoped cors: not run on a router miss
    assert "X-RateLimit-Limit-Hour" not in h  # global, but access never ran
    s, _, h = g.get("/hit", headers={"Origin": "a.test"})
    assert s == 200 and h.get("X-Route") == "1" and "X-Global" not in h, h
    assert h["Access-Control-Allow-Origin"] == "*" and h["X-RateLimit-Limit-Hour"] == "100"
