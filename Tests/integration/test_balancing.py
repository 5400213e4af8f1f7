"""Issue "Upstreams and targets": the ring-balancer end to end through the real binary (KONG.md §1.3-1.4, §4).

Every request goes on a new connection (conftest Gateway.get), so with several workers the kernel's
SO_REUSEPORT spreads them over the workers."""
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import wait_until


def who(g, path="/lb", headers=None):
    st, body, _ = g.get(path, headers=headers)
    assert st == 200, (st, body)
    return json.loads(body)["upstream"]


def setup(g, targets, upstream=None, path="/lb"):
    """upstream named `ex_up` with `targets` [(Upstream, weight)], service host = upstream, route `path`."""
    up = {"name": "ex_up"}
    up.update(upstream or {})
    st, body, _ = g.admin("POST", "/upstreams", up)
    assert st == 201, body
    for u, w in targets:
        st, body, _ = g.admin("POST", "/upstreams/ex_up/targets", {"target": u.address, "weight": w})
        assert st == 201, body
    assert g.admin("POST", "/services", {"name": "ex_svc", "host": "ex_up"})[0] == 201
    assert g.admin("POST", "/services/ex_svc/routes", {"name": "ex_route", "paths": [path]})[0] == 201
    g.wait_route(path)


def longest_run(seq, name):
    best = cur = 0
    for s in seq:
        cur = cur + 1 if s == name else 0
        best = max(best, cur)
    return best


def test_weights_one_worker_exact(gateway, upstream):
    a, b = upstream("a"), upstream("b")
    g = gateway(workers=1)
    setup(g, [(a, 10), (b, 30)])
    seen = [who(g) for _ in range(400)]
    assert seen.count("a") == 100 and seen.count("b") == 300
    # Smooth WRR for 1:3 is b a b b | b a b b ...: `a` never twice in a row, `b` at most 3 in a row.
    assert longest_run(seen, "a") == 1
    assert longest_run(seen, "b") <= 3


def test_weights_several_workers_within_tolerance(gateway, upstream):
    a, b = upstream("a"), upstream("b")
    g = gateway(workers=4)
    setup(g, [(a, 100), (b, 300)])
    seen = [who(g) for _ in range(400)]
    # Each worker runs its own exact cycle of 4; partial cycles cost at most one `a` per worker.
    assert 90 <= seen.count("a") <= 110, seen.count("a")
    assert seen.count("a") + seen.count("b") == 400


def test_consistent_hashing_on_header(gateway, upstream):
    ups = [upstream(n) for n in ("a", "b", "c")]
    g = gateway(workers=4)
    setup(g, [(u, 100) for u in ups],
          upstream={"hash_on": "header", "hash_on_header": "X-Key"})
    st, body, _ = g.admin("GET", "/upstreams/ex_up")
    assert body["algorithm"] == "consistent-hashing"
    mapping = {}
    for rnd in range(6):
        for k in range(20):
            t = who(g, headers={"X-Key": f"user-{k}"})
            assert mapping.setdefault(k, t) == t, f"key user-{k} went to {mapping[k]} then {t} (round {rnd})"
    assert len(set(mapping.values())) >= 2, mapping
    # No header (fallback none) → hash of "" → one single target.
    assert len({who(g) for _ in range(12)}) == 1


def test_least_connections_avoids_slow_target(gateway, upstream):
    fast, slow = upstream("fast"), upstream("slow")
    slow.delay = 0.4
    g = gateway(workers=2)
    setup(g, [(fast, 100), (slow, 100)], upstream={"algorithm": "least-connections"})
    fast.hits = slow.hits = 0

    def client(_):
        return [g.get("/lb")[0] for _ in range(12)]

    with ThreadPoolExecutor(max_workers=8) as ex:
        statuses = [s for r in ex.map(client, range(8)) for s in r]
    assert statuses == [200] * 96
    assert fast.hits + slow.hits == 96
    assert slow.hits * 3 < fast.hits, (fast.hits, slow.hits)


def test_weight_zero_gets_no_traffic(gateway, upstream):
    a, b = upstream("a"), upstream("b")
    g = gateway(workers=2)
    setup(g, [(a, 100), (b, 0)])
    assert {who(g) for _ in range(30)} == {"a"}
    assert b.hits == 0
    # Listed (Kong lists weight-0 targets too).
    st, body, _ = g.admin("GET", "/upstreams/ex_up/targets")
    assert sorted(t["weight"] for t in body["data"]) == [0, 100]


