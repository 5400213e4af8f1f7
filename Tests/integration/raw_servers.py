"""Raw-socket servers for the integration tests: a scripted HTTP upstream on a plain socket (RawUpstream,
with read_http_request / http_response to write its handlers), and the base of the tests' HTTPS upstreams
(TLSTestServer). conftest.py re-exports these names and holds the fixtures that start them."""
import os
import socket
import threading
import time

TIMEOUT = float(os.environ.get("GW_TEST_TIMEOUT", "10"))


def read_http_request(f):
    """Reads one request from a buffered binary socket file. Returns a dict, or None on EOF."""
    line = f.readline(65536)
    while line in (b"\r\n", b"\n"):
        line = f.readline(65536)
    if not line:
        return None
    parts = line.decode("latin-1").rstrip("\r\n").split(" ")
    if len(parts) != 3:
        raise ValueError(f"bad request line {line!r}")
    method, target, version = parts
    headers = []
    while True:
        h = f.readline(65536)
        if h in (b"\r\n", b"\n", b""):
            break
        k, v = h.decode("latin-1").split(":", 1)
        headers.append((k.strip(), v.strip()))
    hd = {}
    for k, v in headers:
        hd.setdefault(k.lower(), v)
    body = b""
    chunked = hd.get("transfer-encoding", "").lower() == "chunked"
    if chunked:
        chunks = []
        while True:
            size_line = f.readline(65536)
            if not size_line:
                raise ValueError("EOF in chunked body")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while f.readline(65536) not in (b"\r\n", b"\n", b""):
                    pass
                break
            chunks.append(f.read(size))
            f.readline(65536)
        body = b"".join(chunks)
    elif "content-length" in hd:
        n = int(hd["content-length"])
        body = f.read(n)
        if len(body) != n:
            raise ValueError("EOF in body")
    return {"method": method, "target": target, "version": version, "headers": hd, "header_list": headers,
            "body": body, "chunked": chunked}


def http_response(status, body=b"", headers=None, reason="OK", chunked=False, chunk_size=16384):
    """Bytes of a complete HTTP/1.1 response."""
    h = [f"HTTP/1.1 {status} {reason}"]
    for k, v in (headers or {}).items():
        h.append(f"{k}: {v}")
    if chunked:
        h.append("Transfer-Encoding: chunked")
        out = ("\r\n".join(h) + "\r\n\r\n").encode()
        for i in range(0, len(body), chunk_size):
            piece = body[i:i + chunk_size]
            out += b"%x\r\n" % len(piece) + piece + b"\r\n"
        return out + b"0\r\n\r\n"
    if headers is None or "Content-Length" not in headers:
        h.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(h) + "\r\n\r\n").encode() + body


class Recorder:
    """A file-like reader over a socket that keeps every byte it hands out."""

    def __init__(self, f):
        self.f, self.raw = f, bytearray()

    def readline(self, n=-1):
        b = self.f.readline(n)
        self.raw += b
        return b

    def read(self, n):
        b = self.f.read(n)
        self.raw += b
        return b


class RawUpstream:
    """A hand-written HTTP/1.1 server on 127.0.0.1. `handler(sock, request, upstream)` answers each request on
    the raw socket and returns True to keep the connection for the next request. Counts TCP connections and
    requests (hits). With `record_raw`, `raw` holds the exact bytes received, one bytearray per connection."""

    def __init__(self, handler, name="raw", record_raw=False):
        self.name = name
        self.handler = handler
        self.record_raw = record_raw
        self.lock = threading.Lock()
        self.connections = 0
        self.hits = 0
        self.requests = []
        self.raw = []
        self.stopped = threading.Event()
        self.read_delay = 0.0        # seconds to wait after accept before reading (backpressure tests)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def _accept(self):
        while not self.stopped.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
                self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        c.settimeout(TIMEOUT * 2)
        if self.read_delay:
            time.sleep(self.read_delay)
        f = sockfile = c.makefile("rb")
        if self.record_raw:
            f = Recorder(sockfile)
            with self.lock:
                self.raw.append(f.raw)
        try:
            while not self.stopped.is_set():
                req = read_http_request(f)
                if req is None:
                    break
                with self.lock:
                    self.hits += 1
                    self.requests.append(req)
                if not self.handler(c, req, self):
                    break
        except (OSError, ValueError):
            pass
        finally:
            try:
                sockfile.close()
                c.close()
            except OSError:
                pass

    def stop(self):
        self.stopped.set()
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            for c in self.conns:
                try:
                    c.close()
                except OSError:
                    pass
        self.thread.join(timeout=2)


def reset_socket(c):
    """Closes with RST (SO_LINGER 0)."""
    import struct
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()



class TLSTestServer:
    """Base of the tests' HTTPS upstreams on 127.0.0.1: a listening socket on a free port and a thread per
    connection; a subclass sets `self.ctx` (its ssl.SSLContext) before calling `listen()` and implements
    `serve(conn)` (the raw accepted socket)."""

    def listen(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def stop(self):
        self.stopped = True
        self.sock.close()
