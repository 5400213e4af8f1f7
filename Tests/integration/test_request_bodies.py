"""Request bodies on the proxy path (issue #13 item 7, KONG.md route `request_buffering`): with buffering
(Kong's default) the whole body is read and validated before the upstream sees anything and is sent
with a Content-Length of the gateway's own; without it a chunked body is re-framed with canonical
chunk sizes (no extensions, no trailers). Either way the client's framing never reaches the upstream.
The upstream here records the exact bytes it receives."""
import hashlib
import json
import os
import socket
import time

import pytest

from conftest import TIMEOUT, Gateway, RawUpstream, free_port, http_response, wait_until


def capture_upstream():
    """Answers 200 with a JSON summary of each request (body length, SHA-256, chunked); `raw` keeps the
    exact bytes of every connection."""
    def answer(c, r, _up):
        body = json.dumps({"len": len(r["body"]), "sha": hashlib.sha256(r["body"]).hexdigest(),
                           "chunked": r["chunked"]}).encode()
        c.sendall(http_response(200, body, {"Content-Type": "application/json"}))
        return True
    return RawUpstream(answer, "capture", record_raw=True)


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    g = Gateway(str(tmp_path_factory.mktemp("bodies")), workers=1,
                extra={"client_body_timeout": "3s", "client_body_buffer_size": "8k"})
    g.start()
    yield g
    g.stop()


@pytest.fixture
def up():
    u = capture_upstream()
    yield u
    u.stop()


_n = [0]


def route(g, up, **fields):
    _n[0] += 1
    path = f"/b{_n[0]}"
    s, b, _ = g.admin("POST", "/services", {"name": f"b{_n[0]}", "url": f"http://{up.address}"})
    assert s == 201, b
    s, b, _ = g.admin("POST", f"/services/b{_n[0]}/routes", dict({"paths": [path]}, **fields))
    assert s == 201, b
    wait_until(lambda: exchange(g, f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())[0] == 200, what="route")
    return path


def exchange(g, raw, wait_close=False):
    """Sends raw bytes on a new connection; returns (status, headers, body) of the first response."""
    with socket.create_connection(("127.0.0.1", g.proxy_port), timeout=TIMEOUT) as s:
        s.sendall(raw)
        f = s.makefile("rb")
        line = f.readline()
        if not line:
            return 0, {}, b""
        status = int(line.split()[1])
        h = {}
        while True:
            l = f.readline()
            if l in (b"\r\n", b""):
                break
            k, v = l.decode().split(":", 1)
            h[k.strip().lower()] = v.strip()
        body = f.read(int(h.get("content-length", 0)))
        return status, h, body


def chunked_post(path, chunks_raw, extra=b""):
    return (f"POST {path} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n".encode() + extra + b"\r\n" + chunks_raw)


# Odd but valid framing: leading zeros, extensions, a trailer.
ODD = (b"0005;ext=1\r\nhello\r\n"
       b"00000000000000000000000000000000006\r\n world\r\n"
       b"0;last=yes\r\nX-Trailer: t\r\n\r\n")


def test_buffered_chunked_body_goes_upstream_with_our_content_length(gw, up):
    path = route(gw, up)
    s, _, body = exchange(gw, chunked_post(path, ODD))
    assert s == 200, body
    r = up.requests[-1]
    assert r["body"] == b"hello world"
    assert r["headers"]["content-length"] == "11"
    assert "transfer-encoding" not in r["headers"]
    raw = bytes(up.raw[-1])
    assert b"ext=1" not in raw and b"X-Trailer" not in raw and b"0005" not in raw


def test_unbuffered_chunked_body_is_rechunked_canonically(gw, up):
    path = route(gw, up, request_buffering=False)
    s, _, body = exchange(gw, chunked_post(path, ODD))
    assert s == 200, body
    r = up.requests[-1]
    assert r["body"] == b"hello world" and r["chunked"]
    raw = bytes(up.raw[-1])
    raw = raw[raw.rindex(b"POST /"):]   # the connection may have carried earlier requests (keep-alive pool)
    head, _, framed = raw.partition(b"\r\n\r\n")
    assert b"content-length" not in head.lower()
    # Our own sizes only: lower-case hex without leading zeros, no extensions, no trailers.
    assert b"ext=1" not in framed and b"last=yes" not in framed and b"X-Trailer" not in framed
    assert framed.endswith(b"0\r\n\r\n")
    pos, sizes = 0, []
    while True:
        eol = framed.index(b"\r\n", pos)
        size_text = framed[pos:eol]
        assert size_text == b"%x" % int(size_text, 16), size_text
        size = int(size_text, 16)
        sizes.append(size)
        if size == 0:
            break
        pos = eol + 2 + size + 2
    assert sum(sizes) == 11


