"""How the logging plugins deliver, through the real binary: http-log's default queue (max_batch_size 1,
one entry per POST as in Kong 3.10) sends the entries due together as pipelined HTTP/1.1 requests in
one write on a keep-alive connection (several requests per read on the collector's side), in order,
through a slow, down and back collector; a request of a train that failed is retried without
duplicating the delivered ones; tcp-log writes several entries per write. The collector here is a raw
socket server that counts the requests each recv() brought."""
import json
import socket
import threading

from conftest import TIMEOUT, add_route, wait_until


class PipelineCollector:
    """HTTP/1.1 log server on 127.0.0.1 reading raw bytes: every complete request in a recv() is
    recorded with the index of that read; the responses to one read go back in one send. `gate` held:
    responses wait (a slow collector). `status_for(path_of_entry)` chooses each status (default 200).
    stop() closes the listener and every connection; start() listens again on the same port."""

    def __init__(self, tls=None, host="127.0.0.1", port=None):
        self.tls = tls           # an ssl.SSLContext (server side): TLS on every connection
        self.host = host
        self.port = port
        self.lock = threading.Lock()
        self.requests = []       # (read index, method, path, headers, body)
        self.reads = 0
        self.gate = threading.Event()
        self.gate.set()
        self.status_for = lambda uri: 200
        self.conns = set()
        self.listener = None
        self.start()

    def start(self):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port or 0))
        s.listen(16)
        self.port = s.getsockname()[1]
        self.listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def _accept(self, s):
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            with self.lock:
                self.conns.add(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        if self.tls is not None:
            try:
                c.settimeout(TIMEOUT)
                c = self.tls.wrap_socket(c, server_side=True)
                c.settimeout(None)
            except OSError:
                c.close()
                return
        self._serve_http(c)

    def _serve_http(self, c):
        buf = b""
        try:
            while True:
                data = c.recv(1 << 20)
                if not data:
                    return
                buf += data
                with self.lock:
                    self.reads += 1
                    read = self.reads
                out = b""
                while True:
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        break
                    head = buf[:end].decode("latin-1").split("\r\n")
                    headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in head[1:])}
                    n = int(headers.get("content-length", "0"))
                    if len(buf) < end + 4 + n:
                        break
                    body = json.loads(buf[end + 4:end + 4 + n])
                    buf = buf[end + 4 + n:]
                    method, path, _ = head[0].split(" ", 2)
                    uris = [e["request"]["uri"] for e in (body if isinstance(body, list) else [body])]
                    status = max(self.status_for(u) for u in uris)
                    with self.lock:
                        self.requests.append({"read": read, "method": method, "path": path, "headers": headers,
                                              "body": body, "status": status})
                    out += f"HTTP/1.1 {status} X\r\nContent-Length: 2\r\n\r\nok".encode()
                if out:
                    self.gate.wait(TIMEOUT * 3)
                    c.sendall(out)
        except OSError:
            return
        finally:
            c.close()

    def stop(self):
        try:
            self.listener.shutdown(socket.SHUT_RDWR)   # wakes the accept() (close alone would not)
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            conns, self.conns = self.conns, set()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def delivered(self):
        """Entries of the requests answered 2xx, in arrival order (arrays flattened)."""
        with self.lock:
            out = []
            for r in self.requests:
                if r["status"] < 300:
                    out.extend(r["body"] if isinstance(r["body"], list) else [r["body"]])
            return [e["request"]["uri"] for e in out]

    def most_per_read(self):
        with self.lock:
            counts = {}
            for r in self.requests:
                counts[r["read"]] = counts.get(r["read"], 0) + 1
            return max(counts.values(), default=0)


def keepalive_gets(g, paths):
    """Requests on one keep-alive connection (fast and in order); every answer must be 200."""
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", g.proxy_port, timeout=TIMEOUT)
    for p in paths:
        c.request("GET", p)
        r = c.getresponse()
        r.read()
        assert r.status == 200, (p, r.status)
    c.close()


def test_http_log_single_entry_posts_are_pipelined_in_order(gateway, upstream):
    """Kong's default queue: one entry per POST; while the collector holds the first response the
    entries queue up and leave together as one train (several requests in one read), in order."""
    g = gateway(workers=1)
    up = upstream("u")
    add_route(g, up, "/t")
    col = PipelineCollector()
    s, p, _ = g.admin("POST", "/plugins", {"name": "http-log", "config": {
        "http_endpoint": f"http://127.0.0.1:{col.port}/logs", "headers": {"X-Api-Key": "k1"}}})
    assert s == 201, p
    col.gate.clear()   # slow: the first train's answer waits
    sent = [f"/t/{i}" for i in range(60)]
    keepalive_gets(g, sent)   # never delayed by the collector
    wait_until(lambda: len(col.requests) >= 1, what="the first request reaches the collector")
    col.gate.set()
    wait_until(lambda: len(col.delivered()) == 60, what="60 entries")
    assert col.delivered() == sent
    for r in col.requests:
        assert r["method"] == "POST" and r["path"] == "/logs"
        assert isinstance(r["body"], dict)   # max_batch_size 1: one object per request
        assert r["headers"]["x-api-key"] == "k1" and r["headers"]["content-type"] == "application/json"
    assert col.most_per_read() > 1, "several pipelined requests in one read"
    col.stop()


