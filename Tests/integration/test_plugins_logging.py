"""file-log, tcp-log, udp-log and http-log through the real binary (Kong 3.10
spec/03-plugins/04-file-log, 01-tcp-log, 02-udp-log, 03-http-log): every entry is Kong's serializer
shape (kong.log.serialize()), parsed as JSON and checked field by field; collectors are local
listeners started by the test."""
import json
import os
import socket
import threading
import time

from conftest import TIMEOUT, add_route, wait_until


def read_lines(path):
    try:
        with open(path) as f:
            return [json.loads(line) for line in f.read().splitlines() if line]
    except FileNotFoundError:
        return []


def check_entry(e, g, up, path, status=200, method="GET"):
    """The fields Kong's serializer always writes, with this gateway's values."""
    r = e["request"]
    assert r["method"] == method
    assert r["uri"] == path
    assert r["url"] == f"http://127.0.0.1:{g.proxy_port}{path}"
    assert isinstance(r["size"], int) and r["size"] > 0
    assert isinstance(r["headers"], dict) and r["headers"]["host"] == f"127.0.0.1:{g.proxy_port}"
    assert len(r["id"]) == 32
    resp = e["response"]
    assert resp["status"] == status
    assert isinstance(resp["size"], int) and resp["size"] > 0
    assert isinstance(resp["headers"], dict)
    lat = e["latencies"]
    assert set(lat) == {"kong", "proxy", "request", "receive"}
    assert all(isinstance(v, int) for v in lat.values())
    assert e["client_ip"] == "127.0.0.1"
    assert isinstance(e["started_at"], int) and abs(e["started_at"] / 1000 - time.time()) < 60
    assert e["workspace_name"] == "default"


def test_file_log_entry_fields(gateway, upstream, tmp_path):
    g = gateway(workers=1)
    up = upstream("u")
    up.extra_headers = [("Set-Cookie", "a=1"), ("set-cookie", "b=2; Path=/")]
    add_route(g, up, "/log")
    logfile = str(tmp_path / "file.log")
    s, p, _ = g.admin("POST", "/routes/" + g.admin("GET", "/routes")[1]["data"][0]["id"] + "/plugins",
                      {"name": "file-log", "config": {"path": logfile}})
    assert s == 201, p
    assert p["config"] == {"path": logfile, "reopen": False, "custom_fields_by_lua": None}
    st, body, _ = g.get("/log/x?a=1&b&a=2&c=%20z", headers={"X-Echo": "hello", "Authorization": "Basic secret",
                                                             "Proxy-Authorization": "x"})
    assert st == 200
    entries = wait_until(lambda: read_lines(logfile), what="file-log line")
    assert len(entries) == 1
    e = entries[0]
    check_entry(e, g, up, "/log/x?a=1&b&a=2&c=%20z")
    assert e["request"]["querystring"] == {"a": ["1", "2"], "b": True, "c": " z"}
    assert e["request"]["headers"]["x-echo"] == "hello"
    assert e["request"]["headers"]["authorization"] == "REDACTED"
    assert e["request"]["headers"]["proxy-authorization"] == "REDACTED"
    assert e["upstream_uri"] == "/x?a=1&b&a=2&c=%20z"
    assert e["upstream_status"] == "200"
    assert e["source"] == "upstream"
    assert e["response"]["headers"]["x-upstream"] == "u"
    assert e["response"]["headers"]["content-type"] == "application/json"
    # ngx.resp.get_headers(): a repeated name once, with its values in order
    assert e["response"]["headers"]["set-cookie"] == ["a=1", "b=2; Path=/"]
    assert e["latencies"]["proxy"] >= 0
    t = e["tries"][0]
    assert e["tries"] == [{"balancer_start": t["balancer_start"], "balancer_start_ns": t["balancer_start_ns"],
                           "ip": "127.0.0.1", "port": up.port, "balancer_latency": 0, "balancer_latency_ns": 0}]
    assert t["balancer_start_ns"] // 1000000 == t["balancer_start"]
    assert e["route"]["paths"] == ["/log"] and e["service"]["host"] == "127.0.0.1" and e["service"]["port"] == up.port
    assert "consumer" not in e and "authenticated_entity" not in e


