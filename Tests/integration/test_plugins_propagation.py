"""Plugin and credential changes are in force on EVERY worker for the next request after the Admin API's
answer (no retries, no sleeps), with SQLite and in DB-less mode (POST /config); a reload keeps the shared
segment: rate-limit counters and cached responses survive it.

Each worker is reached deterministically: a keep-alive connection is pinned to each worker (the
accepted socket is found in /proc/net/tcp and in the worker's descriptors), and new connections
(SO_REUSEPORT spreads them) are checked as well."""
import http.client
import os

from conftest import TIMEOUT, add_route, alive, children, wait_until


def _server_inode(g, client_port):
    want_local = f"0100007F:{g.proxy_port:04X}"
    want_remote = f"0100007F:{client_port:04X}"
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            if cols[1] == want_local and cols[2] == want_remote:
                return cols[9]
    return None


def _owner(g, inode):
    target = f"socket:[{inode}]"
    for pid in g.worker_pids():
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                        return pid
                except OSError:
                    continue
        except OSError:
            continue
    return None


class Pinned:
    """One keep-alive connection per worker."""

    def __init__(self, g, path, workers=2, headers=None):
        self.g, self.path, self.headers = g, path, headers or {}
        self.conns = {}
        for _ in range(64):
            if len(self.conns) == workers:
                break
            c, pid = self._open()
            if pid in self.conns or pid is None:
                c.close()
            else:
                self.conns[pid] = c
        assert len(self.conns) == workers, f"could not reach {workers} workers: {list(self.conns)}"

    def _open(self):
        c = http.client.HTTPConnection("127.0.0.1", self.g.proxy_port, timeout=TIMEOUT)
        c.request("GET", self.path, headers=self.headers)
        r = c.getresponse()
        r.read()
        if r.will_close:
            c.close()
            return c, None
        inode = _server_inode(self.g, c.sock.getsockname()[1])
        return c, (wait_until(lambda: _owner(self.g, inode), what="accepting worker") if inode else None)

    def each(self, headers=None, method="GET", path=None):
        """One request per worker on its pinned connection: [(pid, status, body, headers)]."""
        out = []
        for pid, c in sorted(self.conns.items()):
            c.request(method, path or self.path, headers=headers or {})
            r = c.getresponse()
            body = r.read()
            assert not r.will_close, f"worker {pid} closed the pinned connection ({r.status})"
            out.append((pid, r.status, body, {k.lower(): v for k, v in r.getheaders()}))
        return out

    def close(self):
        for c in self.conns.values():
            c.close()


def everywhere(g, pins, check, headers=None, path=None, fresh=8):
    """check(status, body, lower-case headers) holds on every worker's pinned connection and on `fresh` new
    connections."""
    for pid, s, body, h in pins.each(headers=headers, path=path):
        assert check(s, body, h), f"worker {pid}: {s} {body[:200]!r} {h}"
    for i in range(fresh):
        s, body, h = g.get(path or pins.path, headers=headers)
        h = {k.lower(): v for k, v in h.items()}
        assert check(s, body, h), f"new connection {i}: {s} {body[:200]!r} {h}"


