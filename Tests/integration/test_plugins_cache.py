"""proxy-cache on the real proxy path: Kong's Get Started "proxy caching" chapter and
spec/03-plugins/31-proxy-cache/02-access_spec.lua, 04-invalidations / api scenarios; the cache is
the node's shared memory, so an entry stored through one worker is a Hit on the other."""
import json
import socket
import time

from conftest import TIMEOUT, add_route, wait_until


def raw_exchange(g, path, headers=None):
    """One request on its own connection (Connection: close): the whole response's bytes."""
    s = socket.create_connection(("127.0.0.1", g.proxy_port), timeout=TIMEOUT)
    h = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{h}\r\n".encode())
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
    return data


def raw_get(g, path, headers=None):
    """One request on its own connection: (status, headers dict (lower-case names), body)."""
    head, _, body = raw_exchange(g, path, headers).partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    hs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hs.setdefault(k.strip().lower(), v.strip())
    return int(lines[0].split(" ")[1]), hs, body


def test_get_started_proxy_cache_across_workers(gateway, upstream):
    g = gateway(workers=2)
    up = upstream("u")
    add_route(g, up, "/mock")
    s, p, _ = g.admin("POST", "/plugins", {"name": "proxy-cache", "config": {
        "request_method": ["GET"], "response_code": [200], "content_type": ["application/json"],
        "cache_ttl": 30, "strategy": "memory"}})
    assert s == 201, p
    st, h, body = raw_get(g, "/mock/anything")
    assert st == 200 and h["x-cache-status"] == "Miss"
    key = h["x-cache-key"]
    assert len(key) == 64
    hits_before = up.hits
    # New connections: SO_REUSEPORT spreads them over both workers; every one is a Hit.
    for _ in range(12):
        st, h2, body2 = raw_get(g, "/mock/anything")
        assert st == 200 and h2["x-cache-status"] == "Hit" and h2["x-cache-key"] == key
        assert body2 == body
        assert int(h2["age"]) >= 0 and h2["content-type"] == "application/json"
    assert up.hits == hits_before
    # Admin API: read, purge by plugin and key, then a Miss.
    s, e, _ = g.admin("GET", f"/proxy-cache/{key}")
    assert s == 200 and e["status"] == 200 and e["body_len"] == len(body)
    assert g.admin("DELETE", f"/proxy-cache/{p['id']}/caches/{key}")[0] == 204
    assert g.admin("GET", f"/proxy-cache/{key}")[0] == 404
    assert raw_get(g, "/mock/anything")[1]["x-cache-status"] == "Miss"
    assert g.admin("DELETE", f"/proxy-cache/{key}")[0] == 204
    assert g.admin("DELETE", f"/proxy-cache/{key}")[0] == 404
    assert raw_get(g, "/mock/anything")[1]["x-cache-status"] == "Miss"
    assert g.admin("DELETE", "/proxy-cache")[0] == 204
    assert raw_get(g, "/mock/anything")[1]["x-cache-status"] == "Miss"
    assert g.admin("GET", "/proxy-cache/" + "0" * 64)[0] == 404
    assert g.admin("GET", "/proxy-cache/not-a-key")[0] == 404


def test_bypass_and_keys(gateway, upstream):
    g = gateway(workers=1)
    up = upstream("u")
    add_route(g, up, "/c")
    assert g.admin("POST", "/plugins", {"name": "proxy-cache", "config": {"strategy": "memory"}})[0] == 201
    assert raw_get(g, "/c?x=1")[1]["x-cache-status"] == "Miss"
    assert raw_get(g, "/c?x=1")[1]["x-cache-status"] == "Hit"
    assert raw_get(g, "/c?x=2")[1]["x-cache-status"] == "Miss", "query args are part of the key"
    up.status = 500
    assert raw_get(g, "/c/500")[1]["x-cache-status"] == "Bypass"
    up.status = 200
    s = socket.create_connection(("127.0.0.1", g.proxy_port), timeout=TIMEOUT)
    s.sendall(b"POST /c HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    assert b"X-Cache-Status: Bypass" in s.recv(65536)
    s.close()


def test_invalid_configs_are_refused(gateway):
    g = gateway(workers=1)
    for cfg in ({}, {"strategy": "redis"}, {"strategy": "memory", "response_code": [99]},
                {"strategy": "memory", "request_method": ["DELETE"]}):
        s, b, _ = g.admin("POST", "/plugins", {"name": "proxy-cache", "config": cfg})
        assert s == 400, (cfg, b)


def test_hit_carries_this_requests_rate_limit_headers(gateway, upstream):
    """A Hit is written directly with rate-limiting's headers of this request (never the stored ones),
    exactly one of each header, and a body the length of Content-Length."""
    g = gateway(workers=1)
    up = upstream("u")
    add_route(g, up, "/rl")
    assert g.admin("POST", "/plugins", {"name": "rate-limiting", "config": {"minute": 1000}})[0] == 201
    assert g.admin("POST", "/plugins", {"name": "proxy-cache", "config": {
        "content_type": ["application/json"], "strategy": "memory"}})[0] == 201
    wait_until(lambda: raw_get(g, "/rl/anything")[1].get("x-cache-status") in ("Miss", "Hit"))
    remaining = []
    for _ in range(3):
        head, _, body = raw_exchange(g, "/rl/anything").partition(b"\r\n\r\n")
        names = [line.split(":", 1)[0].lower() for line in head.decode().split("\r\n")[1:]]
        assert len(names) == len(set(names)) or names.count("set-cookie") > 1, names
        hs = {line.split(":", 1)[0].lower(): line.split(":", 1)[1].strip() for line in head.decode().split("\r\n")[1:]}
        assert hs["x-cache-status"] == "Hit" and int(hs["content-length"]) == len(body)
        assert "date" in hs and hs["connection"] == "close" and "x-kong-request-id" in hs
        remaining.append(int(hs["x-ratelimit-remaining-minute"]))
        assert int(hs["ratelimit-remaining"]) == remaining[-1]
    assert remaining[0] > remaining[1] > remaining[2]