def test_file_log_batches_many_requests_and_generated_responses(gateway, upstream, tmp_path):
    g = gateway(workers=2)
    up = upstream("u")
    add_route(g, up, "/many")
    logfile = str(tmp_path / "many.log")
    s, p, _ = g.admin("POST", "/plugins", {"name": "file-log", "config": {"path": logfile}})
    assert s == 201, p
    for i in range(40):
        assert g.get(f"/many/{i}")[0] == 200
    # A router miss runs the global instance: a generated 404 is logged with source "kong".
    assert g.get("/nowhere")[0] == 404
    entries = wait_until(lambda: (lambda es: es if len(es) == 41 else None)(read_lines(logfile)), what="41 lines")
    uris = sorted(e["request"]["uri"] for e in entries)
    assert uris == sorted([f"/many/{i}" for i in range(40)] + ["/nowhere"])
    miss = [e for e in entries if e["request"]["uri"] == "/nowhere"][0]
    assert miss["response"]["status"] == 404 and miss["source"] == "kong"
    assert miss["latencies"]["proxy"] == -1 and miss["tries"] == [] and "upstream_status" not in miss
    assert miss["response"]["headers"]["content-type"].startswith("application/json")
    assert "route" not in miss


def test_file_log_with_auth_logs_consumer_and_401(gateway, upstream, tmp_path):
    # KONG-PLUGINS.md §9, execution model 4: key-auth refuses, the log line is still written.
    g = gateway(workers=1)
    up = upstream("u")
    add_route(g, up, "/auth")
    logfile = str(tmp_path / "auth.log")
    assert g.admin("POST", "/plugins", {"name": "key-auth"})[0] == 201
    assert g.admin("POST", "/plugins", {"name": "file-log", "config": {"path": logfile}})[0] == 201
    s, c, _ = g.admin("POST", "/consumers", {"username": "bob"})
    assert s == 201
    s, k, _ = g.admin("POST", "/consumers/bob/key-auth", {"key": "kong"})
    assert s == 201
    wait_until(lambda: g.get("/auth", headers={"apikey": "kong"})[0] == 200, what="key works")
    assert g.get("/auth")[0] == 401
    entries = wait_until(lambda: (lambda es: es if len(es) >= 2 else None)(read_lines(logfile)), what="2 lines")
    ok = [e for e in entries if e["response"]["status"] == 200][-1]
    assert ok["consumer"]["username"] == "bob" and ok["consumer"]["id"] == c["id"]
    assert ok["authenticated_entity"] == {"id": k["id"], "consumer_id": c["id"]}
    denied = entries[-1]
    assert denied["response"]["status"] == 401 and denied["source"] == "kong" and "consumer" not in denied


def test_file_log_reopen_after_rotation(gateway, upstream, tmp_path):
    g = gateway(workers=1)
    up = upstream("u")
    add_route(g, up, "/rot")
    logfile = str(tmp_path / "rot.log")
    assert g.admin("POST", "/plugins", {"name": "file-log", "config": {"path": logfile, "reopen": True}})[0] == 201
    assert g.get("/rot/1")[0] == 200
    wait_until(lambda: len(read_lines(logfile)) == 1, what="first line")
    os.rename(logfile, logfile + ".1")
    assert g.get("/rot/2")[0] == 200
    wait_until(lambda: len(read_lines(logfile)) == 1, what="line in the new file")
    assert read_lines(logfile)[0]["request"]["uri"] == "/rot/2"


def test_logging_schemas_and_refusals(gateway):
    g = gateway(workers=1)
    s, p, _ = g.admin("POST", "/plugins", {"name": "file-log", "config": {"path": "/tmp/a*b"}})
    assert s == 400 and p["fields"]["config"]["path"] == "not a valid filename", p
    s, p, _ = g.admin("POST", "/plugins", {"name": "file-log", "config": {}})
    assert s == 400 and p["fields"]["config"]["path"] == "required field missing", p
    s, p, _ = g.admin("POST", "/plugins", {"name": "file-log", "config": {
        "path": "/tmp/x.log", "custom_fields_by_lua": {"a": "return 1"}}})
    assert s == 400 and "custom_fields_by_lua" in p["fields"]["config"], p
    s, p, _ = g.admin("POST", "/plugins", {"name": "tcp-log", "config": {"host": "127.0.0.1", "port": 9, "tls": "x"}})
    assert s == 400 and "tls" in p["fields"]["config"], p
    s, p, _ = g.admin("POST", "/plugins", {"name": "tcp-log", "config": {"host": "bad host!", "port": 9}})
    assert s == 400 and "host" in p["fields"]["config"], p
    s, p, _ = g.admin("POST", "/plugins", {"name": "tcp-log", "config": {"host": "collector.example", "port": 9}})
    assert s == 201, p   # a name: resolved by the master (test_plugins_logging_delivery.py)
    assert g.admin("DELETE", f"/plugins/{p['id']}")[0] == 204
    s, p, _ = g.admin("POST", "/plugins", {"name": "udp-log", "config": {"host": "127.0.0.1"}})
    assert s == 400 and p["fields"]["config"]["port"] == "required field missing", p
    s, p, _ = g.admin("POST", "/plugins", {"name": "tcp-log", "config": {"host": "127.0.0.1", "port": 70000}})
    assert s == 400 and "port" in p["fields"]["config"], p
    s, p, _ = g.admin("POST", "/plugins", {"name": "tcp-log", "config": {"host": "127.0.0.1", "port": 9}})
    assert s == 201, p
    assert p["config"] == {"host": "127.0.0.1", "port": 9, "timeout": 10000, "keepalive": 60000, "tls": False,
                           "tls_sni": None, "custom_fields_by_lua": None}
    s, p, _ = g.admin("POST", "/plugins", {"name": "udp-log", "config": {"host": "localhost", "port": 9}})
    assert s == 201, p
    assert p["config"] == {"host": "localhost", "port": 9, "timeout": 10000, "custom_fields_by_lua": None}