def test_plugin_and_credential_changes_reach_every_worker(gateway, upstream):
    g = gateway(workers=2)
    up = upstream("u")
    add_route(g, up, "/prop")
    pins = Pinned(g, "/prop")
    try:
        # response-transformer: created, config PATCHed, disabled, enabled, deleted.
        s, p, _ = g.admin("POST", "/plugins", {"name": "response-transformer", "config": {"add": {"headers": ["X-V:1"]}}})
        assert s == 201, p
        everywhere(g, pins, lambda s, b, h: s == 200 and h.get("x-v") == "1")
        s, b, _ = g.admin("PATCH", f"/plugins/{p['id']}", {"config": {"add": {"headers": ["X-V:2"]}}})
        assert s == 200, b
        everywhere(g, pins, lambda s, b, h: s == 200 and h.get("x-v") == "2")
        assert g.admin("PATCH", f"/plugins/{p['id']}", {"enabled": False})[0] == 200
        everywhere(g, pins, lambda s, b, h: s == 200 and "x-v" not in h)
        assert g.admin("PATCH", f"/plugins/{p['id']}", {"enabled": True})[0] == 200
        everywhere(g, pins, lambda s, b, h: s == 200 and h.get("x-v") == "2")
        assert g.admin("DELETE", f"/plugins/{p['id']}")[0] == 204
        everywhere(g, pins, lambda s, b, h: s == 200 and "x-v" not in h)

        # key-auth and a credential.
        s, ka, _ = g.admin("POST", "/plugins", {"name": "key-auth"})
        assert s == 201, ka
        everywhere(g, pins, lambda s, b, h: s == 401)
        assert g.admin("POST", "/consumers", {"username": "bob"})[0] == 201
        everywhere(g, pins, lambda s, b, h: s == 401, headers={"apikey": "k1"})
        s, cred, _ = g.admin("POST", "/consumers/bob/key-auth", {"key": "k1"})
        assert s == 201, cred
        everywhere(g, pins, lambda s, b, h: s == 200, headers={"apikey": "k1"})
        # A credential's key PATCHed: the old key stops working at once.
        assert g.admin("PATCH", f"/consumers/bob/key-auth/{cred['id']}", {"key": "k2"})[0] == 200
        everywhere(g, pins, lambda s, b, h: s == 401, headers={"apikey": "k1"})
        everywhere(g, pins, lambda s, b, h: s == 200, headers={"apikey": "k2"})
        # key_names PATCHed.
        assert g.admin("PATCH", f"/plugins/{ka['id']}", {"config": {"key_names": ["x-key"]}})[0] == 200
        everywhere(g, pins, lambda s, b, h: s == 401, headers={"apikey": "k2"})
        everywhere(g, pins, lambda s, b, h: s == 200, headers={"x-key": "k2"})
        assert g.admin("DELETE", f"/consumers/bob/key-auth/{cred['id']}")[0] == 204
        everywhere(g, pins, lambda s, b, h: s == 401, headers={"x-key": "k2"})
        # A consumer deleted takes its credentials with it.
        assert g.admin("POST", "/consumers/bob/key-auth", {"key": "k3"})[0] == 201
        everywhere(g, pins, lambda s, b, h: s == 200, headers={"x-key": "k3"})
        assert g.admin("DELETE", "/consumers/bob")[0] == 204
        everywhere(g, pins, lambda s, b, h: s == 401, headers={"x-key": "k3"})
        assert g.admin("DELETE", f"/plugins/{ka['id']}")[0] == 204
        everywhere(g, pins, lambda s, b, h: s == 200)

        # rate-limiting: the limit PATCHed is the limit of the next request.
        s, rl, _ = g.admin("POST", "/plugins", {"name": "rate-limiting", "config": {"hour": 1000}})
        assert s == 201, rl
        everywhere(g, pins, lambda s, b, h: h.get("x-ratelimit-limit-hour") == "1000")
        assert g.admin("PATCH", f"/plugins/{rl['id']}", {"config": {"hour": 999}})[0] == 200
        everywhere(g, pins, lambda s, b, h: h.get("x-ratelimit-limit-hour") == "999")

        # acl and basic-auth with a group added / removed.
        assert g.admin("DELETE", f"/plugins/{rl['id']}")[0] == 204
        assert g.admin("POST", "/consumers", {"username": "ann"})[0] == 201
        assert g.admin("POST", "/consumers/ann/basic-auth", {"username": "ann", "password": "pw"})[0] == 201
        assert g.admin("POST", "/plugins", {"name": "basic-auth"})[0] == 201
        assert g.admin("POST", "/plugins", {"name": "acl", "config": {"allow": ["gold"]}})[0] == 201
        auth = {"Authorization": "Basic YW5uOnB3"}  # ann:pw
        everywhere(g, pins, lambda s, b, h: s == 403, headers=auth)
        s, grp, _ = g.admin("POST", "/consumers/ann/acls", {"group": "gold"})
        assert s == 201, grp
        everywhere(g, pins, lambda s, b, h: s == 200, headers=auth)
        assert g.admin("DELETE", f"/consumers/ann/acls/{grp['id']}")[0] == 204
        everywhere(g, pins, lambda s, b, h: s == 403, headers=auth)
    finally:
        pins.close()


