"""Bad input for the plugins: invalid configs are refused with Kong's 400 and field errors and nothing is
stored; huge or malformed credentials give 401/400, never a 5xx or a crash; a full rate-limit counter table
and a tiny proxy cache keep answering (fault_tolerant, LRU eviction, oversized responses relayed uncached)."""
import base64
import http.client
import json
import socket

import pytest

from conftest import TIMEOUT, add_route, http_response


def refused(g, body):
    s, b, _ = g.admin("POST", "/plugins", body)
    assert s == 400, (body, s, b)
    assert b["code"] == 2 and b["name"] == "schema violation", b
    return b


def test_invalid_configs_get_field_errors_and_store_nothing(gateway):
    g = gateway(workers=1)
    b = refused(g, {"name": "rate-limiting", "config": {}})
    assert b["fields"]["@entity"] == ["at least one of these fields must be non-empty: 'config.second', "
                                      "'config.minute', 'config.hour', 'config.day', 'config.month', 'config.year'"]
    b = refused(g, {"name": "rate-limiting", "config": {"second": 20, "hour": 10}})
    assert b["fields"]["config"] == "The limit for hour(10.0) cannot be lower than the limit for second(20.0)"
    b = refused(g, {"name": "rate-limiting", "config": {"minute": 5, "limit_by": "header"}})
    assert b["fields"]["config"]["header_name"] == "required field missing"
    b = refused(g, {"name": "rate-limiting", "config": {"hour": 0}})
    assert b["fields"]["config"]["hour"] == "value must be greater than 0"
    b = refused(g, {"name": "rate-limiting", "config": {"hour": 5, "policy": "bogus"}})
    assert "policy" in b["fields"]["config"]
    b = refused(g, {"name": "rate-limiting", "config": {"hour": 5, "nope": 1}})
    assert b["fields"]["config"] == {"nope": "unknown field"}
    b = refused(g, {"name": "rate-limiting", "config": {"hour": 5}, "bogus": 1})
    assert b["fields"] == {"bogus": "unknown field"}
    for bad in ("bad name", "a:b", "", "ключ"):
        b = refused(g, {"name": "key-auth", "config": {"key_names": [bad]}})
        assert "key_names" in b["fields"]["config"], (bad, b)
    b = refused(g, {"name": "key-auth", "config": {"key_names": ["bad name"]}})
    assert ("bad header name 'bad name', allowed characters are A-Z, a-z, 0-9, '_', and '-'"
            in json.dumps(b["fields"]["config"]["key_names"]))
    b = refused(g, {"name": "acl", "config": {"allow": ["a"], "deny": ["b"]}})
    assert b["fields"]["@entity"] == ["exactly one of these fields must be non-empty: 'config.allow', 'config.deny'"]
    for cfg in ({}, {"allow": []}, {"deny": []}):
        b = refused(g, {"name": "acl", "config": cfg})
        assert b["fields"]["@entity"] == ["at least one of these fields must be non-empty: 'config.allow', 'config.deny'"]
    b = refused(g, {"name": "cors", "config": {"origins": ["(unclosed"]}})
    assert "'(unclosed' is not a valid regex" in json.dumps(b["fields"]["config"]["origins"])
    b = refused(g, {"name": "cors", "config": {"max_age": "x"}})
    assert b["fields"]["config"]["max_age"] == "expected a number"
    b = refused(g, {"name": "proxy-cache", "config": {}})
    assert b["fields"]["config"]["strategy"] == "required field missing"
    b = refused(g, {"name": "proxy-cache", "config": {"strategy": "redis"}})
    assert "strategy" in b["fields"]["config"]
    for cfg in ({"response_code": [99]}, {"request_method": ["DELETE"]}, {"cache_ttl": 0}):
        b = refused(g, {"name": "proxy-cache", "config": dict(cfg, strategy="memory")})
        assert list(cfg)[0] in b["fields"]["config"], (cfg, b)
    b = refused(g, {"name": "basic-auth", "config": {"nope": True}})
    assert b["fields"]["config"] == {"nope": "unknown field"}
    b = refused(g, {"name": "no-such-plugin"})
    assert "name" in b["fields"]
    # Nothing was stored, and PATCH with a bad config leaves the stored one untouched.
    assert g.admin("GET", "/plugins")[1]["data"] == []
    s, p, _ = g.admin("POST", "/plugins", {"name": "rate-limiting", "config": {"hour": 5}})
    assert s == 201, p
    s, b, _ = g.admin("PATCH", f"/plugins/{p['id']}", {"config": {"second": 10}})
    assert s == 400, b
    s, b, _ = g.admin("PATCH", f"/plugins/{p['id']}", {"config": {"limit_by": "header"}})
    assert s == 400, b
    assert g.admin("GET", f"/plugins/{p['id']}")[1]["config"] == p["config"]


