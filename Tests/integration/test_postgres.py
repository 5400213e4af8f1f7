"""Issue #15 (PostgreSQL part): `database = postgres`, Kong's migrations, nodes sharing one PostgreSQL kept
in step through the change log (LISTEN/NOTIFY + catch-up), and the fault cases.

Ported scenarios: KONG-TLS-CLUSTER.md C.8 (1 fresh DB, 2 route propagation and host update/delete on the
other node, 4 manual health is cluster-wide, 6 DB outage, 7 start with PG down), Kong's
spec/02-integration/06-invalidations/02-core_entities_invalidations_spec.lua (create/update/delete on A
seen on B) and spec/02-integration/02-cmd/10-migrations_spec.lua (bootstrap/up/list/reset messages and
exit codes). One private PostgreSQL per module (pgserver.py), one database per test."""
import json
import os
import signal
import subprocess
import threading
import time

import pytest

from conftest import GATEWAY_BIN, TIMEOUT, Gateway, Upstream, alive, children, stop_gateways, wait_until
from pgserver import PGServer

NEEDS_BOOTSTRAP = "Database needs bootstrapping or is older than Kong 1.0"


@pytest.fixture(scope="module")
def pg():
    s = PGServer()
    yield s
    s.close()


@pytest.fixture
def pgdb(pg):
    return pg.database()


@pytest.fixture
def nodes(tmp_path, pg, pgdb):
    """make(n, bootstrap=True, **extra) → n nodes (2 workers each) on one database, started."""
    made = []

    def make(n=1, bootstrap=True, start=True, db=None, **extra):
        settings = pg.settings(db or pgdb)
        settings["db_update_frequency"] = "1"
        settings.update({k: str(v) for k, v in extra.items()})
        out = []
        for _ in range(n):
            g = Gateway(str(tmp_path / f"node{len(made)}"), workers=2, extra=settings)
            made.append(g)
            out.append(g)
        if bootstrap:
            r = out[0].cli("migrations", "bootstrap", "-c", out[0].conf)
            assert r.returncode == 0, r.stderr
        if start:
            for g in out:
                g.start()
        return out

    yield make
    stop_gateways(made)


def wait_status(g, path, expect, headers=None):
    return wait_until(lambda: g.get(path, headers=headers)[0] == expect, what=f"{path} -> {expect} on :{g.proxy_port}")


def wait_admin(g, path, pred, what):
    return wait_until(lambda: pred(*g.admin("GET", path)[:2]), what=what)


def who(g, path="/mock"):
    st, body, _ = g.get(path)
    return st, json.loads(body)["upstream"] if st == 200 else None


# Migrations and start checks ----------------------------------------------------------------------------------

def test_fresh_database_migrations_and_start(nodes, pg):
    (a,) = nodes(1, bootstrap=False, start=False)
    r = a.cli("start", "-c", a.conf, "-p", a.prefix)
    assert r.returncode != 0
    assert "Error: " + NEEDS_BOOTSTRAP in r.stderr
    assert "kong migrations bootstrap" in r.stderr
    assert not os.path.exists(a.pid_file)                      # no process left behind
    assert a.cli("migrations", "list", "-c", a.conf).returncode == 3
    r = a.cli("migrations", "up", "-c", a.conf)
    assert r.returncode == 1 and "Cannot run migrations: " + NEEDS_BOOTSTRAP in r.stderr

    r = a.cli("migrations", "bootstrap", "-c", a.conf)
    assert r.returncode == 0, r.stderr
    assert "Bootstrapping database..." in r.stdout and r.stdout.strip().endswith("Database is up-to-date")
    r = a.cli("migrations", "bootstrap", "-c", a.conf)
    assert r.returncode == 0 and "Database already bootstrapped" in r.stdout
    r = a.cli("migrations", "up", "-c", a.conf)
    assert r.returncode == 0 and "Database is already up-to-date" in r.stdout
    r = a.cli("migrations", "finish", "-c", a.conf)
    assert r.returncode == 0 and "No pending migrations to finish" in r.stdout
    r = a.cli("migrations", "list", "-c", a.conf)
    assert r.returncode == 0 and "Executed migrations:" in r.stdout

    # reset: --yes needed without a terminal; then the database needs bootstrapping again.
    r = subprocess.run([GATEWAY_BIN, "migrations", "reset", "-c", a.conf], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=TIMEOUT * 3)
    assert r.returncode == 1 and "not a tty: invoke 'reset' non-interactively with the --yes flag" in r.stderr
    r = a.cli("migrations", "reset", "--yes", "-c", a.conf)
    assert r.returncode == 0, r.stderr
    assert a.cli("migrations", "list", "-c", a.conf).returncode == 3
    r = a.cli("migrations", "reset", "--yes", "-c", a.conf)
    assert r.returncode == 1 and "Database not bootstrapped, nothing to reset" in r.stdout

    assert a.cli("migrations", "bootstrap", "-c", a.conf).returncode == 0
    a.start()
    st, body, _ = a.admin("GET", "/status")
    assert st == 200 and body["database"] == {"reachable": True}
    assert a.admin("GET", "/status/ready")[:2] == (200, {"message": "ready"})


