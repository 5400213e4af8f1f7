"""Issue "Active and passive health checks" (KONG.md §5, §2.7 /upstreams/{u}/health) through the real binary.

Health state lives in shared memory; the master runs the active prober; workers report passive outcomes."""
import json
import time

from conftest import Upstream, wait_until

ACTIVE = {"active": {"healthy": {"interval": 1, "successes": 1},
                     "unhealthy": {"interval": 1, "http_failures": 1, "tcp_failures": 1, "timeouts": 1}}}
PASSIVE_ONLY = {"passive": {"unhealthy": {"tcp_failures": 5}}}   # a checker exists, nothing probes


def setup(g, ups, healthchecks=None, extra=None):
    body = {"name": "hc_up"}
    if healthchecks is not None:
        body["healthchecks"] = healthchecks
    body.update(extra or {})
    st, resp, _ = g.admin("POST", "/upstreams", body)
    assert st == 201, resp
    for u in ups:
        st, resp, _ = g.admin("POST", "/upstreams/hc_up/targets", {"target": u.address})
        assert st == 201, resp
    assert g.admin("POST", "/services", {"name": "hc_svc", "host": "hc_up"})[0] == 201
    assert g.admin("POST", "/services/hc_svc/routes", {"paths": ["/hc"]})[0] == 201
    g.wait_route("/hc")


def health(g):
    st, body, _ = g.admin("GET", "/upstreams/hc_up/health")
    assert st == 200, body
    return {t["target"]: t["health"] for t in body["data"]}


def wait_health(g, target, state):
    return wait_until(lambda: health(g).get(target) == state, timeout=15, what=f"{target} {state}")


def who(g):
    st, body, _ = g.get("/hc")
    return st, (json.loads(body)["upstream"] if st == 200 else None)


def test_active_checks_seed_story(gateway, upstream):
    a, b = upstream("a"), upstream("b")
    g = gateway(workers=2)
    setup(g, [a, b], ACTIVE)
    assert health(g) == {a.address: "HEALTHY", b.address: "HEALTHY"}
    b.stop()
    wait_health(g, b.address, "UNHEALTHY")
    results = [who(g) for _ in range(50)]
    assert results == [(200, "a")] * 50
    b2 = upstream("b", port=b.port)
    wait_health(g, b.address, "HEALTHY")
    wait_until(lambda: who(g) == (200, "b"), what="b back in rotation")
    seen = [who(g) for _ in range(20)]
    assert {s for s, _ in seen} == {200} and {n for _, n in seen} == {"a", "b"}
    assert b2.hits > 0
    # The transitions are logged by the master.
    log = g.log()
    assert "UNHEALTHY" in log.upper() or "unhealthy" in log


def test_passive_ejection_across_workers(gateway, upstream):
    a, b = upstream("a"), upstream("b")
    g = gateway(workers=2)
    setup(g, [a, b], {"passive": {"unhealthy": {"http_failures": 3}}})
    assert health(g)[a.address] == "HEALTHY"
    a.status = 500
    a.hits = 0
    statuses = []
    for _ in range(40):
        statuses.append(who(g))
        if health(g)[a.address] == "UNHEALTHY":
            break
    assert health(g)[a.address] == "UNHEALTHY", statuses
    # 500s are passed through (never retried); the counter is shared by the workers, so exactly
    # three failures eject the target however the connections were spread.
    assert statuses.count((500, None)) == 3, statuses
    assert a.hits == 3
    assert [who(g) for _ in range(30)] == [(200, "b")] * 30
    assert a.hits == 3


def test_manual_unhealthy_healthy(gateway, upstream):
    a, b = upstream("a"), upstream("b")
    g = gateway(workers=2)
    setup(g, [a, b], PASSIVE_ONLY)
    st, body, _ = g.admin("PUT", f"/upstreams/hc_up/targets/{a.address}/unhealthy")
    assert st == 204, body
    assert health(g)[a.address] == "UNHEALTHY"
    # Read from shared memory: identical on every read, and every worker obeys at once.
    snapshots = [g.admin("GET", "/upstreams/hc_up/health")[1] for _ in range(10)]
    assert all(s == snapshots[0] for s in snapshots)
    assert [who(g) for _ in range(30)] == [(200, "b")] * 30
    st, _, _ = g.admin("PUT", f"/upstreams/hc_up/targets/{a.address}/healthy")
    assert st == 204
    assert health(g)[a.address] == "HEALTHY"
    seen = [who(g)[1] for _ in range(20)]
    assert seen.count("a") >= 8, seen
    # By target id and with the explicit address form too.
    st, body, _ = g.admin("GET", f"/upstreams/hc_up/targets/{b.address}")
    st, _, _ = g.admin("PUT", f"/upstreams/hc_up/targets/{body['id']}/{b.address}/unhealthy")
    assert st == 204
    assert health(g)[b.address] == "UNHEALTHY"
    assert [who(g) for _ in range(10)] == [(200, "a")] * 10