# Kong's Admin API answers element errors as a JSON array (spec/03-plugins/09-key-auth/02-access_spec.lua:
# fields.config.key_names[1]; 31-proxy-cache/02-access_spec.lua: fields.config.response_code == {msg}).
@pytest.mark.parametrize("name,field,value,message", [
    ("key-auth", "key_names", ["bad name"],
     "bad header name 'bad name', allowed characters are A-Z, a-z, 0-9, '_', and '-'"),
    ("proxy-cache", "response_code", [99], "value should be between 100 and 900"),
    ("cors", "origins", ["(unclosed"], "'(unclosed' is not a valid regex"),
])
def test_array_element_errors_are_arrays_as_in_kong(gateway, name, field, value, message):
    g = gateway(workers=1)
    cfg = {field: value}
    if name == "proxy-cache":
        cfg["strategy"] = "memory"
    b = refused(g, {"name": name, "config": cfg})
    assert b["fields"]["config"][field] == [message], b


# Kong: len_min = 1, 'length must be at least 1' (spec/03-plugins/31-proxy-cache/01-schema_spec.lua).
def test_proxy_cache_empty_response_code_refused(gateway):
    g = gateway(workers=1)
    b = refused(g, {"name": "proxy-cache", "config": {"strategy": "memory", "response_code": []}})
    assert b["fields"]["config"]["response_code"] == "length must be at least 1"


def raw(g, head_bytes):
    """Sends raw request bytes on a new connection; returns (status, whole response)."""
    s = socket.create_connection(("127.0.0.1", g.proxy_port), timeout=TIMEOUT)
    s.sendall(head_bytes)
    data = b""
    while True:
        try:
            d = s.recv(65536)
        except ConnectionResetError:
            break
        if not d:
            break
        data += d
    s.close()
    assert data.startswith(b"HTTP/1.1 "), data[:200]
    return int(data.split(b" ", 2)[1]), data


