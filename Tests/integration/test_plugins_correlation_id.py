"""correlation-id through the real proxy (Kong's spec/03-plugins/11-correlation-id/01-access_spec.lua and
02-schema_spec.lua): what the upstream receives (echo upstream) and what the client receives, for the three
generators, echo_downstream (on proxied responses, on the gateway's own 502 and 404, and when access did
not run), an incoming id kept, an empty one replaced, and schema errors."""
import http.client
import json
import re

from conftest import TIMEOUT, add_route, refused_port, wait_until

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
TRACKER = r"(\d+\.\d+\.\d+\.\d+)-(\d+)-(\d+)-(\d+)-(\d+)-(\d{10}\.\d{3})"


def plugin(g, config=None, path=None):
    body = {"name": "correlation-id", "config": config or {}}
    url = "/plugins"
    if path:
        rid = next(r["id"] for r in g.admin("GET", "/routes")[1]["data"] if r["paths"] == [path])
        url = f"/routes/{rid}/plugins"
    s, b, _ = g.admin("POST", url, body)
    assert s == 201, b
    return b


def upstream_header(g, path, name="Kong-Request-ID", headers=None):
    s, body, h = g.get(path, headers=headers)
    assert s == 200, (path, s, body)
    seen = {k.lower(): v for k, v in json.loads(body)["headers"].items()}
    return seen.get(name.lower()), h


def test_generators_and_incoming_ids(gateway, upstream):
    g = gateway(workers=1)
    up = upstream("u")
    for p in ("/counter", "/uuid", "/tracker", "/custom", "/plain"):
        add_route(g, up, p)
    plugin(g, {}, "/counter")                                   # default generator uuid#counter
    plugin(g, {"generator": "uuid"}, "/uuid")
    plugin(g, {"generator": "tracker"}, "/tracker")
    plugin(g, {"header_name": "Foo-Bar-Id"}, "/custom")
    wait_until(lambda: upstream_header(g, "/custom", "Foo-Bar-Id")[0] is not None, what="plugins active")

    # uuid#counter: the worker's uuid, '#', a counter that increments per generated id.
    id1, h1 = upstream_header(g, "/counter")
    id2, _ = upstream_header(g, "/counter")
    m1, m2 = re.fullmatch(f"({UUID})#(\\d+)", id1), re.fullmatch(f"({UUID})#(\\d+)", id2)
    assert m1 and m2, (id1, id2)
    assert m1.group(1) == m2.group(1)
    assert int(m2.group(2)) == int(m1.group(2)) + 1
    assert "Kong-Request-ID" not in h1          # no echo_downstream: nothing sent to the client
    # The counter is per worker, shared by the instances: /custom uses the same uuid.
    idc, _ = upstream_header(g, "/custom", "Foo-Bar-Id")
    assert idc.startswith(m1.group(1) + "#") and int(idc.split("#")[1]) == int(m1.group(2)) + 2
    assert upstream_header(g, "/custom", "Kong-Request-ID")[0] is None

    # uuid: a fresh v4 uuid per request.
    ids = {upstream_header(g, "/uuid")[0] for _ in range(5)}
    assert len(ids) == 5 and all(re.fullmatch(UUID, i) for i in ids), ids

    # tracker: server_addr-server_port-pid-connection-connection_requests-now.
    c = http.client.HTTPConnection("127.0.0.1", g.proxy_port, timeout=TIMEOUT)
    got = []
    for _ in range(3):
        c.request("GET", "/tracker")
        r = c.getresponse()
        got.append(json.loads(r.read())["headers"]["Kong-Request-ID"])
    c.close()
    ms = [re.fullmatch(TRACKER, t) for t in got]
    assert all(ms), got
    assert len(set(got)) == 3
    worker = g.worker_pids()[0]
    for m in ms:
        assert m.group(1) == "127.0.0.1" and int(m.group(2)) == g.proxy_port and int(m.group(3)) == worker
    assert len({m.group(4) for m in ms}) == 1          # one keep-alive connection
    assert [int(m.group(5)) for m in ms] == [1, 2, 3]

    # An incoming non-empty id is kept; an empty (or blank) one is replaced.
    assert upstream_header(g, "/counter", headers={"Kong-Request-ID": "foobar"})[0] == "foobar"
    assert upstream_header(g, "/counter", headers={"kong-request-id": "foobar"})[0] == "foobar"
    for blank in ("", " "):
        v = upstream_header(g, "/counter", headers={"Kong-Request-ID": blank})[0]
        assert re.fullmatch(f"{UUID}#\\d+", v), (blank, v)