def test_http_log_trains_through_slow_down_and_back(gateway, upstream):
    """Slow, then down (refused, retried with back-off), then back: every entry arrives once, in
    order; the proxied requests never wait for the collector."""
    g = gateway(workers=1)
    up = upstream("u")
    add_route(g, up, "/s")
    col = PipelineCollector()
    s, p, _ = g.admin("POST", "/plugins", {"name": "http-log", "config": {
        "http_endpoint": f"http://127.0.0.1:{col.port}/", "queue": {
            "initial_retry_delay": 0.05, "max_retry_delay": 0.2}}})
    assert s == 201, p
    sent = [f"/s/slow{i}" for i in range(10)]
    col.gate.clear()
    keepalive_gets(g, sent)
    col.gate.set()
    wait_until(lambda: len(col.delivered()) == 10, what="slow entries")
    col.stop()
    down = [f"/s/down{i}" for i in range(25)]
    keepalive_gets(g, down)
    sent += down
    wait_until(lambda: "failed request to 127.0.0.1" in g.log(), what="the failure logged")
    assert len(col.delivered()) == 10
    col.start()
    wait_until(lambda: len(col.delivered()) == 35, what="every entry after the collector is back")
    assert col.delivered() == sent
    assert col.most_per_read() > 1
    col.stop()


def test_http_log_failed_request_of_a_train_is_retried_alone(gateway, upstream):
    """A 500 for one request of a train: the others are delivered once, the failed one is retried."""
    g = gateway(workers=1)
    up = upstream("u")
    add_route(g, up, "/f")
    col = PipelineCollector()
    fails = {"n": 0}

    def status(uri):
        if uri == "/f/3" and fails["n"] < 2:
            fails["n"] += 1
            return 500
        return 200
    col.status_for = status
    s, p, _ = g.admin("POST", "/plugins", {"name": "http-log", "config": {
        "http_endpoint": f"http://127.0.0.1:{col.port}/", "queue": {"initial_retry_delay": 0.05}}})
    assert s == 201, p
    sent = [f"/f/{i}" for i in range(8)]
    col.gate.clear()
    keepalive_gets(g, sent)
    col.gate.set()
    wait_until(lambda: len(col.delivered()) == 8, what="8 entries")
    got = col.delivered()
    assert sorted(got) == sorted(sent), got   # each once
    assert fails["n"] == 2
    assert [u for u in got if u != "/f/3"] == [u for u in sent if u != "/f/3"]
    wait_until(lambda: "returned status code 500" in g.log(), what="the failure logged")
    col.stop()


def test_tcp_log_writes_several_entries_per_write(gateway, upstream):
    g = gateway(workers=1)
    up = upstream("u")
    add_route(g, up, "/tcp")
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    srv.settimeout(TIMEOUT)
    s, p, _ = g.admin("POST", "/plugins", {"name": "tcp-log", "config": {"host": "127.0.0.1",
                                                                         "port": srv.getsockname()[1]}})
    assert s == 201, p
    sent = [f"/tcp/{i}" for i in range(30)]
    keepalive_gets(g, sent)
    c, _ = srv.accept()
    c.settimeout(TIMEOUT)
    buf, per_read = b"", []
    while buf.count(b"\n") < 30:
        d = c.recv(1 << 20)
        assert d, "connection closed early"
        per_read.append(d.count(b"\n"))
        buf += d
    got = [json.loads(line)["request"]["uri"] for line in buf.splitlines()]
    assert got == sent
    assert max(per_read) > 1
    c.close()
    srv.close()


def read_entries(path):
    try:
        with open(path) as f:
            return [json.loads(line) for line in f.read().splitlines() if line]
    except FileNotFoundError:
        return []