def test_start_with_postgres_unreachable(nodes, pg):
    (a,) = nodes(1, bootstrap=False, start=False, pg_port=pg.port + 1 if pg.port < 65535 else pg.port - 1,
                 pg_timeout=1000)
    r = a.cli("start", "-c", a.conf, "-p", a.prefix)
    assert r.returncode != 0
    assert "[PostgreSQL error] failed to retrieve PostgreSQL server_version_num: " in r.stderr
    assert not os.path.exists(a.pid_file)


def test_configuration_keys(tmp_path):
    g = Gateway(str(tmp_path / "cfg"), extra={"database": "postgres", "pg_port": "70000"})
    r = g.cli("check", g.conf)
    assert r.returncode != 0 and "pg_port" in r.stderr
    g.write_conf(pg_port="5432", pg_timeout="abc")
    assert g.cli("check", g.conf).returncode != 0
    g.write_conf(pg_timeout="5000", db_update_frequency="0")
    assert g.cli("check", g.conf).returncode != 0
    g.write_conf(db_update_frequency="0.5", pg_ssl="on", pg_schema="gw", pg_max_concurrent_queries="4")
    assert g.cli("check", g.conf).returncode == 0
    r = g.cli("check", g.conf, env={"GATEWAY_PG_PORT": "0"})
    assert r.returncode != 0 and "GATEWAY_PG_PORT" in r.stderr


# Nodes in step --------------------------------------------------------------------------------------------------

def test_three_nodes_seed_walkthrough(nodes):
    u1, u2 = Upstream("t1"), Upstream("t2")
    try:
        a, b, c = nodes(3)
        for g in (a, b, c):
            assert g.get("/mock")[0] == 404
        hc = {"passive": {"unhealthy": {"tcp_failures": 1}}}
        assert a.admin("POST", "/upstreams", {"name": "mock_up", "healthchecks": hc})[0] == 201
        for u in (u1, u2):
            assert a.admin("POST", "/upstreams/mock_up/targets", {"target": u.address})[0] == 201
        assert a.admin("POST", "/services", {"name": "mock", "host": "mock_up"})[0] == 201
        st, route, _ = a.admin("POST", "/services/mock/routes", {"paths": ["/mock"], "name": "mock_route"})
        assert st == 201, route
        assert a.get("/mock")[0] == 200        # the 201 came after this node's workers had it
        for g in (b, c):
            wait_status(g, "/mock", 200)
            seen = {who(g)[1] for _ in range(12)}
            assert seen == {"t1", "t2"}, seen     # targets alternate on every node
            st, body, _ = g.admin("GET", "/routes/mock_route")
            assert st == 200 and body["id"] == route["id"]
        # A stopped target is avoided by every node (each node's passive checks; retries hide the failure).
        u2.stop()
        for g in (a, b, c):
            wait_until(lambda g=g: [who(g) for _ in range(6)] == [(200, "t1")] * 6, what="t2 avoided")
    finally:
        u1.stop()
        u2.stop()


