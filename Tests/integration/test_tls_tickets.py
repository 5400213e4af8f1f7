"""Session-ticket key rotation (issue #14, listener side): the master publishes a new ticket key every
ssl_session_timeout in the shared segment, the previous key still opens tickets (on every worker), older
keys are forgotten. Clients are Python's ssl module with saved sessions (TLS 1.2 and 1.3)."""
import os
import ssl
import time

from conftest import TIMEOUT
from test_tls import client_ctx, status_of, tls_exchange, tlsgw  # noqa: F401 - tlsgw is a fixture

REQ = b"GET /t HTTP/1.1\r\nHost: x\r\n\r\n"
ROTATED = "TLS session ticket keys rotated"
INTERVAL = 5.0   # ssl_session_timeout: the rotation interval


def rotations(g):
    try:
        with open(os.path.join(g.prefix, "logs", "error.log"), errors="replace") as f:
            return sum(1 for line in f if ROTATED in line)
    except OSError:
        return 0


def wait_rotations(g, n, timeout):
    """Waits until n rotations were logged; returns the monotonic time it saw the n-th."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if rotations(g) >= n:
            return time.monotonic()
        time.sleep(0.05)
    raise AssertionError(f"no rotation {n} within {timeout} s (log has {rotations(g)})")


def contexts():
    return {p: client_ctx(minimum_version=p, maximum_version=p) for p in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)}


def test_ticket_survives_one_rotation_on_every_worker_then_ages_out(tlsgw):  # noqa: F811
    make, _ = tlsgw
    g, r = make(workers=2, ssl_session_timeout="5s")
    assert r.returncode == 0, r.stderr
    ctxs = contexts()
    seen = wait_rotations(g, 1, INTERVAL + TIMEOUT)
    # Take tickets shortly before the next rotation (no timing assertion: if a rotation slipped in
    # before the tickets were issued, start again from it).
    for _ in range(3):
        n0 = rotations(g)
        time.sleep(max(0.0, seen + INTERVAL - 1.5 - time.monotonic()))
        sessions = {}
        for proto, ctx in ctxs.items():
            data, session, reused = tls_exchange(g.tls_port, REQ, ctx=ctx)
            assert status_of(data) == 200 and not reused and session is not None
            sessions[proto] = session
        if rotations(g) == n0:
            break
        seen = wait_rotations(g, n0 + 1, 1)
    else:
        raise AssertionError("could not take tickets between two rotations")
    wait_rotations(g, n0 + 1, INTERVAL + TIMEOUT)
    # Sealed with what is now the previous key: it still opens, whichever worker takes the connection
    # (SO_REUSEPORT spreads the connections over both).
    for proto, ctx in ctxs.items():
        for _ in range(6):
            data, _, reused = tls_exchange(g.tls_port, REQ, ctx=ctx, session=sessions[proto])
            assert status_of(data) == 200 and reused, proto
    # A new ticket sealed with the current key resumes too.
    for proto, ctx in ctxs.items():
        _, fresh, _ = tls_exchange(g.tls_port, REQ, ctx=ctx)
        data, _, reused = tls_exchange(g.tls_port, REQ, ctx=ctx, session=fresh)
        assert status_of(data) == 200 and reused, proto
    # One more rotation: the old ticket's key is gone, a full handshake is made and the request served.
    wait_rotations(g, n0 + 2, INTERVAL + TIMEOUT)
    for proto, ctx in ctxs.items():
        data, _, reused = tls_exchange(g.tls_port, REQ, ctx=ctx, session=sessions[proto])
        assert status_of(data) == 200 and not reused, proto
    assert len(g.worker_pids()) == 2


def test_rotation_kept_across_reload_and_off_without_tickets(tlsgw):  # noqa: F811
    make, _ = tlsgw
    g, r = make(workers=1, ssl_session_timeout="5s")
    assert r.returncode == 0, r.stderr
    ctx = client_ctx()
    _, session, _ = tls_exchange(g.tls_port, REQ, ctx=ctx)
    # A reload keeps the keys: the ticket opens on the new generation of workers.
    old = set(g.worker_pids())
    assert g.cli("reload", "-c", g.conf, "-p", g.prefix).returncode == 0
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and (set(g.worker_pids()) & old or not g.worker_pids()):
        time.sleep(0.05)
    assert not set(g.worker_pids()) & old
    data, _, reused = tls_exchange(g.tls_port, REQ, ctx=ctx, session=session)
    assert status_of(data) == 200 and reused
    # The master keeps rotating after the reload.
    n = rotations(g)
    wait_rotations(g, n + 1, INTERVAL + TIMEOUT)
    g.stop()
    # Without tickets nothing is rotated.
    g2, r = make(workers=1, ssl_session_timeout="1s", ssl_session_tickets="off")
    assert r.returncode == 0, r.stderr
    time.sleep(2.5)
    assert rotations(g2) == 0
    data, _, _ = tls_exchange(g2.tls_port, REQ)
    assert status_of(data) == 200
