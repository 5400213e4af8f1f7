"""The brief's story: service + route /mock + upstream with two targets; traffic alternates."""
import json


def test_start_health_stop(gateway):
    g = gateway(workers=2)
    r = g.cli("health", "-c", g.conf, "-p", g.prefix)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "healthy" in r.stdout
    assert len(g.worker_pids()) == 2
    r = g.stop()
    assert r.returncode == 0
    import os
    assert not os.path.exists(g.pid_file)


def test_load_balancing_story(gateway, upstream):
    a, b = upstream("a"), upstream("b")
    g = gateway(workers=1)
    assert g.admin("POST", "/upstreams", {"name": "example_upstream"})[0] == 201
    for u in (a, b):
        assert g.admin("POST", "/upstreams/example_upstream/targets", {"target": u.address})[0] == 201
    assert g.admin("POST", "/services", {"name": "example_service", "host": "example_upstream"})[0] == 201
    assert g.admin("POST", "/services/example_service/routes", {"paths": ["/mock"]})[0] == 201
    g.wait_route("/mock")
    seen = [json.loads(g.get("/mock")[1])["upstream"] for _ in range(10)]
    assert seen.count("a") == 5 and seen.count("b") == 5
