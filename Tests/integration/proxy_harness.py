"""The harness of the HTTP/1.1 reverse-proxy tests (test_proxy_*.py, KONG.md §3): the module-scoped
gateway (1 worker, short client header/body timeouts), `add` (a service and one route), clients that
speak raw HTTP/1.1 (`req` via http.client, `raw_conn`/`raw_once`/`read_response` on a bare socket),
`wait_routed`, `worker`, and `scripted`: the RawUpstream behaviour chosen by the request path's last
segment (echo, big bodies, bad framing, resets, hangs, WebSocket echo, ...). Not a test module."""
import hashlib
import http.client
import itertools
import json
import os
import re
import signal
import socket
import time

import pytest

from conftest import TIMEOUT, Gateway, http_response, reset_socket, wait_until

BIG = os.urandom(1 << 20)
BIG_SHA = hashlib.sha256(BIG).hexdigest()
HUGE = BIG * 8                     # 8 MiB: more than the loopback socket buffers absorb
HUGE_SHA = hashlib.sha256(HUGE).hexdigest()


def sha(b):
    return hashlib.sha256(b).hexdigest()


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    g = Gateway(str(tmp_path_factory.mktemp("proxy")), workers=1,
                extra={"client_header_timeout": "2s", "client_body_timeout": "3s"})
    g.start()
    yield g
    try:
        pid = g.master_pid()
    except (FileNotFoundError, ValueError):
        pid = None
    g.stop()
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


_ids = itertools.count()


def add(g, target, route, **svc):
    """Creates a service for `target` ("ip:port" or an upstream name) and one route on it. Returns the name."""
    n = next(_ids)
    name = f"px{n}"
    if ":" in target:
        host, port = target.rsplit(":", 1)
        body = {"name": name, "host": host, "port": int(port)}
    else:
        body = {"name": name, "host": target}
    body.update(svc)
    st, s, _ = g.admin("POST", "/services", body)
    assert st == 201, s
    st, r, _ = g.admin("POST", f"/services/{name}/routes", dict({"name": name}, **route))
    assert st == 201, r
    return name


class Resp:
    def __init__(self, status, headers, body, raw_head=b""):
        self.status, self.headers, self.body, self.raw_head = status, headers, body, raw_head

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"Resp({self.status}, {self.headers}, {self.body[:200]!r})"