def test_hidden_request_in_huge_chunk_never_reaches_upstream(gw, up):
    """A chunk size of exactly 2^32 followed by what looks like a request: with buffering the upstream sees
    nothing until the (never complete) body ends; without buffering it sees the bytes as the data of a chunk
    whose size we wrote, never as a second request."""
    hidden = b"GET /hidden HTTP/1.1\r\nHost: t\r\n\r\n"
    for buffering in (True, False):
        path = route(gw, up, request_buffering=buffering)
        before = len(up.requests)
        with socket.create_connection(("127.0.0.1", gw.proxy_port), timeout=TIMEOUT) as s:
            s.sendall(chunked_post(path, b"100000000\r\n" + hidden))
            s.settimeout(6)
            data = s.recv(65536)   # client_body_timeout (3 s): 408, or closed
            assert data == b"" or data.startswith(b"HTTP/1.1 408"), data
        time.sleep(0.3)
        paths = [r["target"] for r in up.requests[before:]]
        assert "/hidden" not in paths, paths
        if buffering:
            assert up.requests[before:] == []


def test_large_buffered_body_goes_through_a_temp_file(gw, up):
    path = route(gw, up)
    body = os.urandom(3 << 20)
    chunks = b"".join(b"%x\r\n" % len(body[i:i + 100000]) + body[i:i + 100000] + b"\r\n"
                      for i in range(0, len(body), 100000)) + b"0\r\n\r\n"
    s, _, resp = exchange(gw, chunked_post(path, chunks))
    assert s == 200
    got = json.loads(resp)
    assert got["len"] == len(body) and got["sha"] == hashlib.sha256(body).hexdigest() and not got["chunked"]
    assert up.requests[-1]["headers"]["content-length"] == str(len(body))
    tmp = os.path.join(gw.prefix, "client_body_temp")
    assert os.path.isdir(tmp) and os.listdir(tmp) == [], "temp files are unlinked at once"
    # A Content-Length body of the same size (memory then file) arrives intact too.
    s, _, resp = exchange(gw, f"PUT {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    assert s == 200 and json.loads(resp)["sha"] == hashlib.sha256(body).hexdigest()


def test_expect_continue_with_buffering(gw, up):
    path = route(gw, up)
    with socket.create_connection(("127.0.0.1", gw.proxy_port), timeout=TIMEOUT) as s:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n".encode())
        f = s.makefile("rb")
        assert f.readline().startswith(b"HTTP/1.1 100")
        assert f.readline() == b"\r\n"
        s.sendall(b"abcde")
        assert f.readline().startswith(b"HTTP/1.1 200")
    assert up.requests[-1]["body"] == b"abcde"
    assert "expect" not in up.requests[-1]["headers"]


def test_invalid_chunked_body_after_streaming_started_closes_upstream(gw, up):
    path = route(gw, up, request_buffering=False)
    conns_before = len(up.raw)
    with socket.create_connection(("127.0.0.1", gw.proxy_port), timeout=TIMEOUT) as s:
        s.sendall(chunked_post(path, b"5\r\nhello\r\n"))
        time.sleep(0.3)
        s.sendall(b"zz\r\n")   # not a chunk size
        data = s.recv(65536)
        assert data.startswith(b"HTTP/1.1 400") or data == b""
    # The half-sent request's upstream connection is never reused: the next request opens another one.
    s2, _, _ = exchange(gw, f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    assert s2 == 200
    # (The POST took the pooled connection of the route check; the GET needed a new one.)
    assert len(up.raw) == conns_before + 1 and b"POST" not in bytes(up.raw[-1]) and b"hello" in bytes(up.raw[-2])


def test_buffered_post_is_retried_on_another_target_after_connect_failure(gw, up):
    s, b, _ = gw.admin("POST", "/upstreams", {"name": "retry-bodies"})
    assert s == 201, b
    dead_port = free_port()   # nothing listens there
    for t in (f"127.0.0.1:{dead_port}", up.address):
        s, b, _ = gw.admin("POST", "/upstreams/retry-bodies/targets", {"target": t})
        assert s == 201, b
    s, b, _ = gw.admin("POST", "/services", {"name": "retry-bodies", "host": "retry-bodies", "retries": 5})
    assert s == 201, b
    s, b, _ = gw.admin("POST", "/services/retry-bodies/routes", {"paths": ["/retry-bodies"]})
    assert s == 201, b
    wait_until(lambda: exchange(gw, b"GET /retry-bodies HTTP/1.1\r\nHost: t\r\n\r\n")[0] == 200, what="route")
    for _ in range(4):
        s, _, resp = exchange(gw, chunked_post("/retry-bodies", b"3\r\nabc\r\n0\r\n\r\n"))
        assert s == 200 and json.loads(resp)["len"] == 3
