"""Small helpers shared by the measurement scripts in tools/ and the integration tests (stdlib only,
loopback only)."""
import random
import socket

_handed_out = set()


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def free_port():
    """A TCP port on 127.0.0.1 that nothing is bound to right now, for a server started later.

    The port is taken from outside the kernel's ephemeral range: a port the kernel picked with bind(0)
    and that was released again can be taken meanwhile as the local port of any outgoing connection
    (a proxied request, a health probe), and the server's bind then fails with EADDRINUSE (seen in CI).
    Ports outside the range (the larger side of it, from 10000) are never chosen for outgoing connections;
    where the range covers nearly every port, a port the kernel picks is used, as before. A port is
    handed out at most once per process, so two servers of one test run never receive the same one."""
    lo, hi = _ephemeral_range()
    below, above = range(10000, lo), range(hi + 1, 65536)
    pool = below if len(below) >= len(above) else above
    if len(pool) < 1000:
        # The ephemeral range covers (nearly) every port: pick one the kernel chose, as before.
        while True:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
            s.close()
            if p not in _handed_out:
                _handed_out.add(p)
                return p
    start = random.randrange(len(pool))
    for i in range(len(pool)):
        p = pool[(start + i) % len(pool)]
        if p in _handed_out:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            s.close()
        _handed_out.add(p)
        return p
    raise RuntimeError("no free TCP port on 127.0.0.1 outside the ephemeral range")


def free_ports(n):
    """n distinct ports as free_port() gives them."""
    return [free_port() for _ in range(n)]
