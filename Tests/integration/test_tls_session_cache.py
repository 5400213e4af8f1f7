"""The TLS session cache every worker shares (issue #14; nginx's `ssl_session_cache shared:SSL:<size>`, Kong's
ssl_session_cache_size): with ssl_session_tickets = off, a TLS 1.2 session id or a TLS 1.3 (stateful) ticket
obtained on one worker resumes on the other; sessions expire after ssl_session_timeout; a full cache evicts its
oldest sessions and keeps serving; the cache survives a reload and a SIGKILLed worker. Which worker served a
connection is read from correlation-id's `tracker` id (server_addr-server_port-pid-...), echoed downstream."""
import os
import socket
import signal
import ssl
import time

from conftest import TIMEOUT, wait_until
from test_tls import client_ctx, status_of, tls_exchange, tlsgw  # noqa: F401 - tlsgw is a fixture

REQ = b"GET /t HTTP/1.1\r\nHost: x\r\n\r\n"
PROTOS = (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)
NO_TICKET = "TLSv1.2 without tickets"   # a TLS 1.2 client that does not take tickets (session ids only)


CTXS = {}


def ctx_for(proto):
    """One client context per protocol (Python resumes a session only with the context that made it)."""
    if proto not in CTXS:
        if proto == NO_TICKET:
            CTXS[proto] = client_ctx(minimum_version=ssl.TLSVersion.TLSv1_2, maximum_version=ssl.TLSVersion.TLSv1_2)
            CTXS[proto].options |= ssl.OP_NO_TICKET
        else:
            CTXS[proto] = client_ctx(minimum_version=proto, maximum_version=proto)
    return CTXS[proto]


def served_by(data):
    """The pid of the worker that answered (correlation-id tracker: addr-port-pid-conn-requests-time)."""
    head = data.partition(b"\r\n\r\n")[0].decode("latin-1")
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "kong-request-id":
            return int(value.strip().split("-")[2])
    raise AssertionError(f"no Kong-Request-ID in {head!r}")


def exchange(g, proto, session=None):
    data, sess, reused = tls_exchange(g.tls_port, REQ, ctx=ctx_for(proto), session=session)
    assert status_of(data) == 200, data[:200]
    return served_by(data), reused, sess


def start(make, **extra):
    for _ in range(3):   # free_port() races with other processes of the machine: new ports, once or twice
        g, r = make(**dict({"ssl_session_tickets": "off"}, **extra))
        if "Address already in use" not in r.stderr:
            break
    assert r.returncode == 0, r.stderr
    s, b, _ = g.admin("POST", "/plugins", {"name": "correlation-id", "config": {"generator": "tracker", "echo_downstream": True}})
    assert s == 201, b
    wait_until(lambda: b"Kong-Request-ID" in tls_exchange(g.tls_port, REQ)[0], what="correlation-id active")
    return g