def test_tcp_log_to_local_listener(gateway, upstream):
    g = gateway(workers=2)
    up = upstream("u")
    add_route(g, up, "/tcp")
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    port = srv.getsockname()[1]
    received = []
    lock = threading.Lock()

    def serve():
        srv.settimeout(TIMEOUT * 2)
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=reader, args=(c,), daemon=True).start()

    def reader(c):
        buf = b""
        while True:
            try:
                d = c.recv(65536)
            except OSError:
                return
            if not d:
                return
            buf += d
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                with lock:
                    received.append(json.loads(line))

    threading.Thread(target=serve, daemon=True).start()
    s, p, _ = g.admin("POST", "/plugins", {"name": "tcp-log", "config": {"host": "127.0.0.1", "port": port}})
    assert s == 201, p
    for i in range(20):
        assert g.get(f"/tcp/{i}", headers={"X-Echo": str(i)})[0] == 200
    wait_until(lambda: len(received) >= 20, what="20 tcp-log entries")
    with lock:
        got = list(received)
    assert sorted(e["request"]["uri"] for e in got) == sorted(f"/tcp/{i}" for i in range(20))
    for e in got:
        check_entry(e, g, up, e["request"]["uri"])
        assert e["request"]["headers"]["x-echo"] == e["request"]["uri"].rsplit("/", 1)[1]
    srv.close()


def test_udp_log_to_local_listener(gateway, upstream):
    g = gateway(workers=2)
    up = upstream("u")
    add_route(g, up, "/udp")
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    srv.settimeout(TIMEOUT)
    port = srv.getsockname()[1]
    s, p, _ = g.admin("POST", "/plugins", {"name": "udp-log", "config": {"host": "127.0.0.1", "port": port}})
    assert s == 201, p
    for i in range(10):
        assert g.get(f"/udp/{i}")[0] == 200
    got = [json.loads(srv.recvfrom(65536)[0]) for _ in range(10)]   # one datagram = one entry
    assert sorted(e["request"]["uri"] for e in got) == sorted(f"/udp/{i}" for i in range(10))
    for e in got:
        check_entry(e, g, up, e["request"]["uri"])
    srv.close()


