"""Issue #13 defects seen from outside: the running node's configuration for CLI commands (2), control
characters in the request-target (8), header names with underscores (9), method tokens (10), and the
X-Forwarded-* / X-Real-IP headers with trusted_ips / real_ip_header / real_ip_recursive (1).
Kong references: kong/cmd/health.lua (reads <prefix>/.kong_env), kong/runloop/handler.lua,
kong/templates/nginx_kong.lua, spec/02-integration/05-proxy/03-upstream_headers_spec.lua."""
import json
import os
import socket
import subprocess

from conftest import GATEWAY_BIN, TIMEOUT, add_route, http_response, wait_until


def raw_request(g, data, timeout=TIMEOUT):
    """Sends `data` on a new connection; returns (status, headers dict lowercased, body) of the response."""
    s = socket.create_connection(("127.0.0.1", g.proxy_port), timeout=timeout)
    try:
        s.sendall(data)
        f = s.makefile("rb")
        line = f.readline(65536)
        assert line, "connection closed without a response"
        status = int(line.split(b" ")[1])
        headers = {}
        while True:
            h = f.readline(65536)
            if h in (b"\r\n", b"\n", b""):
                break
            k, v = h.decode("latin-1").split(":", 1)
            headers[k.strip().lower()] = v.strip()
        body = f.read(int(headers.get("content-length", "0")))
        f.close()
        return status, headers, body
    finally:
        s.close()


def admin_raw(g, data):
    s = socket.create_connection(("127.0.0.1", g.admin_port), timeout=TIMEOUT)
    try:
        s.sendall(data)
        f = s.makefile("rb")
        status = int(f.readline(65536).split(b" ")[1])
        headers = {}
        while True:
            h = f.readline(65536)
            if h in (b"\r\n", b"\n", b""):
                break
            k, v = h.decode("latin-1").split(":", 1)
            headers[k.strip().lower()] = v.strip()
        body = f.read(int(headers.get("content-length", "0")))
        f.close()
        return status, body
    finally:
        s.close()


def echo_upstream(raw_upstream):
    """A raw upstream answering every request with its method, target and header lines as JSON."""
    def handler(c, req, up):
        body = json.dumps({"method": req["method"], "target": req["target"],
                           "header_list": req["header_list"], "body": req["body"].decode("latin-1")}).encode()
        c.sendall(http_response(200, body, {"Content-Type": "application/json"}))
        return True
    return raw_upstream(handler, "echo")


def lines(body, name):
    """Values of every header line called `name` (case-insensitive) the upstream received."""
    return [v for k, v in json.loads(body)["header_list"] if k.lower() == name.lower()]


