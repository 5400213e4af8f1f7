"""Small helpers every bench module uses: logging to stderr, free loopback ports, waiting for a
condition with a deadline, and a plain GET on 127.0.0.1 (no retries: callers wait with wait_until)."""
import os
import socket
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from netutil import free_port, free_ports  # noqa: E402,F401 - re-exported for the bench modules


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def wait_until(pred, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what} (last: {last!r})")


def http_get(port, path, timeout=3.0):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
