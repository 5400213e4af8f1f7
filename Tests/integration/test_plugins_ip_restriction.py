"""ip-restriction through the real proxy (Kong's spec/03-plugins/17-ip-restriction/01-schema_spec.lua and
02-access_spec.lua): clients on 127.0.0.1 / 127.0.0.2 (the test binds its source address) and on ::1 (the
proxy also listens on [::1]); deny before allow, CIDRs, status/message, config changes without restart,
and the schema's field errors. Kong's X-Forwarded-For / X-Real-IP cases need trusted_ips (realip), which
this gateway does not implement: the address checked is the connection's peer."""
import http.client
import json

import pytest

from conftest import TIMEOUT, add_route, free_port, wait_until


def request(port, path, source="127.0.0.1", host="127.0.0.1", headers=None):
    c = http.client.HTTPConnection(host, port, timeout=TIMEOUT, source_address=(source, 0))
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read(), dict(r.getheaders())
    finally:
        c.close()


def plugin(g, path, config):
    rid = next(r["id"] for r in g.admin("GET", "/routes")[1]["data"] if r["paths"] == [path])
    s, b, _ = g.admin("POST", f"/routes/{rid}/plugins", {"name": "ip-restriction", "config": config})
    assert s == 201, b
    return b


def blocked(port, path, source="127.0.0.1", host="127.0.0.1", status=403, message=None):
    s, body, h = request(port, path, source, host)
    assert s == status, (path, source, s, body)
    assert h["Content-Type"].startswith("application/json")
    ip = source
    assert json.loads(body)["message"] == (message or f"IP address not allowed: {ip}"), body


def allowed(port, path, source="127.0.0.1", host="127.0.0.1"):
    s, body, _ = request(port, path, source, host)
    assert s == 200, (path, source, s, body)
    return json.loads(body)


CONFIGS = {
    "/ip1": {"deny": ["127.0.0.1", "127.0.0.2"]},
    "/ip2": {"deny": ["127.0.0.2"]},
    "/ip3": {"allow": ["127.0.0.2"]},
    "/ip4": {"allow": ["127.0.0.1"]},
    "/ip5": {"deny": ["127.0.0.0/24"]},
    "/ip6": {"allow": ["127.0.0.4"]},
    "/ip7": {"deny": ["127.0.0.4"]},
    "/ip8": {"allow": ["0.0.0.0/0"]},
    "/ip9": {"allow": ["127.0.0.1"], "deny": ["127.0.0.1"]},
    "/ip10": {"allow": ["127.0.0.0/24"], "deny": ["127.0.0.1"]},
    "/ip11": {"allow": ["127.0.0.0/24"], "deny": ["127.0.0.0/24"]},
    "/ip12": {"deny": ["127.0.0.0/24"], "status": 401, "message": "Forbidden"},
    "/ip13": {"allow": ["10.0.0.0/8", "127.0.0.2/31", "192.168.0.0/16"]},   # 127.0.0.2-3
    "/v6a": {"deny": ["::1"]},
    "/v6b": {"deny": ["::2"]},
    "/v6c": {"deny": ["::/64"]},
    "/v6d": {"allow": ["::1/128"], "deny": ["::1"]},
    "/v6e": {"allow": ["fe80::/10", "::1"]},
    "/v6f": {"allow": ["127.0.0.1"]},          # an IPv4 list never matches an IPv6 client
    "/v6g": {"deny": ["::/0"], "status": 451},
}


@pytest.fixture
def gw(gateway, upstream):
    port6 = free_port()
    g = gateway(workers=2, start=False)
    g.write_conf(proxy_listen=f"127.0.0.1:{g.proxy_port}, [::1]:{port6}")
    g.start()
    g.port6 = port6
    up = upstream("u")
    for path in CONFIGS:
        add_route(g, up, path)
    for path, cfg in CONFIGS.items():
        plugin(g, path, cfg)
    # The last plugin has reached the workers when its route answers as configured.
    wait_until(lambda: request(g.port6, "/v6g", "::1", "::1")[0] == 451, what="plugins propagated")
    return g