def req(g, method, path, headers=None, body=None, chunked=False, timeout=TIMEOUT):
    """One request on a fresh connection via http.client (a Host header in `headers` is sent as given)."""
    c = http.client.HTTPConnection("127.0.0.1", g.proxy_port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
        r = c.getresponse()
        data = r.read()
        return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        c.close()


def read_response(f, method="GET"):
    """Reads one response from a binary socket file; None if the connection closed first."""
    line = f.readline(65536)
    if not line:
        return None
    m = re.match(rb"HTTP/1\.[01] (\d{3})", line)
    assert m, f"bad status line {line!r}"
    status = int(m.group(1))
    headers, raw = {}, line
    while True:
        h = f.readline(65536)
        raw += h
        if h in (b"\r\n", b"\n", b""):
            break
        k, v = h.decode("latin-1").split(":", 1)
        k = k.strip().lower()
        headers[k] = headers[k] + ", " + v.strip() if k in headers else v.strip()
    body = b""
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        pass
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int(f.readline(65536).split(b";")[0].strip(), 16)
            if size == 0:
                while f.readline(65536) not in (b"\r\n", b"\n", b""):
                    pass
                break
            body += f.read(size)
            f.readline(65536)
    elif "content-length" in headers:
        body = f.read(int(headers["content-length"]))
    else:
        body = f.read()
    return Resp(status, headers, body, raw)


def raw_conn(g, timeout=TIMEOUT):
    s = socket.create_connection(("127.0.0.1", g.proxy_port), timeout=timeout)
    return s, s.makefile("rb")


def raw_once(g, data, method="GET", timeout=TIMEOUT):
    """Writes `data` on a new connection and reads one response (None when closed without one)."""
    s, f = raw_conn(g, timeout)
    try:
        s.sendall(data)
        try:
            return read_response(f, method)
        except ConnectionResetError:
            return None
    finally:
        f.close()
        s.close()


def wait_routed(g, path, headers=None, method="GET"):
    """Waits until the new configuration is live: the request no longer gets the router's 404."""
    return wait_until(lambda: (lambda r: r if not (r.status == 404 and b"no Route matched" in r.body) else None)(
        req(g, method, path, headers)), what=f"route for {path}")


def worker(g):
    pids = g.worker_pids()
    assert len(pids) == 1, pids
    return pids[0]


def scripted(c, r, up):
    """RawUpstream behaviour chosen by the last path segment of the request target."""
    seg = r["target"].split("?")[0].rstrip("/").rsplit("/", 1)[-1]
    body = r["body"]
    if seg == "echo":
        payload = json.dumps({"sha": sha(body), "len": len(body), "chunked": r["chunked"],
                              "headers": r["headers"], "target": r["target"], "method": r["method"]}).encode()
        c.sendall(http_response(200, payload, {"Content-Type": "application/json"}))
    elif seg == "big-cl":
        c.sendall(http_response(200, BIG, {"Content-Length": len(BIG), "X-Sha": BIG_SHA}))
    elif seg == "big-chunked":
        c.sendall(http_response(200, BIG, {"X-Sha": BIG_SHA}, chunked=True, chunk_size=10000))
    elif seg == "huge-cl":
        c.sendall(http_response(200, HUGE))
    elif seg == "s100":
        c.sendall(b"HTTP/1.1 100 Continue\r\n\r\n" + http_response(200, b"after-100"))
    elif seg == "resp-clte":
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        return False
    elif seg == "resp-badcl":
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nabc")
        return False
    elif seg == "resp-twocl":
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd")
        return False
    elif seg == "lie":
        # claims keep-alive, then closes right after the response
        c.sendall(http_response(200, b"lie"))
        return False
    elif seg == "closelater":
        c.sendall(http_response(200, b"later"))
        time.sleep(0.3)
        return False
    elif seg == "s500":
        c.sendall(http_response(500, b"upstream's own error", {"Content-Type": "text/x-upstream"}))
    elif seg == "big-eof":
        c.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + BIG)
        return False
    elif seg == "head":
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nX-Head: yes\r\n\r\n"
                  + (b"" if r["method"] == "HEAD" else b"h" * 1000))
    elif seg == "s204":
        c.sendall(b"HTTP/1.1 204 No Content\r\nX-S: 204\r\n\r\n")
    elif seg == "s304":
        c.sendall(b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 50\r\n\r\n")
    elif seg == "hop":
        c.sendall(b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Resp-Hop\r\nX-Resp-Hop: 1\r\n"
                  b"Keep-Alive: timeout=5\r\nX-Kept: 1\r\nVia: 1.0 upstream-proxy\r\nContent-Length: 2\r\n\r\nok")
    elif seg == "close":
        return False
    elif seg == "once":
        c.sendall(http_response(200, b"once", {"Connection": "close"}))
        return False
    elif seg == "reset":
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BIG) + BIG[:100000])
        time.sleep(0.2)
        reset_socket(c)
        return False
    elif seg == "badstatus":
        c.sendall(b"HTTP/1.1 abc Broken\r\nContent-Length: 0\r\n\r\n")
        return False
    elif seg == "garbage":
        c.sendall(b"hello there\r\n\r\n")
        return False
    elif seg == "hang":
        try:
            c.recv(1)
        except OSError:
            pass
        return False
    elif seg == "ws":
        c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        while True:
            d = c.recv(65536)
            if not d:
                break
            c.sendall(d)
        return False
    else:
        c.sendall(http_response(200, b"default"))
    return True
