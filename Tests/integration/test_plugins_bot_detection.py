"""bot-detection through the real proxy (Kong's spec/03-plugins/21-bot-detection/01-access_spec.lua,
02-invalidations_spec.lua, 03-api_spec.lua): browsers and curl pass, Kong's built-in rules (crawlers and
client libraries) get 403 Forbidden, deny / allow lists, two User-Agent headers → 400, config changes
reach the workers (the verdict cache is per configuration), and invalid regexes are refused."""
import json
import socket

from conftest import TIMEOUT, add_route, wait_until

HELLOWORLD = "HelloWorld"
FACEBOOK = "facebookexternalhit/1.1"
CHROME = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_5) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/50.0.2661.102 Safari/537.36")


def raw(port, path, header_lines):
    """One request with exactly these header lines: (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        req = f"GET {path} HTTP/1.1\r\nHost: bot.test\r\nConnection: close\r\n" + "".join(h + "\r\n" for h in header_lines) + "\r\n"
        s.sendall(req.encode("latin-1"))
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def status(g, path, ua=None):
    return raw(g.proxy_port, path, [] if ua is None else [f"User-Agent: {ua}"])[0]


def plugin(g, path, config):
    rid = next(r["id"] for r in g.admin("GET", "/routes")[1]["data"] if r["paths"] == [path])
    s, b, _ = g.admin("POST", f"/routes/{rid}/plugins", {"name": "bot-detection", "config": config})
    assert s == 201, b
    return b


def test_access(gateway, upstream):
    g = gateway(workers=2)
    up = upstream("u")
    for p in ("/bot", "/bot2", "/bot3"):
        add_route(g, up, p)
    plugin(g, "/bot", {})
    plugin(g, "/bot2", {"deny": [HELLOWORLD]})
    plugin(g, "/bot3", {"allow": [FACEBOOK]})
    wait_until(lambda: status(g, "/bot3", "Googlebot/2.1") == 403, what="plugins active")

    # Regular requests pass.
    for ua in (None, CHROME, HELLOWORLD, "curl/7.43.0", "", "Wget/1.21"):
        assert status(g, "/bot", ua) == 200, ua
    # Bots and client libraries are blocked with Kong's 403.
    code, body = raw(g.proxy_port, "/bot", ["User-Agent: Googlebot/2.1 (+http://www.google.com/bot.html)"])
    assert code == 403 and json.loads(body)["message"] == "Forbidden", body
    for ua in (FACEBOOK, "Twitterbot/1.0", "bingbot/2.0", "Apache-HttpClient/4.5.13 (Java/11)",
               "Go-http-client/1.1", "okhttp/4.9.0", "axios/0.21.1", "Python-urllib/3.11", "python-requests-spider 1.0",
               "  Googlebot/2.1  ", "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
               "aws-sdk-go/1.44.0", "Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)"):
        assert status(g, "/bot", ua) == 403, ua
    # A UA that is not UTF-8 is still matched (byte-mode regexes, as ngx.re without "u").
    assert raw(g.proxy_port, "/bot", ["User-Agent: \xff\xfeGooglebot/2.1"])[0] == 403
    assert raw(g.proxy_port, "/bot", ["User-Agent: \xff\xfeMozilla"])[0] == 200
    # deny list.
    assert status(g, "/bot2", HELLOWORLD) == 403
    assert status(g, "/bot2", "xx HelloWorld yy") == 403        # unanchored, as ngx.re.find
    assert status(g, "/bot2", "helloworld") == 200               # case-sensitive
    assert status(g, "/bot2", CHROME) == 200
    # allow list beats the built-in rules.
    assert status(g, "/bot3", FACEBOOK) == 200
    assert status(g, "/bot3", "Googlebot/2.1") == 403
    # Two User-Agent headers: 400.
    code, body = raw(g.proxy_port, "/bot", ["User-Agent: a", "User-Agent: b"])
    assert code == 400 and json.loads(body)["message"] == "Only one User-Agent header allowed", body
    # Repeating a verdict (the cache) gives the same answers.
    for _ in range(3):
        assert status(g, "/bot", FACEBOOK) == 403 and status(g, "/bot", CHROME) == 200
    # A blocked request never reaches the upstream.
    hits = up.hits
    assert status(g, "/bot", FACEBOOK) == 403
    assert up.hits == hits


def test_global_instance_and_many_agents(gateway, upstream):
    g = gateway(workers=1)
    up = upstream("u")
    add_route(g, up, "/g")
    s, b, _ = g.admin("POST", "/plugins", {"name": "bot-detection"})
    assert s == 201, b
    wait_until(lambda: status(g, "/g", FACEBOOK) == 403, what="global plugin active")
    # More distinct agents than the verdict table holds: verdicts stay right when slots are reused.
    for i in range(5000):
        ua = f"Googlebot/{i}.0" if i % 2 else f"Mozilla/5.0 browser-{i}"
        if i % 250 == 0 or i > 4990:
            assert status(g, "/g", ua) == (403 if i % 2 else 200), ua
    for i in range(0, 5000, 97):
        ua = f"Googlebot/{i}.0" if i % 2 else f"Mozilla/5.0 browser-{i}"
        assert status(g, "/g", ua) == (403 if i % 2 else 200), ua


def test_config_changes_reach_the_workers(gateway, upstream):
    g = gateway(workers=2)
    up = upstream("u")
    add_route(g, up, "/inv")
    p = plugin(g, "/inv", {})
    wait_until(lambda: status(g, "/inv", FACEBOOK) == 403, what="plugin active")
    assert status(g, "/inv", "helloworld") == 200
    s, b, _ = g.admin("PATCH", f"/plugins/{p['id']}", {"config": {"deny": ["helloworld"]}})
    assert s == 200, b
    wait_until(lambda: status(g, "/inv", "helloworld") == 403, what="deny list applied")
    assert status(g, "/inv", FACEBOOK) == 403
    s, b, _ = g.admin("PATCH", f"/plugins/{p['id']}", {"config": {"allow": ["facebookexternalhit/1.1"]}})
    assert s == 200, b
    wait_until(lambda: status(g, "/inv", FACEBOOK) == 200, what="allow list applied")


def test_schema(gateway):
    g = gateway(workers=1)
    bad = "[[[["
    for field in ("allow", "deny"):
        s, b, _ = g.admin("POST", "/plugins", {"name": "bot-detection", "config": {field: [bad]}})
        assert s == 400, b
        assert b["name"] == "schema violation"
        assert b["fields"]["config"][field] == [f"not a valid regex: {bad}"], b
    s, b, _ = g.admin("POST", "/plugins", {"name": "bot-detection", "config": {"allow": ["ok", "(unclosed"]}})
    assert s == 400 and b["fields"]["config"]["allow"] == [None, "not a valid regex: (unclosed"], b
    s, b, _ = g.admin("POST", "/consumers", {"username": "c"})
    assert s == 201
    s, b, _ = g.admin("POST", "/plugins", {"name": "bot-detection", "consumer": {"id": b["id"]}})
    assert s == 400 and b["fields"]["consumer"] == "value must be null", b
    assert g.admin("GET", "/plugins")[1]["data"] == []
    s, b, _ = g.admin("POST", "/plugins", {"name": "bot-detection"})
    assert s == 201 and b["config"] == {"allow": [], "deny": []}, b