def test_entry_lists_every_try_and_the_gateway_response_headers(gateway, upstream, tmp_path):
    """Kong's serializer: tries[] holds every try (a refused peer: state "failed", code 502, then the
    peer that answered), upstream_status joins their statuses, and response.headers are the headers
    the client got (Via, X-Kong-*, the upstream's own)."""
    from conftest import free_port
    g = gateway(workers=1)
    up = upstream("u")
    dead = free_port()   # nothing listens: connection refused
    assert g.admin("POST", "/upstreams", {"name": "two.test"})[0] == 201
    for port in (dead, up.port):
        s, p, _ = g.admin("POST", "/upstreams/two.test/targets", {"target": f"127.0.0.1:{port}"})
        assert s == 201, p
    s, svc, _ = g.admin("POST", "/services", {"name": "two", "host": "two.test", "port": 80})
    assert s == 201, svc
    s, p, _ = g.admin("POST", "/services/two/routes", {"paths": ["/two"]})
    assert s == 201, p
    path = str(tmp_path / "tries.log")
    assert g.admin("POST", "/plugins", {"name": "file-log", "config": {"path": path}})[0] == 201
    g.wait_route("/two/x")
    for i in range(4):   # round-robin over the two targets: some requests try the dead one first
        assert g.get(f"/two/{i}")[0] == 200
    wait_until(lambda: len(read_entries(path)) >= 5, what="entries")
    entries = read_entries(path)
    retried = [e for e in entries if len(e["tries"]) == 2]
    assert retried, [e["tries"] for e in entries]
    for e in retried:
        failed, ok = e["tries"]
        assert failed["port"] == dead and failed["ip"] == "127.0.0.1"
        assert failed["state"] == "failed" and failed["code"] == 502
        assert ok["port"] == up.port and "state" not in ok and "code" not in ok
        for t in e["tries"]:
            assert isinstance(t["balancer_start"], int) and isinstance(t["balancer_start_ns"], int)
            assert t["balancer_latency"] == 0 and t["balancer_latency_ns"] == 0
            assert abs(t["balancer_start"] - e["started_at"]) < 60000
        assert failed["balancer_start"] <= ok["balancer_start"]
        assert e["upstream_status"] == "502, 200"
    for e in entries:
        if len(e["tries"]) == 1:
            assert e["upstream_status"] == "200" and "state" not in e["tries"][0]
        h = e["response"]["headers"]
        assert h["x-upstream"] == "u"   # the upstream's header
        assert h["via"].endswith("kong/3.10.0") or "kong" in h["via"], h
        assert "x-kong-upstream-latency" in h and "x-kong-proxy-latency" in h, h
        assert h["content-length"] == str(int(h["content-length"]))


def test_generated_answer_after_every_try_failed_lists_them(gateway, tmp_path):
    """Every try refused: 502 from the gateway; tries[] holds each failed try, no successful one."""
    from conftest import free_port
    g = gateway(workers=1)
    dead = free_port()
    s, svc, _ = g.admin("POST", "/services", {"name": "dead", "url": f"http://127.0.0.1:{dead}", "retries": 2})
    assert s == 201, svc
    assert g.admin("POST", "/services/dead/routes", {"paths": ["/dead"]})[0] == 201
    path = str(tmp_path / "dead.log")
    assert g.admin("POST", "/plugins", {"name": "file-log", "config": {"path": path}})[0] == 201
    wait_until(lambda: g.get("/dead")[0] == 502, what="502")
    wait_until(lambda: read_entries(path), what="an entry")
    e = read_entries(path)[-1]
    assert e["response"]["status"] == 502
    assert len(e["tries"]) == 3 and all(t["state"] == "failed" and t["code"] == 502 and t["port"] == dead
                                        for t in e["tries"])
    assert e["upstream_status"] == "502, 502, 502"
    assert "x-kong-response-latency" in e["response"]["headers"]