class Collector:
    """An HTTP log server on 127.0.0.1: records every request (method, path, headers, parsed JSON body);
    `hold` makes it wait (a slow collector) until released; stop() / start() take it down and back on
    the same port."""

    def __init__(self):
        import http.server
        self.port = None
        self.requests = []
        self.lock = threading.Lock()
        self.gate = threading.Event()
        self.gate.set()
        self.status = 200
        self.server = None
        self.conns = set()
        self._http = http.server
        self.start()

    def start(self):
        col = self

        class H(self._http.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def setup(self):
                super().setup()
                with col.lock:
                    col.conns.add(self.connection)

            def _serve(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                col.gate.wait(TIMEOUT * 3)
                with col.lock:
                    col.requests.append({"method": self.command, "path": self.path,
                                         "headers": {k.lower(): v for k, v in self.headers.items()},
                                         "body": json.loads(body)})
                self.send_response(col.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_POST = do_PUT = do_PATCH = _serve

        self._http.ThreadingHTTPServer.allow_reuse_address = True
        self.server = self._http.ThreadingHTTPServer(("127.0.0.1", self.port or 0), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        """Down: no listener, and the kept-alive connections are closed (a down server keeps none)."""
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            conns, self.conns = self.conns, set()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def entries(self):
        """Every entry received, in arrival order (arrays flattened)."""
        with self.lock:
            out = []
            for r in self.requests:
                out.extend(r["body"] if isinstance(r["body"], list) else [r["body"]])
            return out


def test_http_log_single_entries_basic_auth_and_headers(gateway, upstream):
    g = gateway(workers=2)
    up = upstream("u")
    add_route(g, up, "/h")
    col = Collector()
    s, p, _ = g.admin("POST", "/plugins", {"name": "http-log", "config": {
        "http_endpoint": f"http://bob:secret@127.0.0.1:{col.port}/logs?x=1", "method": "PUT",
        "headers": {"X-Api-Key": "k1"}}})
    assert s == 201, p
    q = p["config"]["queue"]
    assert q == {"max_batch_size": 1, "max_coalescing_delay": 1, "max_entries": 10000, "max_bytes": None,
                 "max_retry_time": 60, "initial_retry_delay": 0.01, "max_retry_delay": 60, "concurrency_limit": 1}
    assert p["config"]["content_type"] == "application/json" and p["config"]["timeout"] == 10000
    for i in range(6):
        assert g.get(f"/h/{i}")[0] == 200
    wait_until(lambda: len(col.entries()) == 6, what="6 entries")
    for r in col.requests:
        assert r["method"] == "PUT" and r["path"] == "/logs?x=1"
        assert r["headers"]["authorization"] == "Basic Ym9iOnNlY3JldA=="
        assert r["headers"]["x-api-key"] == "k1"
        assert r["headers"]["content-type"] == "application/json"
        assert isinstance(r["body"], dict)   # max_batch_size 1: one object per request
    assert sorted(e["request"]["uri"] for e in col.entries()) == sorted(f"/h/{i}" for i in range(6))
    for e in col.entries():
        check_entry(e, g, up, e["request"]["uri"])
    col.stop()


def test_http_log_refusals(gateway):
    g = gateway(workers=1)
    for endpoint, field_msg in [("ftp://127.0.0.1:9/x", "scheme"), ("127.0.0.1/x", "missing scheme in url")]:
        s, p, _ = g.admin("POST", "/plugins", {"name": "http-log", "config": {"http_endpoint": endpoint}})
        assert s == 400 and field_msg in p["fields"]["config"]["http_endpoint"], p
    s, p, _ = g.admin("POST", "/plugins", {"name": "http-log", "config": {
        "http_endpoint": "http://127.0.0.1:9/x", "headers": {"Host": "x"}}})
    assert s == 400 and p["fields"]["config"]["headers"] == "cannot contain 'Host' header", p
    s, p, _ = g.admin("POST", "/plugins", {"name": "http-log", "config": {
        "http_endpoint": "http://a:b@127.0.0.1:9/x", "headers": {"Authorization": "x"}}})
    assert s == 400 and "user info" in p["fields"]["config"], p
    s, p, _ = g.admin("POST", "/plugins", {"name": "http-log", "config": {
        "http_endpoint": "http://127.0.0.1:9/x", "queue": {"concurrency_limit": 2}}})
    assert s == 400 and "concurrency_limit" in p["fields"]["config"]["queue"], p


def test_http_log_slow_then_down_then_back(gateway, upstream):
    """Batches arrive in order and none is lost while the queue has room; the proxied requests never
    wait for the collector."""
    g = gateway(workers=1)
    up = upstream("u")
    add_route(g, up, "/b")
    col = Collector()
    s, p, _ = g.admin("POST", "/plugins", {"name": "http-log", "config": {
        "http_endpoint": f"http://127.0.0.1:{col.port}/bulk", "queue": {
            "max_batch_size": 5, "max_coalescing_delay": 0.1, "initial_retry_delay": 0.05, "max_retry_delay": 0.2}}})
    assert s == 201, p
    sent = []
    # Slow: the collector holds the first batch; requests still complete.
    col.gate.clear()
    for i in range(8):
        assert g.get(f"/b/slow{i}")[0] == 200
        sent.append(f"/b/slow{i}")
    col.gate.set()
    wait_until(lambda: len(col.entries()) == 8, what="slow entries")
    # Down: connection refused, the batches are retried with back-off.
    col.stop()
    for i in range(12):
        assert g.get(f"/b/down{i}")[0] == 200
        sent.append(f"/b/down{i}")
    assert len(col.entries()) == 8
    # Back: everything queued arrives, in order, once.
    col.start()
    wait_until(lambda: len(col.entries()) == 20, what="all entries after the collector is back")
    time.sleep(0.3)
    got = [e["request"]["uri"] for e in col.entries()]
    assert got == sent
    assert all(isinstance(r["body"], list) and 1 <= len(r["body"]) <= 5 for r in col.requests)
    assert any(len(r["body"]) > 1 for r in col.requests)   # batched
    col.stop()


def test_http_log_full_queue_drops_oldest_and_counts(gateway, upstream):
    g = gateway(workers=1)
    up = upstream("u")
    add_route(g, up, "/d")
    col = Collector()
    col.stop()   # down from the start
    s, p, _ = g.admin("POST", "/plugins", {"name": "http-log", "config": {
        "http_endpoint": f"http://127.0.0.1:{col.port}/d", "queue": {
            "max_entries": 3, "initial_retry_delay": 0.05, "max_retry_delay": 0.1}}})
    assert s == 201, p
    for i in range(10):
        assert g.get(f"/d/{i}")[0] == 200
    wait_until(lambda: "queue full, dropping old entries" in g.log(), what="drop reported")
    col.start()
    wait_until(lambda: len(col.entries()) >= 3, what="surviving entries")
    time.sleep(0.5)
    got = [e["request"]["uri"] for e in col.entries()]
    # At most max_entries survive (the batch being retried, then the newest); the newest is never dropped.
    assert len(got) == 3 and got[-1] == "/d/9" and got[-2] == "/d/8"
    assert got == sorted(got, key=lambda u: int(u.rsplit("/", 1)[1]))
    assert "entries dropped or lost" in g.log() or "queue full" in g.log()
    col.stop()


def test_json_access_log_is_the_serializer_entry(gateway, upstream, tmp_path):
    """proxy_access_log_format = json: the access log and file-log write the same entry (one code path)."""
    g = gateway(workers=1, proxy_access_log_format="json")
    up = upstream("u")
    add_route(g, up, "/j")
    logfile = str(tmp_path / "j.log")
    assert g.admin("POST", "/plugins", {"name": "file-log", "config": {"path": logfile}})[0] == 201
    wait_until(lambda: g.get("/j/warm")[0] == 200 and read_lines(logfile), what="plugin active")
    assert g.get("/j/1?q=2", headers={"Authorization": "Bearer t"})[0] == 200
    assert g.get("/none")[0] == 404

    def access():
        try:
            with open(os.path.join(g.prefix, "logs", "access.log")) as f:
                return [json.loads(line) for line in f.read().splitlines() if line]
        except FileNotFoundError:
            return []

    plugin_lines = wait_until(lambda: (lambda es: es if any(e["request"]["uri"] == "/none" for e in es) else None)(read_lines(logfile)),
                              what="file-log lines")
    access_lines = wait_until(lambda: (lambda es: es if any(e["request"]["uri"] == "/none" for e in es) else None)(access()),
                              what="access-log lines (flushed every second)")
    by_id = {e["request"]["id"]: e for e in access_lines}
    for e in plugin_lines:
        assert by_id[e["request"]["id"]] == e
    one = [e for e in access_lines if e["request"]["uri"] == "/j/1?q=2"][0]
    check_entry(one, g, up, "/j/1?q=2")
    assert one["request"]["headers"]["authorization"] == "REDACTED"


def test_json_access_log_without_plugins(gateway, upstream):
    g = gateway(workers=1, proxy_access_log_format="json")
    up = upstream("u")
    add_route(g, up, "/k")
    assert g.get("/k/1")[0] == 200

    def access():
        try:
            with open(os.path.join(g.prefix, "logs", "access.log")) as f:
                return [json.loads(line) for line in f.read().splitlines() if line]
        except FileNotFoundError:
            return []

    lines = wait_until(lambda: [e for e in access() if e["request"]["uri"] == "/k/1"], what="access-log line")
    e = lines[0]
    check_entry(e, g, up, "/k/1")
    assert e["upstream_status"] == "200" and e["route"]["paths"] == ["/k"] and e["source"] == "upstream"


def test_access_log_format_is_validated(gateway):
    g = gateway(workers=1, start=False, proxy_access_log_format="xml")
    r = g.cli("check", g.conf)
    assert r.returncode != 0 and "proxy_access_log_format" in (r.stdout + r.stderr)
