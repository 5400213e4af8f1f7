"""Integration-test harness: starts the real `gateway` binary in a temporary prefix with its own
ports, and real upstream HTTP servers on 127.0.0.1. Every wait is bounded (GW_TEST_TIMEOUT)."""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import urllib.error
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../tools"))
from netutil import free_port  # noqa: E402,F401 - outside the ephemeral range; re-exported to the tests
from raw_servers import RawUpstream, TLSTestServer, http_response, read_http_request, reset_socket  # noqa: F401

GATEWAY_BIN = os.environ.get("GATEWAY_BIN") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "../../.build/release/gateway"))
TIMEOUT = float(os.environ.get("GW_TEST_TIMEOUT", "10"))


def wait_until(pred, timeout=TIMEOUT, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Gateway:
    """One gateway instance: prefix, config file, ports, and helpers for CLI, admin and proxy."""

    def __init__(self, tmp, workers=2, extra=None, status=False):
        os.makedirs(tmp, exist_ok=True)
        self.prefix = os.path.join(tmp, "prefix")
        self.proxy_port = free_port()
        self.admin_port = free_port()
        self.status_port = free_port()
        self.conf = os.path.join(tmp, "gateway.conf")
        self.settings = {
            "prefix": self.prefix,
            "proxy_listen": f"127.0.0.1:{self.proxy_port}",
            "admin_listen": f"127.0.0.1:{self.admin_port}",
            # The Status API only where a test asks for it (status=True): one port less to race for.
            "status_listen": "off",
            # The dashboard's default 127.0.0.1:8002 would collide between gateways run side by side.
            "admin_gui_listen": "off",
            "worker_processes": str(workers),
            "log_level": "info",
        }
        if status:
            self.settings["status_listen"] = f"127.0.0.1:{self.status_port}"
        self.settings.update(extra or {})
        self.write_conf()

    def write_conf(self, **changes):
        self.settings.update({k: str(v) for k, v in changes.items()})
        with open(self.conf, "w") as f:
            for k, v in self.settings.items():
                f.write(f"{k} = {v}\n")

    def cli(self, *args, check=False, env=None, timeout=None):
        e = dict(os.environ)
        e.update(env or {})
        r = subprocess.run([GATEWAY_BIN, *args], capture_output=True, text=True, env=e,
                           timeout=timeout or TIMEOUT * 3)
        if check and r.returncode != 0:
            raise AssertionError(f"gateway {' '.join(args)} failed: {r.returncode}\n{r.stdout}\n{r.stderr}")
        return r

    def start(self, *extra):
        return self.cli("start", "-c", self.conf, "-p", self.prefix, *extra, check=True)

    def stop(self):
        return self.cli("stop", "-c", self.conf, "-p", self.prefix)

    @property
    def pid_file(self):
        return os.path.join(self.prefix, "pids", "gateway.pid")

    def master_pid(self):
        with open(self.pid_file) as f:
            return int(f.read().strip())

    def worker_pids(self):
        try:
            with open(os.path.join(self.prefix, "pids", "workers")) as f:
                return [int(x) for x in f.read().split()]
        except FileNotFoundError:
            return []

    def log(self, name="error.log"):
        try:
            with open(os.path.join(self.prefix, "logs", name)) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    # Admin API -------------------------------------------------------------------------------
    def admin(self, method, path, body=None, form=None, headers=None):
        """Returns (status, parsed JSON or None, headers)."""
        data = None
        h = dict(headers or {})
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        elif form is not None:
            data = urllib.parse.urlencode(form, doseq=True).encode()
            h.setdefault("Content-Type", "application/x-www-form-urlencoded")
        req = urllib.request.Request(f"http://127.0.0.1:{self.admin_port}{path}", data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None), dict(r.headers)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = raw.decode(errors="replace")
            return e.code, parsed, dict(e.headers)

    # Proxy ---------------------------------------------------------------------------------
    def get(self, path, headers=None, method="GET", body=None):
        """One request on a new connection: (status, body bytes, headers)."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.proxy_port}{path}", data=body, method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
                return r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read(), dict(e.headers)

    def wait_route(self, path, expect=200, headers=None):
        return wait_until(lambda: self.get(path, headers=headers)[0] == expect, what=f"{path} -> {expect}")


@pytest.fixture
def gateway(tmp_path):
    gws = []

    def make(workers=2, start=True, status=False, **extra):
        g = Gateway(str(tmp_path / f"gw{len(gws)}"), workers=workers, extra={k: str(v) for k, v in extra.items()},
                    status=status)
        os.makedirs(os.path.dirname(g.conf), exist_ok=True)
        g.write_conf()
        gws.append(g)
        if start:
            g.start()
        return g

    yield make
    stop_gateways(gws)


def stop_gateways(gws):
    """Fixture teardown: stops every gateway that has a master, then makes sure the master is gone."""
    for g in gws:
        try:
            pid = g.master_pid()
        except (FileNotFoundError, ValueError):
            continue
        g.stop()
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Upstream:
    """A real HTTP/1.1 server on 127.0.0.1 that answers with its name; behaviour is switchable."""

    def __init__(self, name, port=None):
        self.name = name
        self.port = port or free_port()
        self.hits = 0
        self.connections = 0
        self.status = 200
        self.delay = 0.0
        self.extra_headers = []   # (name, value) lines added to every response, in order
        self.requests = []
        self.lock = threading.Lock()
        self.open_sockets = set()
        self.server = None
        self.start()

    def start(self):
        up = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                with up.lock:
                    up.connections += 1
                    up.open_sockets.add(self.request)

            def finish(self):
                with up.lock:
                    up.open_sockets.discard(self.request)
                super().finish()

            def log_message(self, *a):
                pass

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = b""
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            break
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    body = b"".join(chunks)
                elif length:
                    body = self.rfile.read(length)
                with up.lock:
                    up.hits += 1
                    up.requests.append({"method": self.command, "path": self.path,
                                        "headers": dict(self.headers.items()), "body": body})
                if up.delay:
                    time.sleep(up.delay)
                payload = json.dumps({"upstream": up.name, "path": self.path, "method": self.command,
                                      "headers": dict(self.headers.items()), "body_len": len(body)}).encode()
                self.send_response(up.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("X-Upstream", up.name)
                for name, value in up.extra_headers:
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        # Like a real server process exiting: the listener AND every open keep-alive connection
        # are closed (ThreadingHTTPServer alone would leave handler threads serving pooled
        # connections of the gateway after shutdown()).
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
            with self.lock:
                for s in list(self.open_sockets):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                self.open_sockets.clear()

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"


@pytest.fixture
def upstream():
    ups = []

    def make(name="u", port=None):
        u = Upstream(name, port)
        ups.append(u)
        return u

    yield make
    for u in ups:
        u.stop()


# Process-model helpers (test_process.py, tools/reload_under_load.py) ------------------------------
import http.client  # noqa: E402


def proc_state(pid):
    """The /proc state letter of pid, or None when it does not exist (zombies count as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def alive(pid):
    s = proc_state(pid)
    return s is not None and s not in ("Z", "X")


def cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode(errors="replace").strip()


def children(pid):
    """Live child pids of pid (scans /proc: works without CONFIG_PROC_CHILDREN)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(rest[1]) == pid and rest[0] not in ("Z", "X"):
            out.append(int(d))
    return out


def processes_using(path):
    """Live pids that hold an open file under `path` (a gateway keeps its logs open): finds a
    gateway left behind in a prefix whatever its process title."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            for fd in os.listdir(f"/proc/{d}/fd"):
                try:
                    if os.readlink(f"/proc/{d}/fd/{fd}").startswith(path):
                        out.append(int(d))
                        break
                except OSError:
                    continue
        except OSError:
            continue
    return [p for p in out if alive(p)]


def port_free(port):
    """True when a new listener can bind 127.0.0.1:port (SO_REUSEADDR, as any server sets it: a
    connection of the old process lingering in TIME_WAIT does not count, a listener does)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


# Errors that mean "the server closed this keep-alive connection before sending any byte of the
# response": a client may send an idempotent request again on a new connection (RFC 9112 §9.3.1,
# what curl and browsers do).
RETRYABLE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class Load:
    """Continuous GET traffic to the proxy: `fresh` threads open a new connection per request,
    `keepalive` threads reuse one http.client connection (re-opened when the server closes it).
    Counts ok / failed (with reasons) / retried (keep-alive request re-sent once after the server
    closed the idle connection before any response byte). Every request has a socket timeout."""

    def __init__(self, port, path, fresh=1, keepalive=1, timeout=TIMEOUT, check=None):
        self.port, self.path, self.timeout = port, path, timeout
        self.check = check or (lambda status, body, headers: status == 200)
        self.ok = 0
        self.failed = 0
        self.retried = 0
        self.errors = []
        self.last_headers = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._fresh, daemon=True) for _ in range(fresh)]
        self.threads += [threading.Thread(target=self._keepalive, daemon=True) for _ in range(keepalive)]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(self.timeout * 2)

    def _record(self, ok, why=None, headers=None):
        with self.lock:
            if ok:
                self.ok += 1
                if headers is not None:
                    self.last_headers = headers
            else:
                self.failed += 1
                if len(self.errors) < 20:
                    self.errors.append(why)

    def _one(self, conn):
        conn.request("GET", self.path)
        r = conn.getresponse()
        try:
            body = r.read()
        except Exception as e:  # noqa: BLE001 - response bytes were received: never retried
            raise RuntimeError(f"reading the body: {type(e).__name__}: {e}") from e
        return r.status, body, {k.lower(): v for k, v in r.getheaders()}, r.will_close

    def _fresh(self):
        while not self.stopping.is_set():
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                st, body, h, _ = self._one(conn)
                good = self.check(st, body, h)
                self._record(good, f"fresh: status {st} {body[:100]!r}", h)
            except Exception as e:  # noqa: BLE001
                self._record(False, f"fresh: {type(e).__name__}: {e}")
            finally:
                conn.close()

    def _keepalive(self):
        conn = None
        while not self.stopping.is_set():
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            reused = conn.sock is not None
            try:
                st, body, h, will_close = self._one(conn)
            except RETRYABLE as e:
                conn.close()
                conn = None
                if not reused:
                    self._record(False, f"keepalive (new connection): {type(e).__name__}: {e}")
                    continue
                with self.lock:
                    self.retried += 1
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                try:
                    st, body, h, will_close = self._one(conn)
                except Exception as e2:  # noqa: BLE001
                    self._record(False, f"keepalive retry: {type(e2).__name__}: {e2}")
                    conn.close()
                    conn = None
                    continue
            except Exception as e:  # noqa: BLE001
                self._record(False, f"keepalive: {type(e).__name__}: {e}")
                conn.close()
                conn = None
                continue
            self._record(self.check(st, body, h), f"keepalive: status {st} {body[:100]!r}", h)
            if will_close:
                conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def summary(self):
        return f"ok={self.ok} failed={self.failed} retried={self.retried} errors={self.errors[:5]}"


def add_route(g, up, path="/p"):
    """A service backed by `up` and a route `path` to it; waits until the proxy serves it."""
    name = "svc" + path.strip("/").replace("/", "_")
    st, body, _ = g.admin("POST", "/services", {"name": name, "url": f"http://{up.address}"})
    assert st == 201, body
    st, body, _ = g.admin("POST", f"/services/{name}/routes", {"paths": [path]})
    assert st == 201, body
    g.wait_route(path)


# Raw-socket upstreams: raw_servers.py (re-exported here for the tests that import them from conftest)
@pytest.fixture
def raw_upstream():
    ups = []

    def make(handler, name="raw"):
        u = RawUpstream(handler, name)
        ups.append(u)
        return u

    yield make
    for u in ups:
        u.stop()


def refused_port():
    """A 127.0.0.1 port with nothing listening (bound then closed)."""
    return free_port()