def test_manual_without_checker_400(gateway, upstream):
    a = upstream("a")
    g = gateway(workers=1)
    setup(g, [a])
    st, body, _ = g.admin("PUT", f"/upstreams/hc_up/targets/{a.address}/unhealthy")
    assert st == 400 and body == {"message": "no healthchecker found for hc_up"}, (st, body)
    assert health(g) == {a.address: "HEALTHCHECKS_OFF"}
    st, body, _ = g.admin("GET", "/upstreams/hc_up/health?balancer_health=1")
    assert body["data"]["health"] == "HEALTHCHECKS_OFF" and body["data"]["balancer_health"] == "HEALTHY", body
    assert who(g) == (200, "a")


def test_threshold_503_and_balancer_health_shape(gateway, upstream):
    a, b = upstream("a"), upstream("b")
    g = gateway(workers=2)
    hc = dict(PASSIVE_ONLY)
    hc["threshold"] = 60
    setup(g, [a, b], hc)
    st, body, _ = g.admin("GET", "/upstreams/hc_up/health?balancer_health=1")
    assert st == 200
    d = body["data"]
    assert d["health"] == "HEALTHY" and d["balancer_health"] == "HEALTHY"
    assert d["details"]["healthy"] is True
    assert d["details"]["weight"] == {"total": 200, "unavailable": 0, "available": 200}
    hosts = {h["port"]: h for h in d["details"]["hosts"]}
    assert set(hosts) == {a.port, b.port}
    assert hosts[a.port]["addresses"][0]["healthy"] is True
    assert body["next"] is None and "node_id" in body
    st, body, _ = g.admin("GET", "/upstreams/hc_up")
    assert body["id"] == d["id"]
    # Per-target shape.
    st, body, _ = g.admin("GET", "/upstreams/hc_up/health")
    t = {x["target"]: x for x in body["data"]}[a.address]
    assert t["data"]["addresses"] == [{"ip": "127.0.0.1", "port": a.port, "weight": 100, "health": "HEALTHY"}]
    assert t["data"]["weight"] == {"total": 100, "unavailable": 0, "available": 100}
    # 50 % available is not > 60 % → the whole balancer is unhealthy → 503.
    assert g.admin("PUT", f"/upstreams/hc_up/targets/{a.address}/unhealthy")[0] == 204
    st, body, _ = g.admin("GET", "/upstreams/hc_up/health?balancer_health=1")
    d = body["data"]
    assert d["health"] == "UNHEALTHY" and d["balancer_health"] == "UNHEALTHY", d
    assert d["details"]["weight"] == {"total": 200, "unavailable": 100, "available": 100}
    for _ in range(10):
        st, body, _ = g.get("/hc")
        assert st == 503 and b"failure to get a peer from the ring-balancer" in body
    assert g.admin("PUT", f"/upstreams/hc_up/targets/{a.address}/healthy")[0] == 204
    assert who(g)[0] == 200


def probes(u):
    with u.lock:
        return sum(1 for r in u.requests if r["headers"].get("User-Agent") == "gateway-healthcheck")


def test_probe_count_independent_of_workers(gateway, upstream):
    a, b = upstream("a"), upstream("b")
    g = gateway(workers=4)
    setup(g, [a, b], {"active": {"healthy": {"interval": 1, "successes": 1},
                                 "unhealthy": {"interval": 1, "http_failures": 1}}})
    wait_until(lambda: probes(a) >= 1 and probes(b) >= 1, what="first probes")
    p0 = (probes(a), probes(b))
    time.sleep(4.0)
    p1 = (probes(a), probes(b))
    for before, after in zip(p0, p1):
        # One probe per target per second (≈4), not one per worker (≈16).
        assert 2 <= after - before <= 6, (p0, p1)
    probe = next(r for r in a.requests if r["headers"].get("User-Agent") == "gateway-healthcheck")
    assert probe["method"] == "GET" and probe["path"] == "/"


def test_health_state_survives_reload(gateway, upstream):
    a, b = upstream("a"), upstream("b")
    g = gateway(workers=2)
    setup(g, [a, b], PASSIVE_ONLY)
    assert g.admin("PUT", f"/upstreams/hc_up/targets/{a.address}/unhealthy")[0] == 204
    old = set(g.worker_pids())
    r = g.cli("reload", "-c", g.conf, "-p", g.prefix)
    assert r.returncode == 0, r.stdout + r.stderr
    wait_until(lambda: set(g.worker_pids()) and not (set(g.worker_pids()) & old), what="new workers")
    assert health(g)[a.address] == "UNHEALTHY"
    assert [who(g) for _ in range(20)] == [(200, "b")] * 20
    assert g.admin("PUT", f"/upstreams/hc_up/targets/{a.address}/healthy")[0] == 204
    wait_until(lambda: who(g) == (200, "a"), what="a back after reload")


