"""Issue "Kong-compatible Admin API" over HTTP against the real binary (KONG.md §2, §6.4)."""
import json
import os
import re
import signal
import time

from conftest import Load, add_route, wait_until
import urllib.error
import urllib.request


def raw(g, method, path, data, ctype):
    req = urllib.request.Request(f"http://127.0.0.1:{g.admin_port}{path}", data=data, method=method,
                                 headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def test_services_crud_status_codes_and_errors(gateway):
    g = gateway(workers=1)
    st, body, hdrs = g.admin("POST", "/services", {"name": "svc1", "host": "127.0.0.1", "port": 9})
    assert st == 201, body
    assert hdrs["Content-Type"].startswith("application/json")
    sid = body["id"]
    assert body["protocol"] == "http" and body["retries"] == 5 and body["path"] is None
    assert g.admin("GET", "/services/svc1")[1]["id"] == sid
    assert g.admin("GET", f"/services/{sid}")[1]["name"] == "svc1"
    st, body, _ = g.admin("PATCH", "/services/svc1", {"port": 10})
    assert st == 200 and body["port"] == 10 and body["host"] == "127.0.0.1"
    st, body, _ = g.admin("PUT", "/services/svc1", {"host": "example.test"})
    assert st == 200 and body["id"] == sid and body["port"] == 80, body   # PUT = full replacement
    # 400 schema violation
    st, body, _ = g.admin("POST", "/services", {"name": "nohost"})
    assert st == 400
    assert body == {"code": 2, "name": "schema violation",
                    "message": "schema violation (host: required field missing)",
                    "fields": {"host": "required field missing"}}, body
    st, body, _ = g.admin("POST", "/services", {"host": "x.test", "port": "abc", "retries": -1})
    assert st == 400 and body["code"] == 2 and body["message"].startswith("2 schema violations"), body
    assert set(body["fields"]) == {"port", "retries"}
    # 409 unique
    st, body, _ = g.admin("POST", "/services", {"name": "svc1", "host": "x.test"})
    assert st == 409
    assert body == {"code": 5, "name": "unique constraint violation",
                    "message": "UNIQUE violation detected on '{name=\"svc1\"}'",
                    "fields": {"name": "svc1"}}, body
    # 404s
    st, body, _ = g.admin("GET", "/services/nope")
    assert st == 404 and body == {"message": "Not found"}
    st, body, _ = g.admin("PATCH", "/services/nope", {"port": 1})
    assert st == 404 and body["code"] == 6, body
    assert g.admin("GET", "/nothing-here")[0] == 404
    # Malformed JSON
    st, body = raw(g, "POST", "/services", b"{not json", "application/json")
    assert st == 400 and body == {"message": "Cannot parse JSON body"}, body
    # 405
    st, body, _ = g.admin("DELETE", "/services")
    assert st == 405 and body == {"message": "Method not allowed"}
    # Routes referencing it restrict delete; the route goes first, then the service.
    st, body, _ = g.admin("POST", "/services/svc1/routes", {"name": "r1", "paths": ["/x"]})
    assert st == 201 and body["service"] == {"id": sid}
    st, body, _ = g.admin("DELETE", "/services/svc1")
    assert st == 400 and body["code"] == 4, body
    assert g.admin("DELETE", "/routes/r1")[0] == 204
    assert g.admin("DELETE", "/services/svc1")[0] == 204
    assert g.admin("DELETE", "/services/svc1")[0] == 204       # also when absent
    assert g.admin("GET", "/services/svc1")[0] == 404


def test_routes_form_encoded_and_proxied(gateway, upstream):
    u = upstream("m")
    g = gateway(workers=1)
    st, svc, _ = g.admin("POST", "/services", form={"name": "ms", "url": f"http://{u.address}"})
    assert st == 201, svc
    assert svc["host"] == "127.0.0.1" and svc["port"] == u.port
    st, route, _ = g.admin("POST", "/routes", form={"name": "mr", "paths[]": ["/mock", "/mock2"],
                                                     "service.id": svc["id"], "strip_path": "false"})
    assert st == 201, route
    assert route["paths"] == ["/mock", "/mock2"] and route["strip_path"] is False
    assert route["service"] == {"id": svc["id"]}
    g.wait_route("/mock")
    st, body, _ = g.get("/mock/abc")
    assert st == 200 and json.loads(body)["path"] == "/mock/abc"
    st, body, _ = g.admin("PATCH", "/routes/mr", form={"paths[]": "/other"})
    assert st == 200 and body["paths"] == ["/other"]
    g.wait_route("/mock", expect=404)
    g.wait_route("/other")
    st, body, _ = g.admin("GET", f"/routes/mr/service")
    assert st == 200 and body["name"] == "ms"
    st, body, _ = g.admin("GET", "/services/ms/routes")
    assert [r["name"] for r in body["data"]] == ["mr"]
    st, body, _ = g.admin("POST", "/routes", {"name": "bad", "protocols": ["http"]})
    assert st == 400 and body["code"] == 2 and "@entity" in body["fields"], body


def test_upstreams_targets_crud(gateway):
    g = gateway(workers=1)
    st, up, _ = g.admin("POST", "/upstreams", {"name": "u1.test"})
    assert st == 201, up
    assert up["algorithm"] == "round-robin" and up["slots"] == 10000 and up["hash_on"] == "none"
    hc = up["healthchecks"]
    assert hc["threshold"] == 0 and hc["active"]["healthy"]["interval"] == 0
    assert hc["passive"]["unhealthy"]["http_statuses"] == [429, 500, 503]
    st, body, _ = g.admin("POST", "/upstreams", {"name": "u1.test"})
    assert st == 409 and body["code"] == 5
    st, body, _ = g.admin("POST", "/upstreams", {"name": "1.2.3.4"})
    assert st == 400 and "no ip addresses allowed" in body["message"], body
    st, body, _ = g.admin("POST", "/upstreams", {"name": "bad", "slots": 5})
    assert st == 400 and "slots" in body["fields"], body
    st, up2, _ = g.admin("PATCH", "/upstreams/u1.test", {"healthchecks": {"active": {"healthy": {"interval": 5}}}})
    assert st == 200 and up2["healthchecks"]["active"]["healthy"]["interval"] == 5
    assert up2["healthchecks"]["active"]["timeout"] == 1      # records deep-merged
    st, t1, _ = g.admin("POST", "/upstreams/u1.test/targets", {"target": "127.0.0.1:9001", "weight": 50})
    assert st == 201 and t1["upstream"] == {"id": up["id"]} and t1["weight"] == 50
    st, t2, _ = g.admin("POST", "/upstreams/u1.test/targets", form={"target": "127.0.0.1:9002"})
    assert st == 201 and t2["weight"] == 100
    st, body, _ = g.admin("POST", "/upstreams/u1.test/targets", {"target": "127.0.0.1:9003", "weight": 70000})
    assert st == 400 and body["fields"] == {"weight": "value should be between 0 and 65535"}, body
    st, body, _ = g.admin("GET", "/upstreams/u1.test/targets")
    assert [t["target"] for t in body["data"]] == ["127.0.0.1:9002", "127.0.0.1:9001"]   # newest first
    st, body, _ = g.admin("PATCH", "/upstreams/u1.test/targets/127.0.0.1:9001", {"weight": 7})
    assert st == 200 and body["weight"] == 7
    assert g.admin("GET", f"/upstreams/u1.test/targets/{t1['id']}")[1]["weight"] == 7
    assert g.admin("GET", "/targets")[0] == 404
    assert g.admin("PUT", "/upstreams/u1.test/targets", {"target": "x"})[0] == 405
    assert g.admin("DELETE", "/upstreams/u1.test/targets/127.0.0.1:9002")[0] == 204
    assert len(g.admin("GET", "/upstreams/u1.test/targets")[1]["data"]) == 1
    assert g.admin("DELETE", "/upstreams/u1.test")[0] == 204       # cascades targets
    assert g.admin("GET", "/upstreams/u1.test")[0] == 404
    assert g.admin("GET", "/upstreams/u1.test/targets")[0] == 404
    assert g.admin("GET", f"/upstreams/{up['id']}/targets/{t1['id']}")[0] == 404


def test_pagination(gateway):
    g = gateway(workers=1)
    for i in range(7):
        assert g.admin("POST", "/services", {"name": f"p{i}", "host": "h.test"})[0] == 201
    st, body, _ = g.admin("GET", "/services?size=3")
    assert st == 200 and len(body["data"]) == 3 and body["offset"] and body["next"].startswith("/services?offset=")
    names = [s["name"] for s in body["data"]]
    nxt = body["next"]
    pages = 1
    while nxt:
        st, body, _ = g.admin("GET", nxt)
        assert st == 200
        names += [s["name"] for s in body["data"]]
        nxt = body["next"]
        pages += 1
    assert pages == 3 and "offset" not in body and body["next"] is None
    assert sorted(names) == [f"p{i}" for i in range(7)]
    st, body, _ = g.admin("GET", "/services")
    assert len(body["data"]) == 7 and body["next"] is None
    st, body, _ = g.admin("GET", "/services?size=abc")
    assert st == 400 and body["code"] == 9, body
    st, body, _ = g.admin("GET", "/services?size=1001")
    assert st == 400 and body["message"] == "size must be an integer between 1 and 1000", body
    st, body, _ = g.admin("GET", "/services?offset=!!!")
    assert st == 400 and body["code"] == 7, body
    assert g.admin("GET", "/routes")[1] == {"data": [], "next": None}


def test_persistence_across_stop_start(gateway):
    g = gateway(workers=1)
    assert g.admin("POST", "/services", {"name": "keep", "host": "k.test"})[0] == 201
    assert g.admin("POST", "/upstreams", {"name": "keep_up"})[0] == 201
    assert g.admin("POST", "/upstreams/keep_up/targets", {"target": "127.0.0.1:9"})[0] == 201
    assert g.stop().returncode == 0
    g.start()
    assert g.admin("GET", "/services/keep")[0] == 200
    assert g.admin("GET", "/upstreams/keep_up/targets")[1]["data"][0]["target"] == "127.0.0.1:9"


def test_durable_after_kill_9(gateway, upstream):
    u = upstream("d")
    g = gateway(workers=2)
    workers = g.worker_pids()
    st, body, _ = g.admin("POST", "/services", {"name": "durable", "url": f"http://{u.address}"})
    assert st == 201
    assert g.admin("POST", "/services/durable/routes", {"paths": ["/d"]})[0] == 201
    os.kill(g.master_pid(), signal.SIGKILL)
    # Workers notice the master's death (channel EOF) and exit by themselves.
    def gone(pid):
        try:
            os.kill(pid, 0)
            return False
        except ProcessLookupError:
            return True
    wait_until(lambda: all(gone(p) for p in workers), what="workers exit after master kill -9")
    g.start()
    st, body, _ = g.admin("GET", "/services/durable")
    assert st == 200 and body["port"] == u.port
    g.wait_route("/d")


def test_propagation_route_served_by_every_worker_right_after_201(gateway, upstream):
    u = upstream("p")
    g = gateway(workers=2)
    assert g.admin("POST", "/services", {"name": "ps", "url": f"http://{u.address}"})[0] == 201
    g.wait_route("/", expect=404)
    for i in range(5):
        st, body, _ = g.admin("POST", "/services/ps/routes", {"paths": [f"/prop{i}"]})
        assert st == 201
        statuses = [g.get(f"/prop{i}")[0] for _ in range(50)]
        assert statuses == [200] * 50, {s: statuses.count(s) for s in set(statuses)}


def test_propagation_by_deltas_update_delete_and_late_workers(gateway, upstream):
    """Changes reach workers as deltas (run/config.delta.N.json); updates and deletes apply at the next
    request; a worker started later (SIGKILL respawn, reload) catches up from the full document plus the
    deltas after it; the master writes a new full document some seconds later and drops deltas no longer needed."""
    u = upstream("d")
    g = gateway(workers=2)
    run = os.path.join(g.prefix, "run")
    assert g.admin("POST", "/services", {"name": "ds", "url": f"http://{u.address}"})[0] == 201
    st, r1, _ = g.admin("POST", "/services/ds/routes", {"name": "r1", "paths": ["/one"]})
    assert st == 201
    assert [g.get("/one")[0] for _ in range(20)] == [200] * 20
    deltas = [n for n in os.listdir(run) if n.startswith("config.delta.")]
    assert deltas, os.listdir(run)
    # update in place: the old path stops matching and the new one matches at once, on every worker
    assert g.admin("PATCH", "/routes/r1", {"paths": ["/uno"]})[0] == 200
    assert [g.get("/uno")[0] for _ in range(20)] == [200] * 20
    assert [g.get("/one")[0] for _ in range(20)] == [404] * 20
    # delete
    assert g.admin("POST", "/services/ds/routes", {"name": "r2", "paths": ["/two"]})[0] == 201
    assert g.admin("DELETE", "/routes/r1")[0] == 204
    assert [g.get("/uno")[0] for _ in range(20)] == [404] * 20
    assert [g.get("/two")[0] for _ in range(20)] == [200] * 20
    # a worker killed right after more changes (before any new full document): its replacement reads
    # the full document and every delta after it
    before = set(g.worker_pids())
    for i in range(3):
        assert g.admin("POST", "/services/ds/routes", {"paths": [f"/late{i}"]})[0] == 201
    os.kill(g.worker_pids()[0], signal.SIGKILL)
    wait_until(lambda: len(set(g.worker_pids()) - before) == 1 and len(g.worker_pids()) == 2, what="respawn")
    for i in range(3):
        assert [g.get(f"/late{i}")[0] for _ in range(20)] == [200] * 20
    assert [g.get("/uno")[0] for _ in range(10)] == [404] * 10
    # the full document catches up with the last generation; older deltas are removed
    gen = g.admin("GET", "/status")[1]["server"]["config_generation"]

    def full_generation():
        with open(os.path.join(run, "config.json")) as f:
            return json.load(f)["generation"]
    wait_until(lambda: full_generation() == gen, timeout=20, what="full document of the last generation")
    assert g.admin("POST", "/services/ds/routes", {"paths": ["/after"]})[0] == 201
    wait_until(lambda: full_generation() == gen + 1, timeout=20, what="second full document")

    def old_deltas():
        return [n for n in os.listdir(run) if n.startswith("config.delta.") and int(n.split(".")[2]) <= gen]
    # removed right after the new full document is renamed into place
    wait_until(lambda: not old_deltas(), what="deltas up to the previous full document removed")
    # reload: new workers start from the full document (+ deltas) and serve everything
    old = set(g.worker_pids())
    assert g.admin("POST", "/services/ds/routes", {"paths": ["/final"]})[0] == 201
    g.cli("reload", "-c", g.conf, "-p", g.prefix, check=True)
    wait_until(lambda: len(g.worker_pids()) == 2 and not (set(g.worker_pids()) & old), what="new workers")
    for p in ["/two", "/late0", "/after", "/final"]:
        assert [g.get(p)[0] for _ in range(10)] == [200] * 10, p
    log = g.log()
    assert " rejected:" not in log and "not reachable" not in log, log


def test_delta_chain_is_bounded(gateway, upstream):
    """A full document is written at the latest when 500 deltas piled up (or 5 s after the first delta since
    the last one, whichever comes first: on a loaded machine the timer may win), so a worker started later
    never has more than 500 deltas to apply; every route is served. Checked after every write, whatever
    the machine's speed: the newest delta is never more than 500 generations past the full document."""
    u = upstream("c")
    g = gateway(workers=1)
    run = os.path.join(g.prefix, "run")
    assert g.admin("POST", "/services", {"name": "cs", "url": f"http://{u.address}"})[0] == 201

    def full_generation():
        with open(os.path.join(run, "config.json"), "rb") as f:
            m = re.search(rb'"generation"\s*:\s*(\d+)', f.read(4096))
        return int(m.group(1))

    def newest_delta():
        gens = [int(n.split(".")[2]) for n in os.listdir(run) if n.startswith("config.delta.")]
        return max(gens, default=0)

    fulls = set()
    for i in range(510):
        assert g.admin("POST", "/services/cs/routes", {"paths": [f"/c{i}"]})[0] == 201
        full = full_generation()
        fulls.add(full)
        # written on the loop iteration after the 500th delta, so before the next POST is answered
        assert newest_delta() - full <= 500, (newest_delta(), full)
    assert len(fulls) >= 2, "no full document was written after the start"
    assert g.get("/c509")[0] == 200 and g.get("/c0")[0] == 200


def test_admin_and_proxy_do_not_wait_on_each_other(gateway, upstream):
    """Admin writes are answered and applied while the workers are kept busy by proxy traffic; and with
    the master stopped (SIGSTOP: no Admin API, no publisher) the workers keep proxying."""
    u = upstream("busy")
    g = gateway(workers=2)
    add_route(g, u, "/busy")
    with Load(g.proxy_port, "/busy", fresh=3, keepalive=3) as load:
        for i in range(30):
            st, body, _ = g.admin("POST", "/services/svcbusy/routes", {"paths": [f"/w{i}"]})
            assert st == 201, body
            assert g.get(f"/w{i}")[0] == 200
        master = g.master_pid()
        os.kill(master, signal.SIGSTOP)
        try:
            statuses = [g.get(f"/w{i % 30}")[0] for i in range(60)]
        finally:
            os.kill(master, signal.SIGCONT)
    assert statuses == [200] * 60
    assert load.failed == 0 and load.ok > 0, load.summary()
    assert g.admin("GET", "/status")[0] == 200


KONG_YML = """_format_version: "3.0"
services:
- name: decl-svc
  url: http://{addr}
  routes:
  - name: decl-route
    paths: ["/decl"]
upstreams:
- name: decl_up
  targets:
  - target: {addr}
    weight: 100
"""


def test_dbless_declarative_start(gateway, upstream, tmp_path):
    u = upstream("y")
    f = tmp_path / "kong.yml"
    f.write_text(KONG_YML.format(addr=u.address))
    g = gateway(workers=2, database="off", declarative_config=str(f))
    g.wait_route("/decl")
    st, body, _ = g.get("/decl")
    assert json.loads(body)["upstream"] == "y"
    assert g.admin("GET", "/routes/decl-route")[1]["paths"] == ["/decl"]
    st, body, _ = g.admin("POST", "/services", {"name": "x", "host": "x.test"})
    assert st == 405 and body["code"] == 12, body
    st, body, _ = g.admin("GET", "/upstreams/decl_up/targets")
    assert body["data"][0]["target"] == u.address


def test_config_db_import_export_round_trip(gateway, upstream, tmp_path):
    u = upstream("i")
    src = tmp_path / "in.yml"
    src.write_text(KONG_YML.format(addr=u.address))
    g = gateway(workers=1, start=False)
    r = g.cli("config", "db_import", str(src), "-c", g.conf, "-p", g.prefix)
    assert r.returncode == 0, r.stdout + r.stderr
    out = tmp_path / "out.yml"
    r = g.cli("config", "db_export", str(out), "-c", g.conf, "-p", g.prefix)
    assert r.returncode == 0, r.stdout + r.stderr
    text = out.read_text()
    assert "_format_version" in text and "decl-svc" in text and "decl-route" in text and u.address in text
    assert g.cli("config", "parse", str(out)).returncode == 0
    # The exported file imports into a fresh prefix and serves the same route.
    g2 = gateway(workers=1, start=False)
    r = g2.cli("config", "db_import", str(out), "-c", g2.conf, "-p", g2.prefix)
    assert r.returncode == 0, r.stdout + r.stderr
    g2.start()
    g2.wait_route("/decl")
    assert json.loads(g2.get("/decl")[1])["upstream"] == "i"
    st, body, _ = g2.admin("GET", "/upstreams/decl_up/targets")
    assert body["data"][0]["target"] == u.address
    # db_import/db_export refuse database = off.
    g3 = gateway(workers=1, start=False, database="off")
    r = g3.cli("config", "db_export", str(tmp_path / "x.yml"), "-c", g3.conf, "-p", g3.prefix)
    assert r.returncode != 0


def test_dbless_post_config_propagates_and_keeps_health(gateway, upstream):
    a, b = upstream("a"), upstream("b")
    g = gateway(workers=2, database="off")
    cfg = {"_format_version": "3.0",
           "services": [{"name": "s", "host": "up1", "routes": [{"name": "r", "paths": ["/d"]}]}],
           "upstreams": [{"name": "up1", "healthchecks": {"passive": {"unhealthy": {"http_failures": 1}}},
                          "targets": [{"target": a.address}, {"target": b.address}]}]}
    st, body, _ = g.admin("POST", "/config", cfg)
    assert st == 201 and set(body["routes"]) and set(body["targets"]), body
    statuses = [g.get("/d")[0] for _ in range(50)]
    assert statuses == [200] * 50
    assert g.admin("PUT", f"/upstreams/up1/targets/{a.address}/unhealthy")[0] == 204
    cfg["services"][0]["routes"].append({"name": "r2", "paths": ["/e"]})
    assert g.admin("POST", "/config", cfg)[0] == 201
    assert [g.get("/e")[0] for _ in range(30)] == [200] * 30
    st, body, _ = g.admin("GET", "/upstreams/up1/health")
    assert {t["target"]: t["health"] for t in body["data"]}[a.address] == "UNHEALTHY"
    assert {json.loads(g.get("/e")[1])["upstream"] for _ in range(10)} == {"b"}
    assert g.admin("POST", "/config?check_hash=1", cfg)[0] == 304
    st, body, _ = g.admin("POST", "/config", {"_format_version": "3.0", "services": [{"name": "x"}]})
    assert st == 400 and body["code"] == 14, body