def test_create_update_delete_every_kind_on_every_node(nodes, upstream):
    up = upstream("e")
    a, b, c = nodes(3)
    created = {}

    def create(path, body, key):
        st, d, _ = a.admin("POST", path, body)
        assert st == 201, (path, d)
        created[key] = d
        return d

    create("/services", {"name": "s", "url": f"http://{up.address}"}, "services")
    create("/services/s/routes", {"name": "r", "paths": ["/e"], "hosts": ["old.test"]}, "routes")
    create("/upstreams", {"name": "ups"}, "upstreams")
    create("/upstreams/ups/targets", {"target": "127.0.0.1:1"}, "targets")
    create("/consumers", {"username": "alice"}, "consumers")
    create("/services/s/plugins", {"name": "key-auth"}, "plugins")
    create("/consumers/alice/key-auth", {"key": "secret"}, "key-auths")
    create("/consumers/alice/basic-auth", {"username": "al", "password": "pw"}, "basic-auths")
    create("/consumers/alice/acls", {"group": "g1"}, "acls")
    paths = {"services": "/services/s", "routes": "/routes/r", "upstreams": "/upstreams/ups",
             "targets": f"/upstreams/ups/targets/{created['targets']['id']}", "consumers": "/consumers/alice",
             "plugins": f"/plugins/{created['plugins']['id']}", "key-auths": f"/key-auths/{created['key-auths']['id']}",
             "basic-auths": f"/basic-auths/{created['basic-auths']['id']}", "acls": f"/acls/{created['acls']['id']}"}
    for g in (b, c):
        for kind, path in paths.items():
            wait_admin(g, path, lambda st, d, k=kind: st == 200 and d["id"] == created[k]["id"], f"{kind} on node")
        # Proxying on the other nodes honours the plugin and the credential.
        wait_status(g, "/e", 401, headers={"Host": "old.test"})
        assert g.get("/e", headers={"Host": "old.test", "apikey": "secret"})[0] == 200

    # Updates (Kong's invalidation spec: the old host 404, the new one 200 on the other nodes).
    assert a.admin("PATCH", "/routes/r", {"hosts": ["new.test"]})[0] == 200
    assert a.admin("PATCH", "/consumers/alice", {"custom_id": "c-1"})[0] == 200
    assert a.admin("PATCH", "/upstreams/ups", {"slots": 100})[0] == 200
    for g in (b, c):
        wait_status(g, "/e", 404, headers={"Host": "old.test", "apikey": "secret"})
        assert g.get("/e", headers={"Host": "new.test", "apikey": "secret"})[0] == 200
        wait_admin(g, "/consumers/alice", lambda st, d: d.get("custom_id") == "c-1", "consumer update")
        wait_admin(g, "/upstreams/ups", lambda st, d: d.get("slots") == 100, "upstream update")

    # Deletes.
    assert a.admin("DELETE", paths["plugins"])[0] == 204
    for g in (b, c):
        wait_status(g, "/e", 200, headers={"Host": "new.test"})
    for kind in ("acls", "basic-auths", "key-auths", "targets", "routes", "consumers", "upstreams", "services"):
        assert a.admin("DELETE", paths[kind])[0] == 204, kind
    for g in (b, c):
        for kind, path in paths.items():
            wait_admin(g, path, lambda st, d: st == 404, f"{kind} deleted on node")
        wait_status(g, "/e", 404, headers={"Host": "new.test"})


def test_manual_health_override_reaches_every_node(nodes, upstream):
    t1, t2 = upstream("t1"), upstream("t2")
    a, b = nodes(2)
    body = {"name": "hc_up", "healthchecks": {"passive": {"unhealthy": {"tcp_failures": 5}}}}
    assert a.admin("POST", "/upstreams", body)[0] == 201
    for t in (t1, t2):
        assert a.admin("POST", "/upstreams/hc_up/targets", {"target": t.address})[0] == 201
    assert a.admin("POST", "/services", {"name": "hc", "host": "hc_up"})[0] == 201
    assert a.admin("POST", "/services/hc/routes", {"paths": ["/hc"]})[0] == 201
    wait_status(b, "/hc", 200)

    def health(g):
        st, d, _ = g.admin("GET", "/upstreams/hc_up/health")
        return {x["target"]: x["health"] for x in d["data"]} if st == 200 else {}

    assert a.admin("PUT", f"/upstreams/hc_up/targets/{t1.address}/unhealthy")[0] == 204
    assert health(a)[t1.address] == "UNHEALTHY"
    wait_until(lambda: health(b).get(t1.address) == "UNHEALTHY", what="override on B")
    assert {who(b, "/hc")[1] for _ in range(10)} == {"t2"}
    assert b.admin("PUT", f"/upstreams/hc_up/targets/{t1.address}/healthy")[0] == 204
    wait_until(lambda: health(a).get(t1.address) == "HEALTHY", what="override back on A")


