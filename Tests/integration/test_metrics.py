"""Issue #16 (metrics and the Status API) through the real binary: the prometheus plugin (Kong 3.10
kong/plugins/prometheus, KONG-PLUGINS.md §6), its shared-memory counters (exact across workers and
reloads), GET /metrics on the Admin API and status_listen, and the Status API (KONG-TLS-CLUSTER.md B).
Ports scenarios of Kong's spec/03-plugins/26-prometheus/{02-access,04-status_api,05-metrics}_spec.lua
and spec/02-integration/08-status_api/{01-core_routes,05-ready}_spec.lua."""
import json
import os
import re
import signal
import threading
import urllib.request
import urllib.error

from conftest import TIMEOUT, wait_until

SERIES = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def unescape(v):
    return re.sub(r'\\(.)', lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), v)


def parse(text):
    """{(name, frozenset(labels.items())): float}; asserts every series line parses."""
    out = {}
    for line in text.split("\n"):
        if not line or line.startswith("#"):
            continue
        m = SERIES.match(line)
        assert m, f"bad exposition line: {line!r}"
        labels = {k: unescape(v) for k, v in LABEL.findall(m.group(3) or "")}
        out[(m.group(1), frozenset(labels.items()))] = float(m.group(4))
    return out


def http(port, path, method="GET", body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    h = dict(headers or {})
    if data is not None:
        h["Content-Type"] = "application/json"
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def scrape(g, status_api=False, headers=None):
    st, body, h = http(g.status_port if status_api else g.admin_port, "/metrics", headers=headers)
    assert st == 200, body
    assert h["Content-Type"] == "text/plain; charset=UTF-8"
    return parse(body.decode())


def value(m, name, **labels):
    for (n, ls), v in m.items():
        if n == name and all((k, str(x)) in ls for k, x in labels.items()):
            return v
    return None


def total(m, name, **labels):
    return sum(v for (n, ls), v in m.items() if n == name and all((k, str(x)) in ls for k, x in labels.items()))


def route_name(g, path):
    _, body, _ = g.admin("GET", "/routes")
    for r in body["data"]:
        if path in (r.get("paths") or []):
            return r.get("name") or r["id"]
    raise AssertionError(path)


ALL = {"status_code_metrics": True, "latency_metrics": True, "bandwidth_metrics": True}


def service(g, up, name, path):
    assert g.admin("POST", "/services", {"name": name, "url": f"http://{up.address}"})[0] == 201
    st, body, _ = g.admin("POST", f"/services/{name}/routes", {"name": name + "-route", "paths": [path]})
    assert st == 201, body
    g.wait_route(path)


def test_counts_exact_across_workers_and_reload(gateway, upstream):
    up = upstream("m")
    g = gateway(workers=2, status=True)
    service(g, up, "msvc", "/m")
    st, body, _ = g.admin("POST", "/plugins", {"name": "prometheus", "config": ALL})
    assert st == 201, body
    assert body["config"] == {**ALL, "per_consumer": False, "upstream_health_metrics": False, "ai_metrics": False,
                              "wasm_metrics": False}
    # In force on every worker for the next request after the 201; warm-up requests count: read a base.
    wait_until(lambda: g.get("/m")[0] == 200 and value(scrape(g), "kong_http_requests_total", service="msvc"),
               what="plugin in force")
    base = scrape(g)
    b200 = value(base, "kong_http_requests_total", service="msvc", route="msvc-route", code=200) or 0
    bcount = value(base, "kong_request_latency_ms_count", service="msvc", route="msvc-route") or 0
    n = 40
    for _ in range(n):                         # a new connection each: spread over both workers
        assert g.get("/m")[0] == 200
    m = scrape(g)
    assert value(m, "kong_http_requests_total", service="msvc", route="msvc-route", code=200, source="service",
                 workspace="default", consumer="") == b200 + n
    assert value(m, "kong_request_latency_ms_count", service="msvc", route="msvc-route", workspace="default") == bcount + n
    assert value(m, "kong_request_latency_ms_bucket", service="msvc", route="msvc-route", le="+Inf") == bcount + n
    assert value(m, "kong_upstream_latency_ms_count", service="msvc", route="msvc-route") == bcount + n
    assert value(m, "kong_kong_latency_ms_count", service="msvc", route="msvc-route") == bcount + n
    # Buckets are cumulative (never decreasing) and end at the count.
    for fam, bounds in (("kong_kong_latency_ms", [1, 2, 5, 7, 10, 15, 20, 30, 50, 75, 100, 200, 500, 750, 1000, 3000, 6000]),
                        ("kong_request_latency_ms", [25, 50, 80, 100, 250, 400, 700, 1000, 2000, 5000, 10000, 30000, 60000])):
        seq = [value(m, fam + "_bucket", service="msvc", route="msvc-route", le=b) for b in bounds] + \
              [value(m, fam + "_bucket", service="msvc", route="msvc-route", le="+Inf")]
        assert None not in seq and seq == sorted(seq), (fam, seq)
        assert seq[-1] == value(m, fam + "_count", service="msvc", route="msvc-route")
        assert value(m, fam + "_sum", service="msvc", route="msvc-route") >= 0
    assert value(m, "kong_bandwidth_bytes", service="msvc", direction="egress") > 0
    assert value(m, "kong_bandwidth_bytes", service="msvc", direction="ingress") > 0
    # The node's request counter and the per-worker series agree with what was sent.
    per_worker = {dict(ls)["pid"]: v for (nm, ls), v in m.items() if nm == "gateway_worker_requests_total"}
    assert set(per_worker) == {str(p) for p in g.worker_pids()}
    assert value(m, "kong_nginx_requests_total") >= n
    # Upstream errors count with their code; an answer of the gateway has source "kong".
    up.status = 503
    for _ in range(3):
        assert g.get("/m")[0] == 503
    up.status = 200
    m = scrape(g)
    assert value(m, "kong_http_requests_total", service="msvc", code=503, source="service") == 3
    # A reload (new workers) keeps every count: the table lives in the master's segment.
    old = set(g.worker_pids())
    g.cli("reload", "-c", g.conf, "-p", g.prefix, check=True)
    wait_until(lambda: set(g.worker_pids()).isdisjoint(old) and len(g.worker_pids()) == 2, what="new workers")
    wait_until(lambda: g.get("/m")[0] == 200, what="proxy after reload")
    before = value(scrape(g), "kong_http_requests_total", service="msvc", code=200)
    for _ in range(n):
        assert g.get("/m")[0] == 200
    after = scrape(g, status_api=True)         # the same numbers on the status listener
    assert value(after, "kong_http_requests_total", service="msvc", code=200) == before + n


def test_plugin_scoped_to_service(gateway, upstream):
    a, b = upstream("a"), upstream("b")
    g = gateway(workers=2, status=True)
    service(g, a, "scoped", "/a")
    service(g, b, "other", "/b")
    st, body, _ = g.admin("POST", "/services/scoped/plugins", {"name": "prometheus", "config": {"status_code_metrics": True}})
    assert st == 201, body
    wait_until(lambda: g.get("/a")[0] == 200 and value(scrape(g), "kong_http_requests_total", service="scoped"),
               what="scoped series")
    for _ in range(5):
        assert g.get("/b")[0] == 200
    m = scrape(g)
    assert value(m, "kong_http_requests_total", service="other") is None
    assert value(m, "kong_request_latency_ms_count", service="scoped") is None      # latency_metrics off
    # A request no route matched is not counted (Kong skips it).
    assert g.get("/nowhere")[0] == 404
    assert all(dict(ls).get("route") for (nm, ls), _ in scrape(g).items() if nm == "kong_http_requests_total")


def test_no_instance_node_gauges_only_and_admin_token(gateway, upstream):
    g = gateway(workers=2, status=True, admin_token="s3cret")
    st, body, _ = http(g.admin_port, "/metrics")
    assert st == 401
    m = scrape(g, headers={"Kong-Admin-Token": "s3cret"})
    assert value(m, "kong_datastore_reachable") == 1
    st, body, _ = http(g.admin_port, "/", headers={"Kong-Admin-Token": "s3cret"})
    node_id = json.loads(body)["node_id"]
    assert value(m, "kong_node_info", node_id=node_id, version="3.10.0") == 1
    assert value(m, "kong_nginx_connections_total", node_id=node_id, subsystem="http", state="accepted") is not None
    assert value(m, "kong_memory_lua_shared_dict_total_bytes", shared_dict="prometheus_metrics") == 5 * 1024 * 1024
    assert len([1 for (nm, _), _ in m.items() if nm == "kong_memory_workers_lua_vms_bytes"]) == 2
    assert value(m, "kong_nginx_metric_errors_total") == 0
    assert not any(nm.startswith("kong_http_requests") for (nm, _) in m)
    # The Status API needs no Admin API token.
    assert scrape(g, status_api=True)


def test_target_health_series_flip_with_active_checks(gateway, upstream):
    a, b = upstream("a"), upstream("b")
    g = gateway(workers=2, status=True)
    st, body, _ = g.admin("POST", "/upstreams", {"name": "hup", "healthchecks": {"active": {
        "healthy": {"interval": 1, "successes": 1},
        "unhealthy": {"interval": 1, "http_failures": 1, "tcp_failures": 1, "timeouts": 1}}}})
    assert st == 201, body
    for u in (a, b):
        assert g.admin("POST", "/upstreams/hup/targets", {"target": u.address})[0] == 201
    assert g.admin("POST", "/plugins", {"name": "prometheus", "config": {"upstream_health_metrics": True}})[0] == 201

    def state(addr):
        m = scrape(g)
        on = [dict(ls)["state"] for (nm, ls), v in m.items()
              if nm == "kong_upstream_target_health" and dict(ls)["target"] == addr and v == 1]
        assert len([1 for (nm, ls), _ in m.items() if nm == "kong_upstream_target_health" and dict(ls)["target"] == addr]) == 4
        return on[0] if len(on) == 1 else on
    wait_until(lambda: state(a.address) == "healthy" and state(b.address) == "healthy", what="both healthy")
    m = scrape(g)
    assert value(m, "kong_upstream_target_health", upstream="hup", target=b.address, address=b.address,
                 state="healthy", subsystem="http") == 1
    b.stop()
    wait_until(lambda: state(b.address) == "unhealthy", timeout=15, what="b unhealthy")
    assert state(a.address) == "healthy"
    upstream("b", port=b.port)
    wait_until(lambda: state(b.address) == "healthy", timeout=15, what="b healthy again")


def test_status_ready_before_and_after_configuration(gateway, upstream):
    g = gateway(workers=2, status=True, database="off")
    st, body, _ = http(g.status_port, "/status/ready")
    assert (st, json.loads(body)) == (503, {"message": "no configuration available (empty configuration present)"})
    up = upstream("r")
    conf = {"_format_version": "3.0", "services": [{"name": "rs", "url": f"http://{up.address}",
                                                      "routes": [{"name": "rr", "paths": ["/r"]}]}]}
    st, body, _ = g.admin("POST", "/config", conf)
    assert st in (200, 201), body
    wait_until(lambda: http(g.status_port, "/status/ready")[0] == 200, what="ready")
    assert json.loads(http(g.status_port, "/status/ready")[1]) == {"message": "ready"}
    # Every worker runs the configuration by then.
    assert g.get("/r")[0] == 200
    # A worker that has not applied the current configuration makes the node not ready (Kong's DB-less
    # message with the count); it is ready again once that worker caught up.
    stopped = g.worker_pids()[0]
    os.kill(stopped, signal.SIGSTOP)
    try:
        conf["services"][0]["routes"].append({"name": "rr2", "paths": ["/r2"]})
        st, body, _ = g.admin("POST", "/config", conf)
        assert st in (200, 201), body
        st, body, _ = http(g.status_port, "/status/ready")
        assert (st, json.loads(body)) == (503, {"message": "router builds not yet complete, router ready in 1 of 2 workers"})
    finally:
        os.kill(stopped, signal.SIGCONT)
    wait_until(lambda: http(g.status_port, "/status/ready")[0] == 200, what="ready again")
    # Draining (kong/status/ready.lua): POST status=draining → 204, then 503 "draining"; other bodies 400.
    assert http(g.status_port, "/status/ready", method="POST", body={"status": "nope"})[0] == 400
    assert http(g.status_port, "/status/ready", method="POST", body={"status": "draining"})[0] == 204
    st, body, _ = http(g.status_port, "/status/ready")
    assert (st, json.loads(body)) == (503, {"message": "draining"})


def test_status_api_shape_units_and_errors(gateway, upstream):
    up = upstream("s")
    g = gateway(workers=2, status=True)
    service(g, up, "ssvc", "/s")
    for _ in range(10):
        assert g.get("/s")[0] == 200
    st, body, _ = http(g.status_port, "/status")
    assert st == 200
    s = json.loads(body)
    assert s["database"] == {"reachable": True}
    assert s["server"]["total_requests"] >= 10
    for k in ("connections_active", "connections_reading", "connections_writing", "connections_waiting",
              "connections_accepted", "connections_handled", "total_requests"):
        assert isinstance(s["server"][k], int)
    vms = s["memory"]["workers_lua_vms"]
    assert sorted(v["pid"] for v in vms) == sorted(g.worker_pids())
    assert all(re.fullmatch(r"\d+\.\d\d MiB", v["http_allocated_gc"]) for v in vms), vms
    dicts = s["memory"]["lua_shared_dicts"]
    assert dicts["prometheus_metrics"]["capacity"] == "5.00 MiB"
    assert {"kong", "kong_healthchecks", "kong_rate_limiting_counters", "kong_db_cache", "prometheus_metrics"} <= set(dicts)
    assert all(set(v) == {"allocated_slabs", "capacity"} for v in dicts.values())
    s = json.loads(http(g.status_port, "/status?unit=k&scale=3")[1])
    assert s["memory"]["lua_shared_dicts"]["prometheus_metrics"]["capacity"] == "5120.000 KiB"
    s = json.loads(http(g.status_port, "/status?unit=G&scale=0")[1])
    assert s["memory"]["lua_shared_dicts"]["prometheus_metrics"]["capacity"] == "0 GiB"
    s = json.loads(http(g.status_port, "/status?unit=b")[1])
    assert s["memory"]["lua_shared_dicts"]["prometheus_metrics"]["capacity"] == 5 * 1024 * 1024
    assert all(isinstance(v["http_allocated_gc"], int) and v["http_allocated_gc"] > 0 for v in s["memory"]["workers_lua_vms"])
    st, body, _ = http(g.status_port, "/status?unit=x")
    assert (st, json.loads(body)) == (400, {"message": "invalid unit 'x' (expected 'k/K', 'm/M', or 'g/G')"})
    st, body, _ = http(g.status_port, "/status?scale=-1")
    assert (st, json.loads(body)) == (400, {"message": "scale must be equal or greater than 0"})
    # The same on the Admin API.
    assert g.admin("GET", "/status?unit=x")[0] == 400
    assert g.admin("GET", "/status?unit=k")[1]["memory"]["lua_shared_dicts"]["prometheus_metrics"]["capacity"] == "5120.00 KiB"
    # Anything else on the status listener: Kong's 404.
    st, body, _ = http(g.status_port, "/services")
    assert (st, json.loads(body)) == (404, {"message": "Not found"})


def test_status_listen_off(gateway):
    g = gateway(workers=1, status_listen="off")
    assert g.admin("GET", "/status")[0] == 200
    try:
        http(g.status_port, "/status")
        raise AssertionError("status listener answered with status_listen = off")
    except urllib.error.URLError:
        pass


def test_scrape_storm(gateway, upstream):
    up = upstream("st")
    g = gateway(workers=2, status=True)
    service(g, up, "storm", "/st")
    assert g.admin("POST", "/plugins", {"name": "prometheus", "config": ALL})[0] == 201
    wait_until(lambda: g.get("/st")[0] == 200 and value(scrape(g), "kong_http_requests_total", service="storm"),
               what="series")
    base = value(scrape(g), "kong_http_requests_total", service="storm", code=200)
    pids = set(g.worker_pids())
    failures = []

    def scraper(port):
        for _ in range(25):
            st, body, _ = http(port, "/metrics")
            if st != 200 or b"kong_datastore_reachable" not in body:
                failures.append(st)

    threads = [threading.Thread(target=scraper, args=(g.admin_port if i % 2 else g.status_port,)) for i in range(8)]
    for t in threads:
        t.start()
    sent = 0
    for _ in range(60):
        assert g.get("/st")[0] == 200
        sent += 1
    for t in threads:
        t.join(TIMEOUT * 6)
    assert not failures, failures
    assert value(scrape(g), "kong_http_requests_total", service="storm", code=200) == base + sent
    assert set(g.worker_pids()) == pids             # nobody crashed or restarted


def test_full_metrics_table_is_counted_and_logged(gateway, upstream):
    up = upstream("f")
    g = gateway(workers=2, status=True, prometheus_metrics_size="64k")    # (64 KiB - 128 B) / 1 KiB = 63 rows
    assert g.admin("POST", "/services", {"name": "fsvc", "url": f"http://{up.address}"})[0] == 201
    for i in range(70):
        assert g.admin("POST", "/services/fsvc/routes", {"name": f"f{i}", "paths": [f"/f{i}"]})[0] == 201
    assert g.admin("POST", "/plugins", {"name": "prometheus", "config": {"status_code_metrics": True}})[0] == 201
    g.wait_route("/f69")
    wait_until(lambda: value(scrape(g), "gateway_metrics_rows", state="capacity") == 63, what="capacity")
    for i in range(70):
        assert g.get(f"/f{i}")[0] == 200
    m = scrape(g)
    assert value(m, "gateway_metrics_rows", state="used") == 63
    counted = total(m, "kong_http_requests_total", service="fsvc")
    dropped = value(m, "gateway_metrics_dropped_total", reason="table_full")
    assert counted >= 63 - 1 and dropped > 0 and counted + dropped >= 70   # every request is counted or dropped-and-counted
    assert value(m, "kong_nginx_metric_errors_total") >= dropped
    assert g.get("/f0")[0] == 200                     # still serving
    wait_until(lambda: "prometheus_metrics:" in g.log() and "raise prometheus_metrics_size" in g.log(),
               timeout=25, what="the full table logged")


def test_non_ascii_and_escaped_labels(gateway, upstream):
    up = upstream("n")
    g = gateway(workers=2, status=True)
    st, body, _ = g.admin("POST", "/services", {"name": "café-☕", "url": f"http://{up.address}"})
    assert st == 201, body
    sid = body["id"]
    st, body, _ = g.admin("POST", f"/services/{sid}/routes", {"name": "rüte", "paths": ["/n"]})
    assert st == 201, body
    st, body, _ = g.admin("POST", "/consumers", {"username": 'we"ird\\name'})
    assert st == 201, body
    cid = body["id"]
    assert g.admin("POST", f"/consumers/{cid}/key-auth", {"key": "k1"})[0] == 201
    assert g.admin("POST", f"/services/{sid}/plugins", {"name": "key-auth"})[0] == 201
    assert g.admin("POST", "/plugins", {"name": "prometheus",
                                        "config": {"status_code_metrics": True, "per_consumer": True,
                                                   "bandwidth_metrics": True}})[0] == 201
    wait_until(lambda: g.get("/n", headers={"apikey": "k1"})[0] == 200 and
               value(scrape(g), "kong_http_requests_total", service="café-☕"), what="series")
    raw = http(g.admin_port, "/metrics")[1].decode("utf-8")
    line = next(l for l in raw.split("\n") if l.startswith("kong_http_requests_total{") and "café" in l)
    assert line.startswith('kong_http_requests_total{service="café-☕",route="rüte",code="200",source="service",'
                           'workspace="default",consumer="we\\"ird\\\\name"} '), line
    m = parse(raw)
    assert value(m, "kong_bandwidth_bytes", service="café-☕", consumer='we"ird\\name', direction="egress") > 0
    # A request refused by key-auth is counted with source "kong" and no consumer.
    assert g.get("/n")[0] == 401
    assert value(scrape(g), "kong_http_requests_total", service="café-☕", code=401, source="kong", consumer="") == 1


def test_schema_refuses_flags_it_would_ignore(gateway):
    g = gateway(workers=1)
    st, body, _ = g.admin("POST", "/plugins", {"name": "prometheus", "config": {"ai_metrics": True}})
    assert st == 400 and "ai_metrics" in json.dumps(body), body
    st, body, _ = g.admin("POST", "/plugins", {"name": "prometheus", "config": {"latency_metrics": "yes"}})
    assert st == 400, body


def test_request_followed_from_json_access_log_to_error_log(gateway, raw_upstream):
    def garbage(sock, req, up):
        sock.sendall(b"HTTP/1.1 abc nonsense\r\n\r\n")
        return False
    u = raw_upstream(garbage)
    g = gateway(workers=2, status=True, proxy_access_log_format="json")
    assert g.admin("POST", "/services", {"name": "bad", "url": f"http://{u.address}"})[0] == 201
    assert g.admin("POST", "/services/bad/routes", {"paths": ["/bad"]})[0] == 201
    g.wait_route("/bad", expect=502)
    st, _, h = g.get("/bad")
    assert st == 502
    rid = h["X-Kong-Request-Id"]

    def entry():
        for line in g.log("access.log").splitlines():
            e = json.loads(line)
            if e["request"]["id"] == rid:
                return e
        return None
    e = wait_until(entry, what="the access log entry")
    for k in ("request", "response", "latencies", "service", "route", "upstream_uri", "client_ip", "started_at",
              "tries", "consumer" if "consumer" in e else "route"):
        assert k in e, k
    assert e["response"]["status"] == 502 and e["service"]["name"] == "bad"
    line = wait_until(lambda: next((l for l in g.log().splitlines() if f'request_id: "{rid}"' in l), None),
                      what="the error log line of that request")
    assert "invalid response" in line and "client: 127.0.0.1" in line
