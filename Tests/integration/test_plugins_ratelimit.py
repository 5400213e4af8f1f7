"""rate-limiting on the real proxy path: Kong's Get Started "rate limiting" chapter and
spec/03-plugins/23-rate-limiting/04-access_spec.lua, plus exactness across workers."""
import json
import socket
import threading

from conftest import TIMEOUT, add_route


def test_get_started_rate_limiting(gateway, upstream):
    g = gateway(workers=2)
    up = upstream("u")
    add_route(g, up, "/mock")
    s, b, _ = g.admin("POST", "/plugins", {"name": "rate-limiting", "config": {"minute": 5, "policy": "local"}})
    assert s == 201, b
    statuses = []
    for i in range(5):
        s, _, h = g.get("/mock")
        statuses.append(s)
        assert h["X-RateLimit-Limit-Minute"] == "5"
        assert h["RateLimit-Limit"] == "5"
        assert int(h["RateLimit-Reset"]) <= 60
    assert statuses == [200] * 5
    # (A minute boundary between the requests would restart the window; the test tolerates it once.)
    s, body, h = g.get("/mock")
    if s == 200:
        for _ in range(5):
            s, body, h = g.get("/mock")
    assert s == 429
    assert json.loads(body)["message"] == "API rate limit exceeded"
    assert h["X-RateLimit-Remaining-Minute"] == "0" and h["RateLimit-Remaining"] == "0"
    assert 1 <= int(h["Retry-After"]) <= 60


def test_exact_across_workers_and_connections(gateway, upstream):
    """20 per hour, 2 workers, 8 threads opening new connections concurrently: exactly 20 succeed."""
    g = gateway(workers=2)
    up = upstream("u")
    add_route(g, up, "/x")
    assert g.admin("POST", "/plugins", {"name": "rate-limiting", "config": {"hour": 20, "limit_by": "service"}})[0] == 201
    hits_before = up.hits
    results = []
    lock = threading.Lock()

    def worker():
        for _ in range(10):
            c = socket.create_connection(("127.0.0.1", g.proxy_port), timeout=TIMEOUT)
            c.sendall(b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                d = c.recv(65536)
                if not d:
                    break
                data += d
            c.close()
            with lock:
                results.append(int(data.split(b" ", 2)[1]))

    ts = [threading.Thread(target=worker) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(TIMEOUT * 3)
    assert len(results) == 80
    assert results.count(200) == 20, sorted(results)
    assert results.count(429) == 60
    assert up.hits - hits_before == 20


def test_error_code_hide_headers_and_policies(gateway, upstream):
    g = gateway(workers=1)
    up = upstream("u")
    add_route(g, up, "/e")
    rid = g.admin("GET", "/routes")[1]["data"][0]["id"]
    s, b, _ = g.admin("POST", f"/routes/{rid}/plugins", {"name": "rate-limiting", "config": {
        "hour": 1, "error_code": 404, "error_message": "Fake Not Found", "hide_client_headers": True}})
    assert s == 201, b
    s, _, h = g.get("/e")
    assert s == 200 and not any(k.lower().startswith(("x-ratelimit", "ratelimit")) for k in h)
    s, body, h = g.get("/e")
    assert s == 404 and json.loads(body)["message"] == "Fake Not Found"
    assert "Retry-After" not in h
    # cluster needs database = postgres (test_rate_limiting_cluster.py); redis: test_rate_limiting_redis.py.
    s, b, _ = g.admin("POST", "/plugins", {"name": "rate-limiting", "config": {"minute": 1, "policy": "cluster"}})
    assert s == 400 and "needs database = postgres" in b["fields"]["config"]["policy"], b
    # Kong's schema checks.
    s, b, _ = g.admin("POST", "/plugins", {"name": "rate-limiting", "config": {}})
    assert s == 400
    s, b, _ = g.admin("POST", "/plugins", {"name": "rate-limiting", "config": {"second": 20, "hour": 10}})
    assert s == 400 and "cannot be lower than the limit for second" in json.dumps(b)