def test_target_add_and_remove_under_traffic(gateway, upstream):
    a, b, c = upstream("a"), upstream("b"), upstream("c")
    g = gateway(workers=2)
    setup(g, [(a, 100), (b, 100)])
    statuses, seen = [], []
    stop = threading.Event()

    def traffic():
        while not stop.is_set():
            st, body, _ = g.get("/lb")
            statuses.append(st)
            if st == 200:
                seen.append(json.loads(body)["upstream"])

    threads = [threading.Thread(target=traffic) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(statuses) > 30, what="traffic")
        st, body, _ = g.admin("POST", "/upstreams/ex_up/targets", {"target": c.address})
        assert st == 201, body
        wait_until(lambda: c.hits >= 5, what="new target c receiving traffic")
        assert g.admin("DELETE", f"/upstreams/ex_up/targets/{a.address}")[0] == 204
        mark = len(seen)
        time.sleep(0.3)
        wait_until(lambda: len(seen) > mark + 40, what="more traffic after removal")
        settle = len(seen)
        wait_until(lambda: len(seen) > settle + 40, what="traffic after removal settled")
        tail = seen[settle:]
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
    assert set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
    assert "a" not in tail and set(tail) == {"b", "c"}, set(tail)


def test_upstream_without_targets_503(gateway, upstream):
    g = gateway(workers=1)
    assert g.admin("POST", "/upstreams", {"name": "empty_up"})[0] == 201
    assert g.admin("POST", "/services", {"name": "s", "host": "empty_up"})[0] == 201
    assert g.admin("POST", "/services/s/routes", {"paths": ["/e"]})[0] == 201
    g.wait_route("/e", expect=503)
    st, body, _ = g.get("/e", headers={"Accept": "application/json"})
    assert st == 503
    assert json.loads(body)["message"] == "failure to get a peer from the ring-balancer"
    st, body, _ = g.get("/e")
    assert b"failure to get a peer from the ring-balancer" in body


def test_duplicate_target_409_and_default_port(gateway, upstream):
    a = upstream("a")
    g = gateway(workers=1)
    assert g.admin("POST", "/upstreams", {"name": "dup_up"})[0] == 201
    st, body, _ = g.admin("POST", "/upstreams/dup_up/targets", {"target": a.address})
    assert st == 201
    st, body, _ = g.admin("POST", "/upstreams/dup_up/targets", {"target": a.address})
    assert st == 409, body
    assert body["code"] == 5 and body["name"] == "unique constraint violation", body
    # Default port 8000: `127.0.0.1` is stored as `127.0.0.1:8000` and collides with the explicit form.
    st, body, _ = g.admin("POST", "/upstreams/dup_up/targets", {"target": "127.0.0.1"})
    assert st == 201 and body["target"] == "127.0.0.1:8000", body
    st, body, _ = g.admin("POST", "/upstreams/dup_up/targets", {"target": "127.0.0.1:8000"})
    assert st == 409, body
    st, body, _ = g.admin("POST", "/upstreams/dup_up/targets", {"target": "localhost"})
    assert st == 201 and body["target"] == "localhost:8000", body
    st, body, _ = g.admin("GET", "/upstreams/dup_up/targets/localhost:8000")
    assert st == 200 and body["target"] == "localhost:8000"
    st, body, _ = g.admin("POST", "/upstreams/dup_up/targets", {"target": "not a host!"})
    assert st == 400, body


def test_load_balancing_story_alternates(gateway, upstream):
    a, b = upstream("a"), upstream("b")
    g = gateway(workers=1)
    assert g.admin("POST", "/upstreams", {"name": "example_upstream"})[0] == 201
    for u in (a, b):
        assert g.admin("POST", "/upstreams/example_upstream/targets", {"target": u.address})[0] == 201
    assert g.admin("POST", "/services", {"name": "example_service", "host": "example_upstream"})[0] == 201
    assert g.admin("POST", "/services/example_service/routes", {"paths": ["/mock"]})[0] == 201
    g.wait_route("/mock")
    seen = [who(g, "/mock") for _ in range(20)]
    assert all(x != y for x, y in zip(seen, seen[1:])), seen
    assert seen.count("a") == 10


def test_consistent_hashing_on_cookie(gateway, upstream):
    ups = [upstream(n) for n in ("a", "b", "c")]
    g = gateway(workers=2)
    setup(g, [(u, 100) for u in ups],
          upstream={"hash_on": "cookie", "hash_on_cookie": "sess", "hash_on_cookie_path": "/lb"})
    mapping = {}
    for rnd in range(4):
        for k in range(15):
            t = who(g, headers={"Cookie": f"other=1; sess=s{k}"})
            assert mapping.setdefault(k, t) == t
    assert len(set(mapping.values())) >= 2, mapping


def test_hash_cookie_is_set_when_missing(gateway, upstream):
    ups = [upstream(n) for n in ("a", "b", "c")]
    g = gateway(workers=2)
    setup(g, [(u, 100) for u in ups],
          upstream={"hash_on": "cookie", "hash_on_cookie": "sess", "hash_on_cookie_path": "/lb"})
    st, body, hdrs = g.get("/lb")
    assert st == 200
    cookie = hdrs.get("Set-Cookie") or ""
    assert cookie.startswith("sess=") and "Path=/lb" in cookie and "HttpOnly" in cookie, hdrs
    value = cookie.split(";")[0]
    first = json.loads(body)["upstream"]
    # The request was hashed on the new cookie: sending it back reaches the same target.
    assert {who(g, headers={"Cookie": value}) for _ in range(10)} == {first}
