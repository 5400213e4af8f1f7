"""Issue #15: rate-limiting `policy = cluster` on PostgreSQL (database = postgres).

Workers count in shared memory (ClusterCounterTable); each node's master exchanges the counts with Kong's
`ratelimiting_metrics` table every 100 ms (GWServer/RateLimitClusterSync.swift). Scenarios from Kong's
spec/03-plugins/23-rate-limiting/04-access_spec.lua (policy cluster: headers, 429 past the limit, counters
in the database) on two nodes, plus the fault cases (PostgreSQL stopped: fault_tolerant true keeps
deciding and the counts reach the database afterwards; fault_tolerant false answers 500), and the refusals
without a shared database (SQLite, DB-less). One private PostgreSQL per module (pgserver.py)."""
import json
import time

import pytest

from conftest import Gateway, stop_gateways, wait_until
from pgserver import PGServer

ZERO = "00000000-0000-0000-0000-000000000000"


@pytest.fixture(scope="module")
def pg():
    s = PGServer()
    yield s
    s.close()


@pytest.fixture
def nodes(tmp_path, pg):
    """make(n) → (n nodes (2 workers each) on one new database, bootstrapped and started, the database)."""
    made = []

    def make(n=2, start=True):
        db = pg.database()
        settings = pg.settings(db)
        settings["db_update_frequency"] = "1"
        out = []
        for _ in range(n):
            g = Gateway(str(tmp_path / f"node{len(made)}"), workers=2, extra=settings)
            made.append(g)
            out.append(g)
        r = out[0].cli("migrations", "bootstrap", "-c", out[0].conf)
        assert r.returncode == 0, r.stderr
        if start:
            for g in out:
                g.start()
        return out, db

    yield make
    stop_gateways(made)


def away_from_midnight():
    """The tests count in a `day` window: never let one start within two minutes of 00:00 UTC."""
    left = 86400 - time.time() % 86400
    if left < 120:
        time.sleep(left + 1)


def metric(pg, db, ident, period="day"):
    v = pg.psql(db, f"SELECT value FROM ratelimiting_metrics WHERE identifier = '{ident}' AND period = '{period}'")
    return int(v) if v else 0


def route_with_plugin(a, b, up, path, config):
    """Service + route on node a, a rate-limiting instance on the route; waits until both nodes apply it
    (probing with an identifier of its own, so the counters under test stay untouched)."""
    st, svc, _ = a.admin("POST", "/services", {"name": "s" + path.strip("/"), "url": f"http://{up.address}"})
    assert st == 201, svc
    st, route, _ = a.admin("POST", f"/services/{svc['id']}/routes", {"paths": [path]})
    assert st == 201, route
    st, plugin, _ = a.admin("POST", f"/routes/{route['id']}/plugins", {"name": "rate-limiting", "config": config})
    assert st == 201, plugin
    for g in (a, b):
        wait_until(lambda g=g: "X-RateLimit-Limit-Day" in g.get(path, headers={"X-Who": "probe"})[2],
                   what=f"plugin active on :{g.proxy_port}")
    return route, plugin


def test_limit_shared_by_two_nodes(nodes, pg, upstream):
    """10 per day across two nodes with 2 workers each: requests alternate between the nodes, each one after
    the previous one reached PostgreSQL and a few sync intervals passed → exactly 10 pass, in order, with
    local's headers (remaining counts every node's requests); the row has Kong's columns."""
    away_from_midnight()
    (a, b), db = nodes(2)
    up = upstream("c")
    route, plugin = route_with_plugin(a, b, up, "/c", {"day": 10, "policy": "cluster", "limit_by": "header",
                                                       "header_name": "X-Who"})
    assert plugin["config"]["policy"] == "cluster"
    allowed = 0
    for i in range(16):
        g = (a, b)[i % 2]
        st, body, h = g.get("/c", headers={"X-Who": "alice"})
        assert h["X-RateLimit-Limit-Day"] == "10" and h["RateLimit-Limit"] == "10", h
        if allowed < 10:
            assert st == 200, (i, st, body)
            allowed += 1
            if i == 1:
                # b's first sight of the identifier: its row is new, it has not read the cluster's value
                # yet (its first sync comes within 100 ms), so it counts from its own requests only.
                assert h["X-RateLimit-Remaining-Day"] in ("8", "9"), (i, h)
            else:
                assert h["X-RateLimit-Remaining-Day"] == str(10 - allowed), (i, h)
                assert h["RateLimit-Remaining"] == str(10 - allowed)
            assert 1 <= int(h["RateLimit-Reset"]) <= 86400
            # Paced beyond the sync interval: the count reached PostgreSQL, then both nodes read it back.
            wait_until(lambda: metric(pg, db, "alice") == allowed, what=f"value {allowed} in ratelimiting_metrics")
            time.sleep(0.35)
        else:
            assert st == 429, (i, st, body)
            assert json.loads(body)["message"] == "API rate limit exceeded"
            assert h["X-RateLimit-Remaining-Day"] == "0" and "Retry-After" in h
    assert allowed == 10
    # Rejected requests are not counted (Kong): the value stays at the limit.
    time.sleep(0.35)
    assert metric(pg, db, "alice") == 10
    row = pg.psql(db, "SELECT identifier, period, extract(epoch FROM period_date)::bigint, service_id, route_id, value, "
                      "extract(epoch FROM ttl)::bigint FROM ratelimiting_metrics WHERE identifier = 'alice'").split("|")
    midnight = int(time.time()) // 86400 * 86400
    assert row == ["alice", "day", str(midnight), ZERO, route["id"], "10", str(midnight + 86400)], row
    # Another identifier has its own count, on either node.
    assert a.get("/c", headers={"X-Who": "bob"})[0] == 200
    assert b.get("/c", headers={"X-Who": "bob"})[0] == 200
    wait_until(lambda: metric(pg, db, "bob") == 2, what="bob's count in PostgreSQL")
    # The node's cluster table among the shared areas of GET /status.
    dicts = a.admin("GET", "/status")[1]["memory"]["lua_shared_dicts"]
    assert dicts["rate_limiting_cluster_counters"]["capacity"] == "2.00 MiB", dicts