def test_concurrent_unique_writes_one_wins(nodes):
    a, b = nodes(2)
    for i in range(10):
        results = []

        def post(g, name=f"race{i}"):
            results.append(g.admin("POST", "/services", {"name": name, "url": "http://127.0.0.1:9"})[:2])

        ts = [threading.Thread(target=post, args=(g,)) for g in (a, b)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(TIMEOUT)
        statuses = sorted(st for st, _ in results)
        assert statuses == [201, 409], results
        conflict = next(d for st, d in results if st == 409)
        assert conflict["message"] == f"UNIQUE violation detected on '{{name=\"race{i}\"}}'"
        assert conflict["code"] == 5 and conflict["fields"] == {"name": f"race{i}"}
    # Both nodes agree on the winners.
    for g in (a, b):
        wait_admin(g, "/services?size=100", lambda st, d: len(d["data"]) == 10, "ten services")


def test_later_and_killed_nodes_catch_up(nodes, upstream):
    up = upstream("k")
    a, b = nodes(2)
    assert a.admin("POST", "/services", {"name": "s", "url": f"http://{up.address}"})[0] == 201
    assert a.admin("POST", "/services/s/routes", {"paths": ["/one"]})[0] == 201
    wait_status(b, "/one", 200)
    pid = b.master_pid()
    workers = b.worker_pids()
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not alive(pid) and not any(alive(w) for w in workers), what="node B gone")
    for p in ("/two", "/three"):
        assert a.admin("POST", "/services/s/routes", {"paths": [p]})[0] == 201
    assert a.admin("DELETE", "/routes/" + a.admin("GET", "/services/s/routes")[1]["data"][0]["id"])[0] == 204
    b.start()
    for p in ("/two", "/three"):
        wait_status(b, p, 200)
    assert b.get("/one")[0] == 404
    # A node started later reads the same.
    (c,) = nodes(1, bootstrap=False)
    assert c.get("/two")[0] == 200 and c.get("/one")[0] == 404


def test_trimmed_change_log_reloads_everything(nodes, pg, pgdb, upstream):
    up = upstream("t")
    a, b = nodes(2)
    assert a.admin("POST", "/services", {"name": "s", "url": f"http://{up.address}"})[0] == 201
    assert a.admin("POST", "/services/s/routes", {"paths": ["/before"]})[0] == 201
    wait_status(b, "/before", 200)
    pid = b.master_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        assert a.admin("POST", "/services/s/routes", {"paths": ["/after"]})[0] == 201
        # Trim every row B has not read (what the hourly trim does to a node away for long).
        pg.psql(pgdb, "UPDATE gw_state SET value = (SELECT max(seq) FROM gw_changes) WHERE key = 'trimmed_through'; "
                      "DELETE FROM gw_changes")
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_status(b, "/after", 200)
    assert b.get("/before")[0] == 200
    wait_until(lambda: "reloaded every entity" in b.log(), what="reload logged")