def test_ipv4_allow_and_deny(gw):
    p = gw.proxy_port
    blocked(p, "/ip1")
    blocked(p, "/ip1", source="127.0.0.2")
    allowed(p, "/ip2")
    blocked(p, "/ip2", source="127.0.0.2")
    blocked(p, "/ip3")
    allowed(p, "/ip3", source="127.0.0.2")
    allowed(p, "/ip4")
    blocked(p, "/ip5")                 # CIDR
    blocked(p, "/ip5", source="127.0.0.9")
    blocked(p, "/ip6")
    allowed(p, "/ip7")
    allowed(p, "/ip8")                 # 0.0.0.0/0
    allowed(p, "/ip8", source="127.0.0.2")
    blocked(p, "/ip9")                 # deny takes precedence over an allowed IP
    blocked(p, "/ip10")                # ... over an allowed CIDR range
    allowed(p, "/ip10", source="127.0.0.2")
    blocked(p, "/ip11")
    blocked(p, "/ip12", status=401, message="Forbidden")
    blocked(p, "/ip13")
    allowed(p, "/ip13", source="127.0.0.2")
    allowed(p, "/ip13", source="127.0.0.3")
    blocked(p, "/ip13", source="127.0.0.4")


def test_ipv6_allow_and_deny(gw):
    p = gw.port6
    blocked(p, "/v6a", "::1", "::1")
    allowed(p, "/v6b", "::1", "::1")
    blocked(p, "/v6c", "::1", "::1")
    blocked(p, "/v6d", "::1", "::1")
    allowed(p, "/v6e", "::1", "::1")
    blocked(p, "/v6f", "::1", "::1")
    blocked(p, "/v6g", "::1", "::1", status=451, message="IP address not allowed: ::1")
    # The IPv4 listener sees IPv4 clients: the IPv6 lists do not match them.
    allowed(gw.proxy_port, "/v6a")
    allowed(gw.proxy_port, "/v6g")


def test_blocked_request_never_reaches_upstream_and_keeps_connection(gw):
    c = http.client.HTTPConnection("127.0.0.1", gw.proxy_port, timeout=TIMEOUT)
    for path, want in (("/ip1", 403), ("/ip2", 200), ("/ip12", 401), ("/ip4", 200), ("/ip1", 403)):
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        assert r.status == want, (path, r.status)
    c.close()


def test_config_changes_without_restart(gateway, upstream):
    g = gateway(workers=2)
    up = upstream("u")
    add_route(g, up, "/chg")
    allowed(g.proxy_port, "/chg")
    p = plugin(g, "/chg", {"deny": ["127.0.0.2", "127.0.0.3"]})
    allowed(g.proxy_port, "/chg")
    s, b, _ = g.admin("PATCH", f"/plugins/{p['id']}", {"config": {"deny": ["127.0.0.1", "127.0.0.2"]}})
    assert s == 200, b
    wait_until(lambda: request(g.proxy_port, "/chg")[0] == 403, what="deny list updated")
    blocked(g.proxy_port, "/chg")
    s, b, _ = g.admin("PATCH", f"/plugins/{p['id']}", {"config": {"deny": ["127.0.0.2", "127.0.0.3"]}})
    assert s == 200, b
    wait_until(lambda: request(g.proxy_port, "/chg")[0] == 200, what="deny list updated back")


def test_out_of_range_status_is_a_handler_error(gateway, upstream):
    # Kong's kong.response.error accepts 400-599 only: another status makes the handler fail (500).
    g = gateway(workers=1)
    up = upstream("u")
    add_route(g, up, "/odd")
    plugin(g, "/odd", {"deny": ["127.0.0.1"], "status": 200})
    wait_until(lambda: request(g.proxy_port, "/odd")[0] == 500, what="plugin active")
    s, body, _ = request(g.proxy_port, "/odd")
    assert json.loads(body)["message"] == "An unexpected error occurred"
    assert up.hits == 0 or all(r["path"] != "/odd" for r in up.requests[-1:])


def refused(g, config):
    s, b, _ = g.admin("POST", "/plugins", {"name": "ip-restriction", "config": config})
    assert s == 400, (config, s, b)
    assert b["name"] == "schema violation", b
    return b["fields"]