def resume_on_other_worker(g, proto):
    """A full handshake, then a resumption, until the resumption lands on the other worker (SO_REUSEPORT
    spreads the connections); every resumption must succeed whichever worker takes it."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        first, reused, session = exchange(g, proto)
        assert not reused and session is not None
        second, reused, _ = exchange(g, proto, session=session)
        assert reused, (proto, first, second)
        if second != first:
            return first, second
    raise AssertionError(f"{proto}: no connection reached a second worker within {TIMEOUT} s")


def test_session_resumes_on_the_other_worker_without_tickets(tlsgw):  # noqa: F811
    make, _ = tlsgw
    g = start(make, workers=2)
    for proto in PROTOS:
        first, second = resume_on_other_worker(g, proto)
        assert {first, second} <= set(g.worker_pids())
    # TLS 1.2 without tickets: the client holds a session id only (no ticket), so the resumption went
    # through the cache; the id session resumes many times, on both workers.
    _, _, session = exchange(g, ssl.TLSVersion.TLSv1_2)
    assert not session.has_ticket and len(session.id) == 32
    pids = set()
    for _ in range(12):
        pid, reused, _ = exchange(g, ssl.TLSVersion.TLSv1_2, session=session)
        assert reused
        pids.add(pid)
    # TLS 1.3 without tickets: stateful tickets (the ticket names a cache entry). OpenSSL makes them single
    # use only for early data (off here), so a ticket resumes more than once, on any worker.
    _, _, session = exchange(g, ssl.TLSVersion.TLSv1_3)
    for _ in range(4):
        _, reused, _ = exchange(g, ssl.TLSVersion.TLSv1_3, session=session)
        assert reused


def test_tls13_keeps_stateless_tickets_when_tickets_are_on(tlsgw):  # noqa: F811
    make, _ = tlsgw
    g = start(make, workers=2, ssl_session_tickets="on", ssl_session_cache_size="32k")
    # A TLS 1.3 ticket and a TLS 1.2 session id (a client without tickets) taken first.
    _, _, ticket13 = exchange(g, ssl.TLSVersion.TLSv1_3)
    _, _, id12 = exchange(g, NO_TICKET)
    assert not id12.has_ticket
    _, reused, _ = exchange(g, NO_TICKET, session=id12)
    assert reused
    # Fill the cache with session ids: the first id is evicted, but the TLS 1.3 ticket does not live in
    # the cache (stateless, sealed with the shared ticket keys): it still resumes, on both workers.
    fill(g, NO_TICKET, 400)
    _, reused, _ = exchange(g, NO_TICKET, session=id12)
    assert not reused
    for _ in range(6):
        _, reused, _ = exchange(g, ssl.TLSVersion.TLSv1_3, session=ticket13)
        assert reused
    # TLS 1.2 with tickets on: a client that takes tickets resumes with one.
    _, _, session = exchange(g, ssl.TLSVersion.TLSv1_2)
    assert session.has_ticket
    _, reused, _ = exchange(g, ssl.TLSVersion.TLSv1_2, session=session)
    assert reused


def test_sessions_expire_after_ssl_session_timeout(tlsgw):  # noqa: F811
    make, _ = tlsgw
    g = start(make, workers=2, ssl_session_timeout="2s")
    sessions = {}
    for proto in PROTOS:
        _, reused, sessions[proto] = exchange(g, proto)
        assert not reused
    # Within the timeout the TLS 1.2 session resumes (the TLS 1.3 ticket is kept for after the wait).
    _, reused, _ = exchange(g, ssl.TLSVersion.TLSv1_2, session=sessions[ssl.TLSVersion.TLSv1_2])
    assert reused
    time.sleep(3.2)
    for proto in PROTOS:
        _, reused, fresh = exchange(g, proto, session=sessions[proto])
        assert not reused, proto
        # A new session resumes again.
        _, reused, _ = exchange(g, proto, session=fresh)
        assert reused, proto


def fill(g, proto, n):
    for _ in range(n):
        exchange(g, proto)


def test_full_cache_evicts_the_oldest_and_keeps_serving(tlsgw):  # noqa: F811
    make, _ = tlsgw
    g = start(make, workers=2, ssl_session_cache_size="32k")
    oldest = {proto: exchange(g, proto)[2] for proto in PROTOS}
    _, reused, _ = exchange(g, ssl.TLSVersion.TLSv1_2, session=oldest[ssl.TLSVersion.TLSv1_2])
    assert reused
    # 32k holds about a hundred sessions: 400 new ones push the first ones out (TLS 1.3 stateful tickets too).
    fill(g, ssl.TLSVersion.TLSv1_2, 400)
    recent = exchange(g, ssl.TLSVersion.TLSv1_2)[2]
    for proto in PROTOS:
        _, reused, _ = exchange(g, proto, session=oldest[proto])
        assert not reused, proto
    for _ in range(4):
        _, reused, _ = exchange(g, ssl.TLSVersion.TLSv1_2, session=recent)
        assert reused
    assert len(g.worker_pids()) == 2


def test_cache_size_refused_below_32k(tlsgw):  # noqa: F811
    make, _ = tlsgw
    for bad in ("1k", "16k", "2g"):
        g, r = make(workers=1, ssl_session_cache_size=bad)
        assert r.returncode != 0
        assert "ssl_session_cache_size" in r.stderr and "must be between 32k and 1g" in r.stderr, r.stderr


def test_sessions_survive_reload_and_killed_worker(tlsgw):  # noqa: F811
    make, _ = tlsgw
    g = start(make, workers=1)
    sessions = {proto: exchange(g, proto)[2] for proto in PROTOS}
    # Reload: the cache lives in the shared segment, the new worker finds the sessions.
    old = set(g.worker_pids())
    assert g.cli("reload", "-c", g.conf, "-p", g.prefix).returncode == 0
    wait_until(lambda: g.worker_pids() and not set(g.worker_pids()) & old, what="new worker generation")
    pid, reused, _ = exchange(g, ssl.TLSVersion.TLSv1_2, session=sessions[ssl.TLSVersion.TLSv1_2])
    assert reused and pid not in old
    pid, reused, sessions[ssl.TLSVersion.TLSv1_3] = exchange(g, ssl.TLSVersion.TLSv1_3, session=sessions[ssl.TLSVersion.TLSv1_3])
    assert reused and pid not in old
    # SIGKILL the worker: the master respawns one, which resumes the same sessions.
    victim = g.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: g.worker_pids() and victim not in g.worker_pids(), what="respawned worker")

    def resumed(proto):
        try:
            pid, reused, sess = exchange(g, proto, session=sessions[proto])
        except OSError:
            return False   # the respawned worker is not accepting yet
        if proto == ssl.TLSVersion.TLSv1_3:
            sessions[proto] = sess   # single use: the next try needs the new ticket
        return reused and pid != victim
    wait_until(lambda: resumed(ssl.TLSVersion.TLSv1_2), what="TLS 1.2 resumption on the new worker")
    _, reused, _ = exchange(g, ssl.TLSVersion.TLSv1_3, session=sessions[ssl.TLSVersion.TLSv1_3])
    assert reused
    # New sessions are stored and found as before.
    _, _, fresh = exchange(g, ssl.TLSVersion.TLSv1_2)
    _, reused, _ = exchange(g, ssl.TLSVersion.TLSv1_2, session=fresh)
    assert reused


def test_session_of_one_certificate_is_not_resumed_under_another(tlsgw, tmp_path):  # noqa: F811
    """Certificates chosen per SNI share the one cache, but a session resumes only under the certificate it
    was made with (the session id context names the certificate): a session of a.test offered with SNI
    b.test, or with no SNI (the default certificate), gets a full handshake with the right certificate."""
    from test_tls_certificates import Certs
    make, _ = tlsgw
    g = start(make, workers=2)
    certs = Certs(tmp_path / "certs")
    for name in ("a.test", "b.test"):
        crt, key = certs.self_signed(name)
        s, b, _ = g.admin("POST", "/certificates", {"cert": crt, "key": key, "snis": [name]})
        assert s == 201, b

    def handshake(proto, sni, session=None):
        with socket.create_connection(("127.0.0.1", g.tls_port), timeout=TIMEOUT) as s:
            with ctx_for(proto).wrap_socket(s, server_hostname=sni, session=session) as t:
                t.sendall(REQ)
                data = t.recv(65536)
                cn = t.getpeercert(binary_form=True)
                return status_of(data), t.session, t.session_reused, cn

    wait_until(lambda: handshake(ssl.TLSVersion.TLSv1_2, "a.test")[3] != handshake(ssl.TLSVersion.TLSv1_2, "b.test")[3],
               what="per-SNI certificates")
    for proto in PROTOS:
        status, sess_a, reused, cert_a = handshake(proto, "a.test")
        assert status == 200 and not reused
        _, _, reused, cert = handshake(proto, "a.test", sess_a)
        assert reused and cert == cert_a, proto
        status, _, reused, cert_b = handshake(proto, "b.test", sess_a)
        assert status == 200 and not reused and cert_b != cert_a, proto
        status, _, reused, cert_d = handshake(proto, "localhost", sess_a)
        assert status == 200 and not reused and cert_d not in (cert_a, cert_b), proto