def test_postgres_down_and_back(nodes, pg, upstream):
    up = upstream("d")
    a, b = nodes(2)
    assert a.admin("POST", "/services", {"name": "s", "url": f"http://{up.address}"})[0] == 201
    assert a.admin("POST", "/services/s/routes", {"paths": ["/live"]})[0] == 201
    wait_status(b, "/live", 200)
    pg.stop()
    try:
        for g in (a, b):
            wait_admin(g, "/status", lambda st, d: d["database"]["reachable"] is False, "database unreachable")
            assert g.admin("GET", "/status/ready")[:2] == (503, {"message": "failed to connect to database"})
            assert g.get("/live")[0] == 200                                    # proxying goes on
            st, body, _ = g.admin("POST", "/services", {"name": "x", "url": "http://127.0.0.1:9"})
            assert (st, body) == (500, {"message": "An unexpected error occurred"})
            st, body, _ = g.admin("GET", "/services/s")                       # reads: the node's copy
            assert st == 200 and body["name"] == "s"
        wait_until(lambda: "database connection lost" in a.log(), what="loss logged")
    finally:
        pg.start()
    for g in (a, b):
        wait_admin(g, "/status", lambda st, d: d["database"]["reachable"] is True, "database back")
    assert a.admin("POST", "/services/s/routes", {"paths": ["/after-outage"]})[0] == 201
    wait_status(b, "/after-outage", 200)
    assert "database connection restored" in b.log()


def test_outage_on_one_node_catches_up(nodes, pg, pgdb, upstream):
    """A node whose connection is cut (its backend terminated) while others write reconnects and catches up."""
    up = upstream("o")
    a, b = nodes(2)
    assert a.admin("POST", "/services", {"name": "s", "url": f"http://{up.address}"})[0] == 201
    pg.psql(pgdb, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                  f"WHERE datname = '{pgdb}' AND application_name = 'gateway' AND pid <> pg_backend_pid()")
    # Whichever node reconnects first, a write on A (retried while A reconnects) reaches B.
    wait_until(lambda: a.admin("POST", "/services/s/routes", {"paths": ["/later"]})[0] == 201, what="write on A")
    wait_status(b, "/later", 200)


def test_db_import_export_on_postgres(nodes, pg, tmp_path, upstream):
    up = upstream("i")
    (a,) = nodes(1)
    decl = tmp_path / "kong.yml"
    decl.write_text(f"""_format_version: "3.0"
services:
- name: imported
  url: http://{up.address}
  routes:
  - name: imported_route
    paths: [/imported]
consumers:
- username: bob
""")
    r = a.cli("config", "db_import", str(decl), "-c", a.conf)
    assert r.returncode == 0, r.stderr
    wait_status(a, "/imported", 200)                         # the running node applied it (NOTIFY)
    assert a.admin("GET", "/consumers/bob")[0] == 200
    out = tmp_path / "export.json"
    r = a.cli("config", "db_export", str(out), "-c", a.conf)
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert [s["name"] for s in doc["services"]] == ["imported"]
    assert [c["username"] for c in doc["consumers"]] == ["bob"]
    # An SQLite prefix moves to PostgreSQL by export + import.
    sq = Gateway(str(tmp_path / "sqlite"))
    assert sq.cli("config", "db_import", str(decl), "-c", sq.conf, "-p", sq.prefix).returncode == 0
    moved = tmp_path / "moved.yml"
    assert sq.cli("config", "db_export", str(moved), "-c", sq.conf, "-p", sq.prefix).returncode == 0
    (b,) = nodes(1, start=False, db=pg.database())
    r = b.cli("config", "db_import", str(moved), "-c", b.conf)
    assert r.returncode == 0, r.stderr
    b.start()
    assert b.get("/imported")[0] == 200 and b.admin("GET", "/consumers/bob")[0] == 200


def test_periodic_check_without_notification(nodes, pg, pgdb):
    """A change whose NOTIFY never came (written here without one) is read by the periodic check of the
    change log (db_update_frequency = 1 s in these tests)."""
    (a,) = nodes(1)
    sid = "5d3f6a52-8a4e-4f3a-9c1e-2b7d9e0f1a23"
    doc = json.dumps({"id": sid, "name": "silent", "protocol": "http", "host": "127.0.0.1", "port": 9, "path": None,
                      "retries": 5, "connect_timeout": 60000, "write_timeout": 60000, "read_timeout": 60000,
                      "enabled": True, "created_at": 1, "updated_at": 1, "tags": None})
    lit = doc.replace("'", "''")
    pg.psql(pgdb, f"BEGIN; INSERT INTO services (id, created_at, name, doc) VALUES ('{sid}', 1, 'silent', '{lit}'); "
                  f"INSERT INTO gw_changes (node_id, kind, id, op, doc) VALUES ('psql', 'services', '{sid}', 'p', '{lit}'); COMMIT;")
    wait_admin(a, "/services/silent", lambda st, d: st == 200 and d["id"] == sid, "service read by the periodic check")