def test_burst_on_one_node_is_exact(nodes, pg, upstream):
    """One node, 2 workers, concurrent requests: the workers share the counters (exact between syncs)."""
    away_from_midnight()
    (a,), db = nodes(1)
    up = upstream("d")
    route_with_plugin(a, a, up, "/d", {"day": 20, "policy": "cluster", "limit_by": "header", "header_name": "X-Who"})
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(8) as ex:
        statuses = list(ex.map(lambda _: a.get("/d", headers={"X-Who": "burst"})[0], range(40)))
    assert statuses.count(200) == 20 and statuses.count(429) == 20, statuses
    wait_until(lambda: metric(pg, db, "burst") == 20, what="20 in ratelimiting_metrics")


def test_postgres_down_fault_tolerance(nodes, pg, upstream):
    """PostgreSQL stopped: with fault_tolerant (default) the node keeps deciding from shared memory and the
    counts reach the database once it is back; with fault_tolerant = false the instance answers 500 once
    the counts could not be exchanged for more than 3 s, and serves again after."""
    away_from_midnight()
    (a,), db = nodes(1)
    up = upstream("f")
    route_with_plugin(a, a, up, "/f", {"day": 5, "policy": "cluster", "limit_by": "header", "header_name": "X-Who"})
    route_with_plugin(a, a, up, "/strict", {"day": 1000000, "policy": "cluster", "fault_tolerant": False,
                                            "limit_by": "header", "header_name": "X-Who"})
    for _ in range(2):
        assert a.get("/f", headers={"X-Who": "carol"})[0] == 200
    wait_until(lambda: metric(pg, db, "carol") == 2, what="2 in ratelimiting_metrics")
    assert a.get("/strict", headers={"X-Who": "dan"})[0] == 200
    pg.stop()
    try:
        wait_until(lambda: a.admin("GET", "/status")[1]["database"]["reachable"] is False, what="database unreachable")
        statuses = [a.get("/f", headers={"X-Who": "carol"})[0] for _ in range(4)]
        assert statuses == [200, 200, 200, 429], statuses
        st, body, _ = wait_until(lambda: (lambda r: r if r[0] == 500 else None)(a.get("/strict", headers={"X-Who": "dan"})),
                                 what="500 from the fault_tolerant=false instance")
        assert json.loads(body)["message"] == "An unexpected error occurred"
    finally:
        pg.start()
    wait_until(lambda: a.admin("GET", "/status")[1]["database"]["reachable"] is True, timeout=30, what="database back")
    wait_until(lambda: metric(pg, db, "carol") == 5, what="the outage's counts in PostgreSQL")
    wait_until(lambda: (lambda r: r[0] == 200 or r)(a.get("/strict", headers={"X-Who": "dan"})), what="fault_tolerant=false serving again")
    assert a.get("/f", headers={"X-Who": "carol"})[0] == 429


def test_cluster_refused_without_postgres(gateway):
    """SQLite: one node's file, so cluster is refused with what it needs; DB-less: Kong's schema answer."""
    g = gateway(workers=1)
    st, b, _ = g.admin("POST", "/plugins", {"name": "rate-limiting", "config": {"minute": 1, "policy": "cluster"}})
    assert st == 400, b
    assert "needs database = postgres" in b["fields"]["config"]["policy"], b
    assert b["message"].startswith("schema violation"), b
    off = gateway(workers=1, database="off")
    cfg = {"_format_version": "3.0",
           "plugins": [{"name": "rate-limiting", "config": {"minute": 1, "policy": "cluster"}}]}
    st, b, _ = off.admin("POST", "/config", cfg)
    assert st == 400, b
    assert "expected one of: local, redis" in json.dumps(b), b


def test_migration_and_expired_rows(nodes, pg):
    """A database bootstrapped before the table existed: the node refuses to start until `migrations up`
    (Kong's messages); expired rows are deleted by the master (first pass 5 s after start), live ones kept."""
    (a,), db = nodes(1, start=False)
    pg.psql(db, "DROP TABLE ratelimiting_metrics; UPDATE schema_meta SET executed = '{000_base_gateway}', "
                "last_executed = '000_base_gateway'")
    r = a.cli("start", "-c", a.conf, "-p", a.prefix)
    assert r.returncode != 0 and "New migrations available; run 'kong migrations up' to proceed" in r.stderr, r.stderr
    assert a.cli("migrations", "list", "-c", a.conf).returncode == 5
    r = a.cli("migrations", "up", "-c", a.conf)
    assert r.returncode == 0 and "core migrated up to: 001_ratelimiting_metrics (executed)" in r.stdout, r.stdout
    a.start()
    pg.psql(db, "INSERT INTO ratelimiting_metrics (identifier, period, period_date, value, ttl) VALUES "
                "('old', 'minute', now() - interval '2 minutes', 3, now() - interval '1 minute'), "
                "('live', 'day', date_trunc('day', now()), 1, now() + interval '1 day')")
    wait_until(lambda: pg.psql(db, "SELECT string_agg(identifier, ',') FROM ratelimiting_metrics") == "live",
               timeout=30, what="the expired row deleted, the live one kept")