def test_echo_downstream(gateway, upstream):
    g = gateway(workers=2)
    up = upstream("u")
    add_route(g, up, "/echo")
    add_route(g, up, "/noecho")
    plugin(g, {"generator": "uuid", "echo_downstream": True}, "/echo")
    plugin(g, {"generator": "uuid"}, "/noecho")
    s, b, _ = g.admin("POST", "/services", {"name": "dead", "url": f"http://127.0.0.1:{refused_port()}"})
    assert s == 201, b
    s, b, _ = g.admin("POST", "/services/dead/routes", {"paths": ["/dead"]})
    assert s == 201, b
    s, b, _ = g.admin("POST", f"/routes/{b['id']}/plugins",
                      {"name": "correlation-id", "config": {"generator": "uuid", "echo_downstream": True}})
    assert s == 201, b
    wait_until(lambda: "Kong-Request-ID" in g.get("/dead")[2], what="plugin on /dead")

    up_id, h = upstream_header(g, "/echo")
    assert re.fullmatch(UUID, up_id) and h["Kong-Request-ID"] == up_id
    up_id, h = upstream_header(g, "/echo", headers={"Kong-Request-ID": "mine"})
    assert up_id == "mine" and h["Kong-Request-ID"] == "mine"
    _, h = upstream_header(g, "/noecho")
    assert "Kong-Request-ID" not in h
    # The gateway's own error (upstream unreachable) carries it too.
    s, body, h = g.get("/dead")
    assert s == 502, (s, body)
    assert re.fullmatch(UUID, h["Kong-Request-ID"]), h


def test_echo_when_access_did_not_run(gateway, upstream):
    # A global instance and a request no route matches: access never ran, header_filter still echoes
    # the incoming id or a new one.
    g = gateway(workers=1)
    up = upstream("u")
    add_route(g, up, "/r")
    plugin(g, {"generator": "uuid", "echo_downstream": True})
    wait_until(lambda: "Kong-Request-ID" in g.get("/r")[2], what="global plugin active")
    s, body, h = g.get("/no-such-route")
    assert s == 404, (s, body)
    assert re.fullmatch(UUID, h["Kong-Request-ID"]), h
    s, body, h = g.get("/no-such-route", headers={"Kong-Request-ID": "my very personal id"})
    assert s == 404 and h["Kong-Request-ID"] == "my very personal id", h


def test_schema(gateway):
    g = gateway(workers=1)
    s, b, _ = g.admin("POST", "/plugins", {"name": "correlation-id"})
    assert s == 201, b
    assert b["config"] == {"header_name": "Kong-Request-ID", "generator": "uuid#counter", "echo_downstream": False}
    assert g.admin("DELETE", f"/plugins/{b['id']}")[0] == 204

    def refused(config):
        s, b, _ = g.admin("POST", "/plugins", {"name": "correlation-id", "config": config})
        assert s == 400, (config, s, b)
        return b["fields"]["config"]

    assert refused({"generator": "bogus"}) == {"generator": "expected one of: uuid, uuid#counter, tracker"}
    assert refused({"generator": None}) == {"generator": "required field missing"}
    assert refused({"echo_downstream": "yes"}) == {"echo_downstream": "expected a boolean"}
    assert "header_name" in refused({"header_name": "bad name"})
    assert "header_name" in refused({"header_name": 12})
    assert g.admin("GET", "/plugins")[1]["data"] == []