def test_dbless_post_config_reaches_every_worker(gateway, upstream):
    g = gateway(workers=2, database="off")
    up = upstream("u")

    def config(plugins, consumers=()):
        return {"_format_version": "3.0",
                "services": [{"name": "s", "url": f"http://{up.address}",
                              "routes": [{"name": "r", "paths": ["/dbl"]}]}],
                "plugins": plugins, "consumers": list(consumers)}

    st, b, _ = g.admin("POST", "/config", config([]))
    assert st == 201, b
    g.wait_route("/dbl")
    pins = Pinned(g, "/dbl")
    try:
        steps = [
            (config([{"name": "response-transformer", "config": {"add": {"headers": ["X-V:1"]}}}]),
             {}, lambda s, b, h: s == 200 and h.get("x-v") == "1"),
            (config([{"name": "response-transformer", "config": {"add": {"headers": ["X-V:2"]}}}]),
             {}, lambda s, b, h: s == 200 and h.get("x-v") == "2"),
            (config([{"name": "response-transformer", "enabled": False, "config": {"add": {"headers": ["X-V:3"]}}}]),
             {}, lambda s, b, h: s == 200 and "x-v" not in h),
            (config([{"name": "key-auth"}], [{"username": "bob", "keyauth_credentials": [{"key": "k1"}]}]),
             {}, lambda s, b, h: s == 401),
            (config([{"name": "key-auth"}], [{"username": "bob", "keyauth_credentials": [{"key": "k1"}]}]),
             {"apikey": "k1"}, lambda s, b, h: s == 200),
            (config([{"name": "key-auth"}], [{"username": "bob", "keyauth_credentials": [{"key": "k2"}]}]),
             {"apikey": "k1"}, lambda s, b, h: s == 401),
            (config([{"name": "rate-limiting", "config": {"hour": 777}}]),
             {}, lambda s, b, h: s == 200 and h.get("x-ratelimit-limit-hour") == "777"),
            (config([]), {"apikey": "k1"}, lambda s, b, h: s == 200 and "x-ratelimit-limit-hour" not in h),
        ]
        for i, (doc, headers, check) in enumerate(steps):
            st, b, _ = g.admin("POST", "/config", doc)
            assert st == 201, (i, b)
            everywhere(g, pins, check, headers=headers)
    finally:
        pins.close()


def _reload(g):
    master = g.master_pid()
    old = set(g.worker_pids())
    r = g.cli("reload", "-c", g.conf, "-p", g.prefix)
    assert r.returncode == 0, r.stdout + r.stderr

    def done():
        pids = g.worker_pids()
        return (len(pids) == len(old) and not set(pids) & old and all(alive(p) for p in pids)
                and sorted(children(master)) == sorted(pids))
    wait_until(done, what="new workers, old ones gone")
    assert g.master_pid() == master