def test_log_hosts_by_name_resolved_by_the_master(gateway, upstream):
    """Destinations given by host name: the master resolves them (c-ares, dns_resolver) and publishes
    the addresses; before an answer exists the entries are dropped, counted and logged; an answer
    that changes moves the traffic (re-resolved on TTL)."""
    from test_dns import FakeDNS
    server = FakeDNS()
    try:
        col = PipelineCollector()
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        udp.settimeout(TIMEOUT)
        server.records["collector.test"] = [("A", "127.0.0.1", 1)]
        g = gateway(workers=1, dns_resolver=server.address)
        up = upstream("u")
        add_route(g, up, "/n")
        s, p, _ = g.admin("POST", "/plugins", {"name": "http-log", "config": {
            "http_endpoint": f"http://collector.test:{col.port}/named"}})
        assert s == 201, p
        s, p, _ = g.admin("POST", "/plugins", {"name": "udp-log", "config": {"host": "collector.test",
                                                                             "port": udp.getsockname()[1]}})
        assert s == 201, p
        s, p, _ = g.admin("POST", "/plugins", {"name": "tcp-log", "config": {"host": "nowhere.test", "port": 9}})
        assert s == 201, p
        sent = [f"/n/{i}" for i in range(5)]
        wait_until(lambda: server.count("collector.test", 1) >= 1, what="the master asks for the name")

        def delivered_all():
            keepalive_gets(g, ["/n/probe"])
            return "/n/probe" in col.delivered()
        wait_until(delivered_all, what="the name resolved and used")   # the answer is published
        keepalive_gets(g, sent)
        wait_until(lambda: all(u in col.delivered() for u in sent), what="entries to the named collector")
        r = [x for x in col.requests if x["body"]["request"]["uri"] in sent]
        assert all(x["headers"]["host"] == f"collector.test:{col.port}" and x["path"] == "/named" for x in r)
        got = set()
        while not set(sent) <= got:
            got.add(json.loads(udp.recvfrom(65536)[0])["request"]["uri"])
        # nowhere.test has no answer (NXDOMAIN): its entries are dropped, counted and logged.
        wait_until(lambda: "tcp-log nowhere.test" in g.log() and "entries dropped" in g.log(), what="drop logged")
        assert "no address for nowhere.test" in g.log()
        # The name moves (TTL 1 s): the master's next answer sends the entries to the new address.
        col2 = PipelineCollector(host="127.0.0.2", port=col.port)
        server.records["collector.test"] = [("A", "127.0.0.2", 1)]

        def moved():
            keepalive_gets(g, ["/n/moved"])
            return "/n/moved" in col2.delivered()
        wait_until(moved, timeout=TIMEOUT * 2, what="entries to the new address")
        udp.close()
        col.stop()
        col2.stop()
    finally:
        server.stop()


def tls_server_context(tmp_path, names):
    """A server context with a fresh self-signed certificate; the SNI names clients sent go to `names`."""
    import ssl
    import subprocess
    key, crt = str(tmp_path / "col.key"), str(tmp_path / "col.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt, "-days", "2",
                    "-subj", "/CN=collector.test"], check=True, capture_output=True, timeout=TIMEOUT * 3)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    ctx.sni_callback = lambda sock, name, c: names.append(name)
    return ctx


def test_http_log_to_an_https_collector(gateway, upstream, tmp_path):
    """https endpoints: TLS on the worker's loop (certificate not verified, as Kong), pipelined trains
    over it, SNI = the endpoint's host name; the collector down and back over TLS."""
    names = []
    col = PipelineCollector(tls=tls_server_context(tmp_path, names))
    g = gateway(workers=1)
    up = upstream("u")
    add_route(g, up, "/tls")
    s, p, _ = g.admin("POST", "/plugins", {"name": "http-log", "config": {
        "http_endpoint": f"https://localhost:{col.port}/secure", "queue": {"initial_retry_delay": 0.05,
                                                                          "max_retry_delay": 0.2}}})
    assert s == 201, p
    col.gate.clear()
    sent = [f"/tls/{i}" for i in range(30)]
    keepalive_gets(g, sent)
    wait_until(lambda: len(col.requests) >= 1, what="the first request over TLS")
    col.gate.set()
    wait_until(lambda: len(col.delivered()) == 30, what="30 entries over TLS")
    assert col.delivered() == sent
    assert col.most_per_read() > 1
    assert names and set(names) == {"localhost"}
    assert all(r["path"] == "/secure" and r["headers"]["host"] == f"localhost:{col.port}" for r in col.requests)
    col.stop()
    more = [f"/tls/down{i}" for i in range(5)]
    keepalive_gets(g, more)
    col.start()
    wait_until(lambda: len(col.delivered()) == 35, what="entries after the collector is back")
    assert col.delivered() == sent + more
    col.stop()


def test_tcp_log_over_tls_with_sni(gateway, upstream, tmp_path):
    import ssl
    names = []
    ctx = tls_server_context(tmp_path, names)
    g = gateway(workers=1)
    up = upstream("u")
    add_route(g, up, "/tt")
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    srv.settimeout(TIMEOUT)
    s, p, _ = g.admin("POST", "/plugins", {"name": "tcp-log", "config": {
        "host": "127.0.0.1", "port": srv.getsockname()[1], "tls": True, "tls_sni": "logs.example"}})
    assert s == 201, p
    assert p["config"]["tls"] is True and p["config"]["tls_sni"] == "logs.example"
    sent = [f"/tt/{i}" for i in range(10)]
    keepalive_gets(g, sent)
    c, _ = srv.accept()
    c.settimeout(TIMEOUT)
    c = ctx.wrap_socket(c, server_side=True)
    buf = b""
    while buf.count(b"\n") < 10:
        d = c.recv(1 << 20)
        assert d, "connection closed early"
        buf += d
    assert [json.loads(line)["request"]["uri"] for line in buf.splitlines()] == sent
    assert names == ["logs.example"]
    assert isinstance(c.version(), str) and c.version().startswith("TLS")
    c.close()
    srv.close()
    _ = ssl