def test_schema_errors(gateway):
    g = gateway(workers=1)
    assert refused(g, {"allow": 12})["config"] == {"allow": "expected an array"}
    assert refused(g, {"deny": 12})["config"] == {"deny": "expected an array"}
    assert refused(g, {"allow": ["hello"]})["config"] == {"allow": ["invalid ip or cidr range: 'hello'"]}
    assert refused(g, {"deny": ["hello"]})["config"] == {"deny": ["invalid ip or cidr range: 'hello'"]}
    f = refused(g, {"allow": ["127.0.0.1/32", "127.0.0.2/32", "hello"]})
    # cjson encodes Kong's sparse { [3] = msg } as an array with nulls before it.
    assert f["config"]["allow"] == [None, None, "invalid ip or cidr range: 'hello'"], f
    bad4 = ["0.0.0.0/a", "0.0.0.0/-1", "0.0.0.0/33"]
    assert refused(g, {"allow": bad4})["config"]["allow"] == [f"invalid ip or cidr range: '{x}'" for x in bad4]
    bad6 = ["::/a", "::/-1", "::/129", "::1/a", "::1/-1", "::1/129"]
    assert refused(g, {"allow": bad6})["config"]["allow"] == [f"invalid ip or cidr range: '{x}'" for x in bad6]
    for cfg in ({}, {"allow": [], "deny": []}):
        assert refused(g, cfg)["@entity"] == ["at least one of these fields must be non-empty: 'config.allow', 'config.deny'"]
    assert "status" in refused(g, {"allow": ["127.0.0.1"], "status": "x"})["config"]
    assert "message" in refused(g, {"allow": ["127.0.0.1"], "message": 5})["config"]
    assert g.admin("GET", "/plugins")[1]["data"] == []
    for ok in ({"allow": ["::/0", "::/1", "::/128"]}, {"allow": ["127.0.0.1/8"]},
               {"deny": ["127.0.0.1/32", "127.0.0.2/32"], "status": 403, "message": "Forbidden"},
               {"allow": ["::ffff:127.0.0.1", "2001:db8::/32", "fe80::1:2:3:4"]}):
        s, b, _ = g.admin("POST", "/plugins", {"name": "ip-restriction", "config": ok})
        assert s == 201, (ok, b)
        assert g.admin("DELETE", f"/plugins/{b['id']}")[0] == 204


def test_x_forwarded_for_with_trusted_ips(gateway, upstream):
    # Kong's "X-Forwarded-For" cases: trusted_ips 0.0.0.0/0, ::/0, real_ip_header X-Forwarded-For,
    # real_ip_recursive on: the address checked is realip's.
    g = gateway(workers=2, trusted_ips="0.0.0.0/0, ::/0", real_ip_header="X-Forwarded-For", real_ip_recursive="on")
    up = upstream("u")
    add_route(g, up, "/xff6")
    add_route(g, up, "/xff7")
    plugin(g, "/xff6", {"allow": ["127.0.0.4"]})
    plugin(g, "/xff7", {"deny": ["127.0.0.4"]})
    wait_until(lambda: request(g.proxy_port, "/xff6")[0] == 403, what="plugins active")

    def xff(path, value):
        return request(g.proxy_port, path, headers={"X-Forwarded-For": value} if value else None)

    assert xff("/xff7", None)[0] == 200
    assert xff("/xff7", "127.0.0.3")[0] == 200
    s, body, _ = xff("/xff7", "127.0.0.4")
    assert s == 403 and json.loads(body)["message"] == "IP address not allowed: 127.0.0.4", body
    assert xff("/xff6", None)[0] == 403
    assert xff("/xff6", "127.0.0.3")[0] == 403
    assert xff("/xff6", "127.0.0.4")[0] == 200
    assert xff("/xff6", "127.0.0.4, 127.0.0.3")[0] == 200
    # On one keep-alive connection the address follows each request's header.
    c = http.client.HTTPConnection("127.0.0.1", g.proxy_port, timeout=TIMEOUT)
    for value, want in (("127.0.0.4", 200), ("127.0.0.9", 403), (None, 403), ("127.0.0.4", 200)):
        c.request("GET", "/xff6", headers={"X-Forwarded-For": value} if value else {})
        r = c.getresponse()
        r.read()
        assert r.status == want, (value, r.status)
    c.close()