def test_reload_keeps_counters_and_cache(gateway, upstream):
    g = gateway(workers=2)
    up = upstream("u")
    add_route(g, up, "/rl")
    add_route(g, up, "/pc")
    rl = g.admin("GET", "/routes")[1]["data"]
    rid_rl = next(r["id"] for r in rl if r["paths"] == ["/rl"])
    rid_pc = next(r["id"] for r in rl if r["paths"] == ["/pc"])
    assert g.admin("POST", f"/routes/{rid_rl}/plugins", {"name": "rate-limiting",
                                                         "config": {"hour": 5, "day": 50}})[0] == 201
    assert g.admin("POST", f"/routes/{rid_pc}/plugins", {"name": "proxy-cache",
                                                         "config": {"strategy": "memory", "cache_ttl": 300}})[0] == 201
    remaining = []
    for _ in range(3):
        s, _, h = g.get("/rl")
        assert s == 200
        remaining.append((int(h["X-RateLimit-Remaining-Hour"]), int(h["X-RateLimit-Remaining-Day"])))
    s, body, h = g.get("/pc/x")
    assert s == 200 and h["X-Cache-Status"] == "Miss"
    key = h["X-Cache-Key"]
    hits = up.hits
    _reload(g)
    # The hour window may have turned between the requests (at most once): the day counter still counts all.
    s, _, h = g.get("/rl")
    assert s == 200 and int(h["X-RateLimit-Remaining-Day"]) == remaining[-1][1] - 1 == 46, (remaining, h)
    if remaining[0][0] == 4 and remaining[-1][0] == 2:
        assert h["X-RateLimit-Remaining-Hour"] in ("1", "4"), h  # "4": an hour boundary right at the reload
    for _ in range(6):
        s, body2, h2 = g.get("/pc/x")
        assert s == 200 and h2["X-Cache-Status"] == "Hit" and h2["X-Cache-Key"] == key and body2 == body
    assert up.hits == hits + 1
    # Twice more: the segment is the master's, whatever the number of reloads.
    _reload(g)
    s, _, h = g.get("/rl")
    assert int(h["X-RateLimit-Remaining-Day"]) == 45
    assert g.get("/pc/x")[2]["X-Cache-Status"] == "Hit"


def test_scope_changes_reach_every_worker(gateway, upstream):
    """A plugin moved between scopes by PATCH / PUT, and a service deleted with its plugins."""
    g = gateway(workers=2)
    up = upstream("u")
    add_route(g, up, "/a")
    add_route(g, up, "/b")
    routes = {r["paths"][0]: r["id"] for r in g.admin("GET", "/routes")[1]["data"]}
    pa, pb = Pinned(g, "/a"), Pinned(g, "/b")
    try:
        def limits(a, b):
            everywhere(g, pa, lambda s, body, h: h.get("x-ratelimit-limit-hour") == a, fresh=4)
            everywhere(g, pb, lambda s, body, h: h.get("x-ratelimit-limit-hour") == b, fresh=4)

        s, p, _ = g.admin("POST", f"/routes/{routes['/a']}/plugins", {"name": "rate-limiting", "config": {"hour": 500}})
        assert s == 201, p
        limits("500", None)
        assert g.admin("PATCH", f"/plugins/{p['id']}", {"route": None})[0] == 200
        limits("500", "500")
        assert g.admin("PATCH", f"/plugins/{p['id']}", {"route": {"id": routes["/b"]}})[0] == 200
        limits(None, "500")
        assert g.admin("PUT", f"/plugins/{p['id']}", {"name": "rate-limiting", "config": {"hour": 600}})[0] == 200
        limits("600", "600")
        s, sp, _ = g.admin("POST", "/services/svcb/plugins", {"name": "rate-limiting", "config": {"hour": 700}})
        assert s == 201, sp
        limits("600", "700")
        assert g.admin("DELETE", f"/routes/{routes['/b']}")[0] == 204
        assert g.admin("DELETE", "/services/svcb")[0] == 204
        assert g.admin("GET", f"/plugins/{sp['id']}")[0] == 404
        everywhere(g, pb, lambda s, body, h: s == 404, fresh=4)
        everywhere(g, pa, lambda s, body, h: h.get("x-ratelimit-limit-hour") == "600", fresh=4)
    finally:
        pa.close()
        pb.close()