def test_parent_delete_races_child_create(nodes):
    """A route created on A while B deletes its service: the database judges (deferred foreign keys), never
    both succeed, and both nodes end up with the same entities."""
    a, b = nodes(2)
    for i in range(6):
        st, svc, _ = a.admin("POST", "/services", {"name": f"p{i}", "url": "http://127.0.0.1:9"})
        assert st == 201
        wait_admin(b, f"/services/p{i}", lambda st, d: st == 200, "service on B")
        results = {}

        def create():
            results["route"] = a.admin("POST", "/routes", {"paths": [f"/r{i}"], "service": {"id": svc["id"]}})[:2]

        def delete():
            results["delete"] = b.admin("DELETE", f"/services/{svc['id']}")[:2]

        ts = [threading.Thread(target=create), threading.Thread(target=delete)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(TIMEOUT)
        route_ok = results["route"][0] == 201
        delete_ok = results["delete"][0] == 204
        assert route_ok != delete_ok, results
        if not delete_ok:
            assert results["delete"][0] == 400, results
        else:
            assert results["route"][0] == 400 and results["route"][1]["name"] == "foreign key violation", results
        for g in (a, b):
            wait_admin(g, f"/services/{svc['id']}", lambda st, d: st == (404 if delete_ok else 200), "same end state")


def test_hung_database_times_out(nodes, pg, upstream):
    """PostgreSQL frozen (every one of its processes SIGSTOPped: no answer, no reset, like a cut link): a
    write is answered 500 after pg_timeout, the node keeps proxying and says database.reachable false;
    once PostgreSQL runs again the node reconnects and writes work."""
    up = upstream("h")
    (a,) = nodes(1)
    assert a.admin("POST", "/services", {"name": "s", "url": f"http://{up.address}"})[0] == 201
    assert a.admin("POST", "/services/s/routes", {"paths": ["/h"]})[0] == 201
    with open(os.path.join(pg.data, "postmaster.pid")) as f:
        postmaster = int(f.readline())
    frozen = [postmaster] + children(postmaster)
    for p in frozen:
        os.kill(p, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        st, body, _ = a.admin("POST", "/services", {"name": "x", "url": "http://127.0.0.1:9"})
        assert (st, body) == (500, {"message": "An unexpected error occurred"})
        assert time.monotonic() - t0 < TIMEOUT
        assert a.get("/h")[0] == 200
        wait_admin(a, "/status", lambda st, d: d["database"]["reachable"] is False, "database unreachable")
    finally:
        for p in frozen:
            os.kill(p, signal.SIGCONT)
    wait_admin(a, "/status", lambda st, d: d["database"]["reachable"] is True, "database back")
    assert a.admin("POST", "/services/s/routes", {"paths": ["/h2"]})[0] == 201
    assert a.get("/h2")[0] == 200


def test_pg_schema(nodes, pg, pgdb):
    """pg_schema: bootstrap creates the schema and every table lives there; reset empties it (Kong drops the
    schema and creates it again)."""
    (a,) = nodes(1, pg_schema="gw_schema")
    st, svc, _ = a.admin("POST", "/services", {"name": "in-schema", "url": "http://127.0.0.1:9"})
    assert st == 201
    assert pg.psql(pgdb, "SELECT name FROM gw_schema.services") == "in-schema"
    assert pg.psql(pgdb, "SELECT to_regclass('public.services') IS NULL") == "t"
    a.stop()
    assert a.cli("migrations", "reset", "--yes", "-c", a.conf).returncode == 0
    assert pg.psql(pgdb, "SELECT to_regclass('gw_schema.services') IS NULL") == "t"    # dropped and made again, empty
    assert a.cli("migrations", "list", "-c", a.conf).returncode == 3
