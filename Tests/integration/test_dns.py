"""Issue "Upstreams and targets", section "Hostname targets" (KONG.md §4.2, §5.6): host-name targets are
resolved by the master without blocking its loop (c-ares), re-resolved on TTL expiry, weighted as Kong does,
and a failing name shows DNS_ERROR and takes no traffic.

No real DNS server is reachable here: names come from /etc/hosts (`localhost`) or from a tiny DNS server
on 127.0.0.1 that the gateway is pointed at with `dns_resolver`."""
import json
import socket
import struct
import threading
import time

import pytest

from conftest import wait_until


class FakeDNS:
    """A UDP DNS server on 127.0.0.1 answering from `records`: name -> list of
    ("A", ip, ttl) | ("SRV", priority, weight, port, target, ttl). Unknown names -> NXDOMAIN.
    `silent = True` drops every query (a server that never answers)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.records = {}
        self.silent = False
        self.queries = []
        self.lock = threading.Lock()
        self.stopped = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def serve(self):
        self.sock.settimeout(0.2)
        while not self.stopped:
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                reply = self.answer(data)
            except Exception:  # noqa: BLE001 - malformed query: ignore
                continue
            if reply is not None:
                self.sock.sendto(reply, peer)

    @staticmethod
    def encode_name(name):
        out = b""
        for label in name.rstrip(".").split("."):
            out += bytes([len(label)]) + label.encode()
        return out + b"\0"

    def answer(self, data):
        qid, flags, qd = struct.unpack(">HHH", data[:6])
        i = 12
        labels = []
        while data[i]:
            labels.append(data[i + 1:i + 1 + data[i]].decode())
            i += 1 + data[i]
        i += 1
        qtype, qclass = struct.unpack(">HH", data[i:i + 4])
        question = data[12:i + 4]
        name = ".".join(labels).lower()
        with self.lock:
            self.queries.append((name, qtype))
            if self.silent:
                return None
            recs = list(self.records.get(name, []))
        answers = []
        for r in recs:
            if r[0] == "A" and qtype == 1:
                answers.append(b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, r[2], 4) + socket.inet_aton(r[1]))
            elif r[0] == "SRV" and qtype == 33:
                rdata = struct.pack(">HHH", r[1], r[2], r[3]) + self.encode_name(r[4])
                answers.append(b"\xc0\x0c" + struct.pack(">HHIH", 33, 1, r[5], len(rdata)) + rdata)
        rcode = 0 if recs else 3
        header = struct.pack(">HHHHHH", qid, 0x8180 | rcode, 1, len(answers), 0, 0)
        return header + question + b"".join(answers)

    def count(self, name, qtype):
        with self.lock:
            return sum(1 for q in self.queries if q == (name, qtype))

    def stop(self):
        self.stopped = True
        self.sock.close()


@pytest.fixture
def dns():
    servers = []

    def make():
        s = FakeDNS()
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


def who(g, path="/dns"):
    st, body, _ = g.get(path)
    assert st == 200, (st, body)
    return json.loads(body)["upstream"]


def setup(g, targets, path="/dns"):
    assert g.admin("POST", "/upstreams", {"name": "dns_up"})[0] == 201
    ids = []
    for target, weight in targets:
        st, body, _ = g.admin("POST", "/upstreams/dns_up/targets", {"target": target, "weight": weight})
        assert st == 201, body
        ids.append(body["id"])
    assert g.admin("POST", "/services", {"name": "dns_svc", "host": "dns_up"})[0] == 201
    assert g.admin("POST", "/services/dns_svc/routes", {"name": "dns_route", "paths": [path]})[0] == 201
    return ids


def health(g):
    st, body, _ = g.admin("GET", "/upstreams/dns_up/health")
    assert st == 200, body
    return {t["target"]: t for t in body["data"]}


def test_localhost_target_resolved_from_hosts_file(gateway, upstream):
    a = upstream("a")
    g = gateway(workers=2)
    setup(g, [(f"localhost:{a.port}", 100)])
    g.wait_route("/dns")
    assert all(who(g) == "a" for _ in range(10))
    h = health(g)[f"localhost:{a.port}"]
    assert h["health"] == "HEALTHCHECKS_OFF"
    assert {(x["ip"], x["port"], x["weight"]) for x in h["data"]["addresses"]} == {("127.0.0.1", a.port, 100)}


def test_unresolvable_target_dns_error_and_traffic_to_the_other(gateway, upstream):
    a = upstream("a")
    g = gateway(workers=2)
    setup(g, [("nonexistent.invalid:80", 100), (a.address, 100)])
    g.wait_route("/dns")
    h = health(g)
    assert h["nonexistent.invalid:80"]["health"] == "DNS_ERROR"
    assert h["nonexistent.invalid:80"]["data"]["addresses"] == []
    assert h[a.address]["health"] == "HEALTHCHECKS_OFF"
    # No request goes to the name without addresses: all succeed on the first try.
    assert all(who(g) == "a" for _ in range(30))
    # Still DNS_ERROR once the lookup has finished (failed) in the background.
    wait_until(lambda: "could not be resolved" in g.log(), timeout=20, what="DNS failure logged")
    assert health(g)["nonexistent.invalid:80"]["health"] == "DNS_ERROR"
    assert all(who(g) == "a" for _ in range(10))


def test_admin_api_responsive_while_lookup_pending(gateway, upstream, dns):
    server = dns()
    server.silent = True          # never answers: every lookup waits for c-ares' timeouts
    a = upstream("a")
    g = gateway(workers=1, dns_resolver=server.address)
    setup(g, [("slow.example.test:80", 100), (a.address, 100)])
    wait_until(lambda: server.count("slow.example.test", 33) >= 1, what="SRV query sent")
    # While the query is pending the master keeps serving the Admin API and publishing.
    for i in range(20):
        t0 = time.monotonic()
        st, _, _ = g.admin("GET", "/status")
        assert st == 200
        assert time.monotonic() - t0 < 0.5
    t0 = time.monotonic()
    assert g.admin("POST", "/services", {"name": "other", "url": "http://127.0.0.1:1"})[0] == 201
    assert time.monotonic() - t0 < 0.5
    assert health(g)["slow.example.test:80"]["health"] == "DNS_ERROR"
    g.wait_route("/dns")
    assert all(who(g) == "a" for _ in range(10))


def test_a_records_ttl_refresh_and_failure_recovery(gateway, upstream, dns):
    server = dns()
    a = upstream("a")
    server.records["svc.test"] = [("A", "127.0.0.1", 1)]
    g = gateway(workers=1, dns_resolver=server.address)
    setup(g, [(f"svc.test:{a.port}", 100)])
    g.wait_route("/dns")
    assert who(g) == "a"
    addrs = lambda: {(x["ip"], x["port"], x["weight"]) for x in health(g)[f"svc.test:{a.port}"]["data"]["addresses"]}
    assert addrs() == {("127.0.0.1", a.port, 100)}
    # TTL 1 s: the new answer (two addresses, each with the target's full weight) shows up. Only /health
    # is checked for it: the upstream listens on 127.0.0.1 only.
    server.records["svc.test"] = [("A", "127.0.0.1", 1), ("A", "127.0.0.2", 1)]
    wait_until(lambda: addrs() == {("127.0.0.1", a.port, 100), ("127.0.0.2", a.port, 100)}, what="re-resolved")
    # The name disappears (NXDOMAIN): DNS_ERROR, no addresses, requests fail with no upstream.
    server.records.pop("svc.test")
    wait_until(lambda: health(g)[f"svc.test:{a.port}"]["health"] == "DNS_ERROR", what="DNS_ERROR after NXDOMAIN")
    wait_until(lambda: g.get("/dns")[0] == 503, what="503 without addresses")


def test_srv_top_priority_port_and_weights(gateway, upstream, dns):
    server = dns()
    a, b, c = upstream("a"), upstream("b"), upstream("c")
    server.records["_http._tcp.svc.test"] = [
        ("SRV", 10, 10, a.port, "a.svc.test", 60),
        ("SRV", 10, 0, b.port, "b.svc.test", 60),     # weight 0 -> 1
        ("SRV", 20, 50, c.port, "c.svc.test", 60),    # lower priority: not used
    ]
    server.records["a.svc.test"] = [("A", "127.0.0.1", 60)]
    server.records["b.svc.test"] = [("A", "127.0.0.1", 60)]
    server.records["c.svc.test"] = [("A", "127.0.0.1", 60)]
    g = gateway(workers=1, dns_resolver=server.address)
    setup(g, [("_http._tcp.svc.test:9", 100)])
    wait_until(lambda: health(g)["_http._tcp.svc.test:9"]["health"] != "DNS_ERROR", what="SRV resolved")
    got = {(x["ip"], x["port"], x["weight"]) for x in health(g)["_http._tcp.svc.test:9"]["data"]["addresses"]}
    assert got == {("127.0.0.1", a.port, 10), ("127.0.0.1", b.port, 1)}
    g.wait_route("/dns")
    seen = [who(g) for _ in range(55)]
    assert seen.count("a") == 50 and seen.count("b") == 5, seen
    assert "c" not in seen


def test_plain_service_host_resolved_by_the_master(gateway, upstream, dns):
    server = dns()
    a = upstream("a")
    server.records["plain.test"] = [("A", "127.0.0.1", 60)]
    g = gateway(workers=2, dns_resolver=server.address)
    assert g.admin("POST", "/services", {"name": "plain", "url": f"http://plain.test:{a.port}"})[0] == 201
    assert g.admin("POST", "/services/plain/routes", {"paths": ["/plain"]})[0] == 201
    assert g.admin("POST", "/services", {"name": "nx", "url": "http://nowhere.test:80"})[0] == 201
    assert g.admin("POST", "/services/nx/routes", {"paths": ["/nx"]})[0] == 201
    g.wait_route("/plain")
    assert who(g, "/plain") == "a"
    st, body, _ = g.get("/nx")
    assert st == 503 and b"name resolution failed" in body, (st, body)
    assert server.count("plain.test", 1) >= 1   # asked by the master's resolver


def test_failed_name_retried_after_30_seconds(gateway, upstream, dns):
    server = dns()
    a = upstream("a")
    g = gateway(workers=1, dns_resolver=server.address)
    setup(g, [(f"late.test:{a.port}", 100)])
    wait_until(lambda: "late.test could not be resolved" in g.log(), what="failure logged")
    t_fail = time.monotonic()
    server.records["late.test"] = [("A", "127.0.0.1", 60)]
    time.sleep(2)
    assert health(g)[f"late.test:{a.port}"]["health"] == "DNS_ERROR"   # not asked again yet
    wait_until(lambda: health(g)[f"late.test:{a.port}"]["health"] == "HEALTHCHECKS_OFF", timeout=40,
               interval=0.2, what="resolved on the 30 s retry")
    assert 28 <= time.monotonic() - t_fail <= 36
    g.wait_route("/dns")
    assert who(g) == "a"