# Defect 2 ------------------------------------------------------------------------------------------
def test_health_reads_the_running_nodes_configuration(gateway, tmp_path):
    # worker_processes = 1 on a machine with more cores: the defaults (auto) would expect more workers.
    g = gateway(workers=1)
    other = tmp_path / "elsewhere"
    other.mkdir()
    r = subprocess.run([GATEWAY_BIN, "health", "-p", g.prefix], cwd=other, capture_output=True, text=True,
                       timeout=TIMEOUT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Gateway is healthy" in r.stdout and r.stdout.count("worker ") == 1
    # A reload to 2 workers is what the saved configuration then says.
    g.write_conf(worker_processes=2)
    assert g.cli("reload", "-c", g.conf, "-p", g.prefix).returncode == 0
    wait_until(lambda: "worker_processes = 2" in open(os.path.join(g.prefix, "run", "running.conf")).read(),
               what="saved configuration after reload")
    wait_until(lambda: subprocess.run([GATEWAY_BIN, "health", "-p", g.prefix], cwd=other, capture_output=True,
                                      text=True, timeout=TIMEOUT).stdout.count("worker ") == 2,
               what="health sees 2 workers")
    # A conf/gateway.conf in the current directory does not replace the running node's file on reload.
    (other / "conf").mkdir()
    (other / "conf" / "gateway.conf").write_text(f"prefix = {g.prefix}\nworker_processes = 3\n")
    assert subprocess.run([GATEWAY_BIN, "reload", "-p", g.prefix], cwd=other, capture_output=True, text=True,
                          timeout=TIMEOUT).returncode == 0
    r = subprocess.run([GATEWAY_BIN, "stop", "-p", g.prefix], cwd=other, capture_output=True, text=True,
                       timeout=TIMEOUT * 3)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "proxy_listen = 127.0.0.1:%d" % g.proxy_port in open(os.path.join(g.prefix, "run", "running.conf")).read()


# Defects 8 and 10 ------------------------------------------------------------------------------------
def test_control_characters_in_target_are_400(gateway, raw_upstream):
    g = gateway(workers=1)
    up = echo_upstream(raw_upstream)
    add_route(g, up, "/t")
    for bad in (b"/t/a\tb", b"/t/a\x0cb", b"/t?x=\x0b", b"/t/\x7f", b"/t/\x01"):
        st, _, _ = raw_request(g, b"GET " + bad + b" HTTP/1.1\r\nHost: h\r\n\r\n")
        assert st == 400, bad
    assert up.hits == 1 or up.hits == 0   # only add_route's own probe reached it (if any)
    st, _, body = raw_request(g, b"GET /t/a%09b HTTP/1.1\r\nHost: h\r\n\r\n")
    assert st == 200 and json.loads(body)["target"] == "/a%09b"


def test_token_methods_are_forwarded(gateway, raw_upstream):
    g = gateway(workers=1)
    up = echo_upstream(raw_upstream)
    add_route(g, up, "/m")
    for m in (b"QUERY", b"PURGE", b"PROPFIND", b"MY_METHOD", b"X-CUSTOM"):
        st, _, body = raw_request(g, m + b" /m/x HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi")
        assert st == 200, m
        b = json.loads(body)
        assert (b["method"], b["target"], b["body"]) == (m.decode(), "/x", "hi")
    # nginx's method alphabet is A-Z, '_' and '-': a lowercase method is a 400 there too.
    st, _, _ = raw_request(g, b"query /m/x HTTP/1.1\r\nHost: h\r\n\r\n")
    assert st == 400
    # A route limited to methods matches a token method it lists.
    st, body, _ = g.admin("POST", "/services/svcm/routes", {"paths": ["/q"], "methods": ["QUERY"]})
    assert st == 201, body
    wait_until(lambda: raw_request(g, b"QUERY /q HTTP/1.1\r\nHost: h\r\n\r\n")[0] == 200, what="QUERY route")
    assert raw_request(g, b"GET /q HTTP/1.1\r\nHost: h\r\n\r\n")[0] == 404


def test_admin_answers_token_methods_with_405(gateway):
    g = gateway(workers=1)
    for m in (b"QUERY", b"PURGE", b"PROPFIND"):
        st, body = admin_raw(g, m + b" /services HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert (st, json.loads(body)) == (405, {"message": "Method not allowed"}), m


# Defect 9 ------------------------------------------------------------------------------------------
def key_auth_underscore(g, up):
    add_route(g, up, "/k")
    assert g.admin("POST", "/plugins", {"name": "key-auth", "config": {"key_names": ["api_key"]}})[0] == 201
    assert g.admin("POST", "/consumers", {"username": "bob"})[0] == 201
    assert g.admin("POST", "/consumers/bob/key-auth", {"key": "kong"})[0] == 201
    wait_until(lambda: raw_request(g, b"GET /k HTTP/1.1\r\nHost: h\r\n\r\n")[0] == 401, what="key-auth in force")


def test_underscore_headers_forwarded_by_default_as_kong(gateway, raw_upstream):
    # Kong's nginx template sets `underscores_in_headers on` (kong/templates/nginx_kong.lua); its key-auth
    # spec authenticates with an `api_key` header ("underscores or hyphens in key headers").
    g = gateway(workers=1)
    up = echo_upstream(raw_upstream)
    key_auth_underscore(g, up)
    st, _, body = raw_request(g, b"GET /k HTTP/1.1\r\nHost: h\r\napi_key: kong\r\nX_Custom_H: 1\r\n\r\n")
    assert st == 200
    assert lines(body, "X_Custom_H") == ["1"]


def test_underscore_headers_dropped_when_off(gateway, raw_upstream):
    g = gateway(workers=1, nginx_proxy_underscores_in_headers="off")
    up = echo_upstream(raw_upstream)
    key_auth_underscore(g, up)
    # The plugin does not see the dropped line: no key found.
    st, _, body = raw_request(g, b"GET /k HTTP/1.1\r\nHost: h\r\napi_key: kong\r\n\r\n")
    assert st == 401 and json.loads(body)["message"] == "No API key found in request"
    st, _, body = raw_request(g, b"GET /k?api_key=kong HTTP/1.1\r\nHost: h\r\nX_Custom_H: 1\r\n"
                                 b"Transfer_Encoding: chunked\r\nX-Ok: 2\r\n\r\n")
    assert st == 200
    assert lines(body, "X_Custom_H") == [] and lines(body, "Transfer_Encoding") == [] and lines(body, "X-Ok") == ["2"]


# Defect 1 ------------------------------------------------------------------------------------------
CLIENT_FORWARDED = (b"X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\n"
                    b"X-Forwarded-Port: 80\r\nX-Forwarded-Path: /evil\r\nX-Forwarded-Prefix: /evilprefix\r\n"
                    b"X-Real-IP: 6.6.6.6\r\n")
FORWARDED = ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port", "X-Forwarded-Path",
             "X-Forwarded-Prefix", "X-Real-IP")


def forwarded(body):
    got = {}
    for n in FORWARDED:
        v = lines(body, n)
        assert len(v) <= 1, (n, v)   # never two lines
        got[n] = v[0] if v else None
    return got


def test_forwarded_headers_of_an_untrusted_client_are_replaced(gateway, raw_upstream):
    g = gateway(workers=1)
    up = echo_upstream(raw_upstream)
    add_route(g, up, "/f")
    st, _, body = raw_request(g, b"GET /f/x?q=1 HTTP/1.1\r\nHost: Gw.Example:123\r\n" + CLIENT_FORWARDED +
                              b"X-Kong-Request-Id: client-chosen\r\n\r\n")
    assert st == 200
    ids = lines(body, "X-Kong-Request-Id")   # the gateway's id only (the skip list had it under 16 bytes)
    assert len(ids) == 1 and ids[0] != "client-chosen", ids
    assert forwarded(body) == {
        "X-Forwarded-For": "10.0.0.1, 127.0.0.1", "X-Forwarded-Proto": "http", "X-Forwarded-Host": "gw.example",
        "X-Forwarded-Port": str(g.proxy_port), "X-Forwarded-Path": "/f/x", "X-Forwarded-Prefix": "/f",
        "X-Real-IP": "127.0.0.1"}


def test_forwarded_headers_of_a_trusted_client_are_kept(gateway, raw_upstream):
    g = gateway(workers=1, trusted_ips="10.9.9.9/32, 127.0.0.0/8")
    up = echo_upstream(raw_upstream)
    add_route(g, up, "/f")
    st, _, body = raw_request(g, b"GET /f/x HTTP/1.1\r\nHost: gw.example\r\n" + CLIENT_FORWARDED + b"\r\n")
    assert st == 200
    assert forwarded(body) == {
        "X-Forwarded-For": "10.0.0.1, 127.0.0.1", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Port": "80", "X-Forwarded-Path": "/evil", "X-Forwarded-Prefix": "/evilprefix",
        "X-Real-IP": "6.6.6.6"}
    # Absent headers are the gateway's; without X-Forwarded-For the realip address starts it.
    st, _, body = raw_request(g, b"GET /f/x HTTP/1.1\r\nHost: gw.example\r\nX-Real-IP: 7.7.7.7\r\n\r\n")
    assert forwarded(body) == {
        "X-Forwarded-For": "7.7.7.7", "X-Forwarded-Proto": "http", "X-Forwarded-Host": "gw.example",
        "X-Forwarded-Port": str(g.proxy_port), "X-Forwarded-Path": "/f/x", "X-Forwarded-Prefix": "/f",
        "X-Real-IP": "7.7.7.7"}
    # An unparsable X-Real-IP leaves the peer as the client.
    st, _, body = raw_request(g, b"GET /f/x HTTP/1.1\r\nHost: gw.example\r\nX-Real-IP: nope\r\n\r\n")
    assert forwarded(body)["X-Real-IP"] == "127.0.0.1"


def test_real_ip_header_x_forwarded_for(gateway, raw_upstream):
    xff = b"X-Forwarded-For: 1.1.1.1, 10.0.0.5\r\nX-Forwarded-For: 10.0.0.6\r\n"
    g = gateway(workers=1, trusted_ips="127.0.0.1,10.0.0.0/8", real_ip_header="X-Forwarded-For")
    up = echo_upstream(raw_upstream)
    add_route(g, up, "/f")
    st, _, body = raw_request(g, b"GET /f HTTP/1.1\r\nHost: h\r\n" + xff + b"\r\n")
    got = forwarded(body)
    assert got["X-Real-IP"] == "10.0.0.6"          # real_ip_recursive off: the last address
    assert got["X-Forwarded-For"] == "1.1.1.1, 10.0.0.5, 10.0.0.6, 127.0.0.1"
    g2 = gateway(workers=1, trusted_ips="127.0.0.1,10.0.0.0/8", real_ip_header="X-Forwarded-For",
                 real_ip_recursive="on")
    add_route(g2, up, "/f")
    st, _, body = raw_request(g2, b"GET /f HTTP/1.1\r\nHost: h\r\n" + xff + b"\r\n")
    assert forwarded(body)["X-Real-IP"] == "1.1.1.1"   # recursive: the last untrusted address


def test_trusted_forwarded_proto_https_passes_an_https_only_route(gateway, raw_upstream):
    up = echo_upstream(raw_upstream)
    for trusted, expect in (("", 426), ("127.0.0.1", 200)):
        g = gateway(workers=1, trusted_ips=trusted)
        st, b, _ = g.admin("POST", "/services", {"name": "s", "url": f"http://{up.address}"})
        assert st == 201, b
        st, b, _ = g.admin("POST", "/services/s/routes", {"paths": ["/tls"], "protocols": ["https"]})
        assert st == 201, b
        wait_until(lambda: raw_request(g, b"GET /tls HTTP/1.1\r\nHost: h\r\n\r\n")[0] == 426, what="route live")
        st, _, _ = raw_request(g, b"GET /tls HTTP/1.1\r\nHost: h\r\nX-Forwarded-Proto: https\r\n\r\n")
        assert st == expect, trusted


def test_request_transformer_cannot_duplicate_forwarded_headers(gateway, raw_upstream):
    # Kong writes these with proxy_set_header: one line, the gateway's value (request-transformer's
    # documented limit); the plugin's other edits apply.
    g = gateway(workers=1)
    up = echo_upstream(raw_upstream)
    add_route(g, up, "/rt")
    st, b, _ = g.admin("POST", "/plugins", {"name": "request-transformer", "config": {
        "add": {"headers": ["X-Forwarded-For:1.2.3.4", "X-Real-IP:5.5.5.5", "X-Extra:1"]},
        "replace": {"headers": ["X-Forwarded-Port:1"]}, "append": {"headers": ["X-Forwarded-Proto:https"]}}})
    assert st == 201, b
    wait_until(lambda: lines(raw_request(g, b"GET /rt HTTP/1.1\r\nHost: h\r\n\r\n")[2], "X-Extra") == ["1"],
               what="plugin in force")
    st, _, body = raw_request(g, b"GET /rt HTTP/1.1\r\nHost: h\r\nX-Forwarded-Port: 9\r\n\r\n")
    got = forwarded(body)
    assert (got["X-Forwarded-For"], got["X-Real-IP"], got["X-Forwarded-Port"], got["X-Forwarded-Proto"]) == \
        ("127.0.0.1", "127.0.0.1", str(g.proxy_port), "http")


def test_bad_trusted_ips_refuses_to_start(gateway):
    g = gateway(workers=1, start=False, trusted_ips="10.0.0.0/8,not-an-ip")
    r = g.cli("start", "-c", g.conf, "-p", g.prefix)
    assert r.returncode != 0
    assert "trusted_ips must be a comma separated list in the form of IPv4 or IPv6 address or CIDR block " \
           "or 'unix:', got 'not-an-ip'" in r.stderr
    g = gateway(workers=1, start=False, real_ip_header="proxy_protocol")
    assert g.cli("start", "-c", g.conf, "-p", g.prefix).returncode != 0


def test_rate_limiting_by_ip_uses_the_realip_address(gateway, raw_upstream):
    # kong.client.get_forwarded_ip() is $remote_addr after realip: behind a trusted balancer each client
    # has its own counter.
    g = gateway(workers=1, trusted_ips="127.0.0.1")
    up = echo_upstream(raw_upstream)
    add_route(g, up, "/rl")
    st, b, _ = g.admin("POST", "/plugins", {"name": "rate-limiting", "config": {"hour": 1, "limit_by": "ip",
                                                                                "policy": "local"}})
    assert st == 201, b

    def get(ip):
        return raw_request(g, b"GET /rl HTTP/1.1\r\nHost: h\r\nX-Real-IP: " + ip + b"\r\n\r\n")[0]
    wait_until(lambda: get(b"1.1.1.1") == 429, what="limit of 1.1.1.1 reached")
    assert get(b"2.2.2.2") == 200
    assert get(b"2.2.2.2") == 429