def test_malformed_credentials_never_5xx(gateway, upstream):
    g = gateway(workers=2)
    up = upstream("u")
    add_route(g, up, "/k")
    add_route(g, up, "/b")
    routes = {r["paths"][0]: r["id"] for r in g.admin("GET", "/routes")[1]["data"]}
    assert g.admin("POST", f"/routes/{routes['/k']}/plugins", {"name": "key-auth"})[0] == 201
    assert g.admin("POST", f"/routes/{routes['/b']}/plugins", {"name": "basic-auth"})[0] == 201
    assert g.admin("POST", "/consumers", {"username": "bob"})[0] == 201
    assert g.admin("POST", "/consumers/bob/key-auth", {"key": "good"})[0] == 201
    assert g.admin("POST", "/consumers/bob/basic-auth", {"username": "bob", "password": "pw"})[0] == 201
    pids = sorted(g.worker_pids())
    hits = up.hits

    def b64(x):
        return base64.b64encode(x).decode()

    cases = [
        ("/k", "apikey", "x" * 8192),
        ("/k", "apikey", "x" * 6000),
        ("/k", "apikey", " "),
        ("/k", "apikey", "good\tgood"),
        ("/b", "Authorization", "x" * 8192),
        ("/b", "Authorization", "Basic " + "A" * 6000),
        ("/b", "Authorization", "Basic !!!!****"),
        ("/b", "Authorization", "Basic " + b64(b"bobpw")),          # no colon
        ("/b", "Authorization", "Basic " + b64(b":")),
        ("/b", "Authorization", "Basic " + b64(b"\xff\xfe\x00:\x00\x01")),
        ("/b", "Authorization", "Basic " + b64(b"bob:" + b"p" * 5000)),
        ("/b", "Authorization", "Basic"),
        ("/b", "Authorization", "Basic ="),
        ("/b", "Authorization", "Bearer abc"),
        ("/b", "Proxy-Authorization", "Basic ###"),
    ]
    for path, name, value in cases:
        st, data = raw(g, f"GET {path} HTTP/1.1\r\nHost: t\r\n{name}: {value}\r\nConnection: close\r\n\r\n".encode())
        assert st in (400, 401, 431, 494), (name, value[:40], st, data[:300])
    # Binary bytes (obs-text, NUL, bare CR) in the values.
    for path, name in (("/k", b"apikey"), ("/b", b"Authorization")):
        for value in (b"\xff\xfe\xfd", b"Basic \x80\x81", b"a\x00b", b"a\rb", b"\x7f" * 100):
            st, data = raw(g, b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\n" + name + b": " + value +
                           b"\r\nConnection: close\r\n\r\n")
            assert st in (400, 401), (name, value, st, data[:300])
    for q in ("apikey=%00%ff", "apikey=" + "%41" * 2000, "apikey=%zz", "apikey[]=good", "apikey"):
        st, data = raw(g, f"GET /k?{q} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        assert st in (400, 401), (q[:40], st, data[:300])
    assert up.hits == hits, "no malformed credential was let through"
    # The workers kept serving: same pids, good credentials still work, no crash logged.
    assert g.get("/k", headers={"apikey": "good"})[0] == 200
    assert g.get("/b", headers={"Authorization": "Basic " + b64(b"bob:pw")})[0] == 200
    assert sorted(g.worker_pids()) == pids
    log = g.log()
    assert "killed by signal" not in log and "exited on signal" not in log, log[-2000:]


def test_counters_size_minimum(gateway):
    g = gateway(workers=1, start=False, rate_limiting_counters_size="32k")
    r = g.cli("start", "-c", g.conf, "-p", g.prefix)
    assert r.returncode != 0 and "rate_limiting_counters_size" in r.stdout + r.stderr


def test_full_counter_table(gateway, upstream):
    """64k of counters (the minimum): many distinct identifiers fill it; fault_tolerant (default) keeps
    answering 200 without rate-limit headers, fault_tolerant=false answers 500."""
    g = gateway(workers=2, rate_limiting_counters_size="64k")
    up = upstream("u")
    add_route(g, up, "/rl")
    s, p, _ = g.admin("POST", "/plugins", {"name": "rate-limiting", "config": {
        "limit_by": "header", "header_name": "X-Id", "hour": 100, "day": 100, "month": 100, "year": 100}})
    assert s == 201, p
    pids = sorted(g.worker_pids())
    conn = http.client.HTTPConnection("127.0.0.1", g.proxy_port, timeout=TIMEOUT)

    def req(ident):
        conn.request("GET", "/rl", headers={"X-Id": ident})
        r = conn.getresponse()
        return r.status, r.read(), {k.lower(): v for k, v in r.getheaders()}

    full_at = None
    for i in range(6000):
        st, body, h = req(f"id-{i}")
        assert st == 200, (i, st, body)
        if "x-ratelimit-limit-hour" not in h:
            full_at = i
            assert not any(k.startswith(("x-ratelimit", "ratelimit")) for k in h), h
            break
        assert h["x-ratelimit-remaining-hour"] == "99"
    assert full_at is not None and full_at > 100, full_at
    print(f"counter table full after {full_at} identifiers")
    # An identifier that has its slots keeps being counted.
    st, _, h = req("id-0")
    assert st == 200 and h["x-ratelimit-remaining-hour"] == "98"
    s, b, _ = g.admin("PATCH", f"/plugins/{p['id']}", {"config": {"fault_tolerant": False}})
    assert s == 200, b
    errors = 0
    for i in range(full_at + 1, full_at + 2000):
        st, body, h = req(f"id-{i}")
        if st == 500:
            assert json.loads(body)["message"] == "An unexpected error occurred"
            assert not any(k.startswith(("x-ratelimit", "ratelimit")) for k in h), h
            errors += 1
            if errors == 5:
                break
        else:
            assert st == 200 and "x-ratelimit-limit-hour" in h, (i, st, h)
    assert errors == 5
    conn.close()
    assert g.get("/rl", headers={"X-Id": "id-0"})[0] == 200
    assert sorted(g.worker_pids()) == pids
    assert "killed by signal" not in g.log()


def test_tiny_proxy_cache_evicts_lru_and_bypasses_oversized(gateway, raw_upstream):
    g = gateway(workers=2, proxy_cache_size="1m", proxy_cache_max_entry_size="16k")

    def handler(c, req, up):
        n = 1500
        if "n=" in req["target"]:
            n = int(req["target"].split("n=")[1].split("&")[0])
        body = (req["target"].encode() + b"|") * (n // (len(req["target"]) + 1) + 1)
        c.sendall(http_response(200, body[:n], {"Content-Type": "application/json"}, chunked="chunked" in req["target"],
                                chunk_size=4096))
        return True

    up = raw_upstream(handler)
    add_route(g, up, "/c")
    s, p, _ = g.admin("POST", "/plugins", {"name": "proxy-cache", "config": {"strategy": "memory", "cache_ttl": 300}})
    assert s == 201, p
    conn = http.client.HTTPConnection("127.0.0.1", g.proxy_port, timeout=TIMEOUT)

    def get(target):
        conn.request("GET", target)
        r = conn.getresponse()
        return r.status, r.read(), {k.lower(): v for k, v in r.getheaders()}

    assert get("/c?k=A")[2]["x-cache-status"] == "Miss"
    assert get("/c?k=B")[2]["x-cache-status"] == "Miss"
    st, body_a, h = get("/c?k=A")
    assert st == 200 and h["x-cache-status"] == "Hit"
    # ~1 MiB of 1 KiB chunks, 2 chunks per entry: 1200 entries overflow it several times.
    for i in range(1200):
        st, body, h = get(f"/c?k={i}")
        assert st == 200 and h["x-cache-status"] == "Miss" and len(body) == 1500, (i, st, h)
        if i % 25 == 0:
            st, b2, h2 = get("/c?k=A")  # kept recently used
            assert st == 200 and h2["x-cache-status"] == "Hit" and b2 == body_a, (i, h2)
    assert get("/c?k=A")[2]["x-cache-status"] == "Hit"
    assert get("/c?k=B")[2]["x-cache-status"] == "Miss", "the least recently used entry was evicted"
    assert get("/c?k=0")[2]["x-cache-status"] == "Miss"
    assert get("/c?k=1199")[2]["x-cache-status"] == "Hit"
    # Larger than proxy_cache_max_entry_size: relayed whole, not cached.
    hits = up.hits
    for _ in range(2):
        st, body, h = get("/c?k=big&n=100000")
        assert st == 200 and h["x-cache-status"] == "Bypass" and len(body) == 100000, (st, h, len(body))
        target = up.requests[-1]["target"].encode() + b"|"
        assert body == (target * (100000 // len(target) + 1))[:100000], body[:50]
    assert up.hits == hits + 2
    # Streamed without Content-Length (chunked): relayed whole, never cached (documented in ProxyCache.swift;
    # Kong would buffer and store it), so never a truncated Hit.
    for n in (100000, 3000):
        for _ in range(2):
            st, body, h = get(f"/c?k=chunked&n={n}")
            target = up.requests[-1]["target"].encode() + b"|"
            assert st == 200 and h["x-cache-status"] == "Bypass", (st, h)
            assert body == (target * (n // len(target) + 1))[:n], (n, len(body))
    assert up.hits == hits + 6
    conn.close()
    assert "killed by signal" not in g.log()