def test_active_probe_request_status_and_timeout(gateway, upstream):
    a, b = upstream("a"), upstream("b")
    g = gateway(workers=2)
    setup(g, [a, b], {"active": {"http_path": "/status", "timeout": 0.5,
                                 "headers": {"X-Probe": ["yes"]},
                                 "healthy": {"interval": 1, "successes": 2},
                                 "unhealthy": {"interval": 1, "http_failures": 2, "timeouts": 1}}})
    wait_until(lambda: probes(a) >= 1, what="first probe")
    with a.lock:
        probe = next(r for r in a.requests if r["headers"].get("User-Agent") == "gateway-healthcheck")
    assert probe["path"] == "/status" and probe["headers"].get("X-Probe") == "yes"
    assert probe["headers"].get("Host") == "127.0.0.1"     # Kong: target host name or ip, no port
    # Status in unhealthy.http_statuses, twice → UNHEALTHY; traffic avoids it.
    a.status = 500
    wait_health(g, a.address, "UNHEALTHY")
    assert {who(g) for _ in range(20)} == {(200, "b")}
    # Two successes → HEALTHY.
    a.status = 200
    wait_health(g, a.address, "HEALTHY")
    # A probe slower than active.timeout counts as a timeout (limit 1).
    b.delay = 1.5
    wait_health(g, b.address, "UNHEALTHY")
    b.delay = 0
    wait_health(g, b.address, "HEALTHY")


def test_passive_ejection_needs_active_or_manual_recovery(gateway, upstream):
    a, b = upstream("a"), upstream("b")
    g = gateway(workers=2)
    setup(g, [a, b], {"passive": {"unhealthy": {"http_failures": 1}},
                      "active": {"healthy": {"interval": 1, "successes": 1}, "unhealthy": {"interval": 1}}})
    a.status = 503
    wait_until(lambda: who(g)[0] == 503, what="a 503 once")
    assert health(g)[a.address] == "UNHEALTHY"
    # Active probes: 503 is not healthy → stays down; 200 → back.
    time.sleep(1.5)
    assert health(g)[a.address] == "UNHEALTHY"
    a.status = 200
    wait_health(g, a.address, "HEALTHY")
    wait_until(lambda: who(g) == (200, "a"), what="a back in rotation")


def test_passive_tcp_failures_and_timeouts_with_retries(gateway, upstream):
    a, b = upstream("a"), upstream("b")
    g = gateway(workers=2)
    setup(g, [a, b], {"passive": {"unhealthy": {"tcp_failures": 2, "timeouts": 1}}})
    b.stop()
    # Refused connections are retried on the other target: the client sees no error.
    assert [who(g)[0] for _ in range(10)] == [200] * 10
    assert health(g)[b.address] == "UNHEALTHY"
    assert g.admin("PUT", f"/upstreams/hc_up/targets/{b.address}/healthy")[0] == 204
    b2 = upstream("b", port=b.port)
    assert g.admin("PATCH", "/services/hc_svc", {"read_timeout": 300})[0] == 200
    wait_until(lambda: who(g) == (200, "b"), what="b serving again")
    b2.delay = 1.0
    # A read timeout on an idempotent request is retried as well; one timeout ejects b.
    assert [who(g) for _ in range(6)] == [(200, "a")] * 6
    assert health(g)[b.address] == "UNHEALTHY"


def test_manual_set_on_weight_zero_target_leaves_no_state(gateway, upstream):
    a, b = upstream("a"), upstream("b")
    g = gateway(workers=1)
    setup(g, [a, b], PASSIVE_ONLY)
    assert g.admin("PATCH", f"/upstreams/hc_up/targets/{b.address}", {"weight": 0})[0] == 200
    assert health(g)[b.address] == "HEALTHCHECKS_OFF"
    assert g.admin("PUT", f"/upstreams/hc_up/targets/{b.address}/unhealthy")[0] == 204
    assert health(g)[b.address] == "HEALTHCHECKS_OFF"
    assert {who(g) for _ in range(6)} == {(200, "a")}
    assert g.admin("PATCH", f"/upstreams/hc_up/targets/{b.address}", {"weight": 100})[0] == 200
    assert health(g)[b.address] == "HEALTHY"
    assert {n for _, n in (who(g) for _ in range(6))} == {"a", "b"}
