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
