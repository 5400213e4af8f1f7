"""Consumer credentials on the Admin API (issue #12): key-auth, basic-auth and acls, ported from Kong's
spec/03-plugins/09-key-auth/01-api_spec.lua, 10-basic-auth/02-api_spec.lua and 18-acl/01-api_spec.lua, plus
ttl expiry, cascades, DB-less POST /config, db_import/db_export and what the workers receive."""
import hashlib
import json
import os
import re
import time

from conftest import wait_until


def consumer(g, name):
    st, body, _ = g.admin("POST", "/consumers", {"username": name})
    assert st == 201, body
    return body["id"]


def sha1(password, consumer_id):
    return hashlib.sha1((password + consumer_id).encode()).hexdigest()


def delta_puts(g, kind):
    """Every document of `kind` put by the deltas in run/ (oldest first)."""
    run = os.path.join(g.prefix, "run")
    out = []
    names = [n for n in os.listdir(run) if n.startswith("config.delta.")]
    for n in sorted(names, key=lambda n: int(n.split(".")[2])):
        with open(os.path.join(run, n)) as f:
            out += json.load(f)["put"].get(kind, [])
    return out


def published(g):
    with open(os.path.join(g.prefix, "run", "config.json")) as f:
        return json.load(f)


def test_key_auth_admin_api(gateway):
    g = gateway(workers=1)
    bob = consumer(g, "bob")
    alice = consumer(g, "alice")
    # POST with a key, and without one: Kong's 32-character random key.
    st, cred, _ = g.admin("POST", "/consumers/bob/key-auth", {"key": "1234"})
    assert st == 201 and cred["consumer"] == {"id": bob} and cred["key"] == "1234" and cred["ttl"] is None
    st, auto, _ = g.admin("POST", "/consumers/bob/key-auth", {})
    assert st == 201 and re.fullmatch(r"[A-Za-z0-9]{32}", auto["key"]), auto
    st, tagged, _ = g.admin("POST", "/consumers/bob/key-auth", form={"key": "tagged", "tags[]": ["tag1", "tag2"]})
    assert st == 201 and tagged["tags"] == ["tag1", "tag2"]
    # Errors.
    st, body, _ = g.admin("POST", "/key-auths", {"key": "x"})
    assert st == 400 and body["message"] == "schema violation (consumer: required field missing)"
    st, body, _ = g.admin("POST", "/consumers/alice/key-auth", {"key": "1234"})
    assert st == 409 and body == {"code": 5, "name": "unique constraint violation",
                                  "message": "UNIQUE violation detected on '{key=\"1234\"}'", "fields": {"key": "1234"}}
    assert g.admin("POST", "/consumers/nobody/key-auth", {})[0] == 404
    # GET by key and by id; only under the owning consumer.
    assert g.admin("GET", "/consumers/bob/key-auth/1234")[1]["id"] == cred["id"]
    assert g.admin("GET", f"/consumers/bob/key-auth/{cred['id']}")[0] == 200
    assert g.admin("GET", "/consumers/alice/key-auth/1234")[0] == 404
    assert g.admin("GET", "/key-auths/1234")[1]["id"] == cred["id"]
    assert g.admin("GET", "/key-auths/1234/consumer")[1]["username"] == "bob"
    # Lists, pagination and tags.
    assert len(g.admin("GET", "/consumers/bob/key-auth")[1]["data"]) == 3
    assert g.admin("GET", "/consumers/alice/key-auth")[1]["data"] == []
    st, page, _ = g.admin("GET", "/key-auths?size=2")
    assert len(page["data"]) == 2 and page["offset"]
    st, page2, _ = g.admin("GET", "/key-auths?size=2&offset=" + page["offset"])
    assert len(page2["data"]) == 1 and page2["next"] is None
    assert [c["key"] for c in g.admin("GET", "/key-auths?tags=tag1")[1]["data"]] == ["tagged"]
    # PATCH / PUT, including moving a PUT under another consumer.
    st, body, _ = g.admin("PATCH", "/consumers/bob/key-auth/1234", {"key": "4321"})
    assert st == 200 and body["key"] == "4321"
    assert g.admin("PATCH", "/consumers/alice/key-auth/4321", {"key": "z"})[0] == 404
    st, body, _ = g.admin("PUT", "/consumers/alice/key-auth/put-key", {})
    assert st == 200 and body["key"] == "put-key" and body["consumer"] == {"id": alice}
    # DELETE.
    assert g.admin("DELETE", "/consumers/alice/key-auth/4321")[0] == 404
    assert g.admin("DELETE", "/consumers/bob/key-auth/4321")[0] == 204
    assert g.admin("GET", "/key-auths/4321")[0] == 404
    # invalid ttl
    st, body, _ = g.admin("POST", "/consumers/bob/key-auth", {"ttl": -5})
    assert st == 400 and body["message"] == "invalid option (ttl: must be an integer between 0 and 100000000)"
    eps = g.admin("GET", "/endpoints")[1]["data"]
    assert "/key-auths/{keyauth_credentials}/consumer" in eps and "/basic-auths" in eps and "/acls/{acls}" in eps


def test_key_auth_ttl_expires(gateway):
    g = gateway(workers=2)
    consumer(g, "bob")
    st, body, _ = g.admin("POST", "/consumers/bob/key-auth", {"key": "short-lived", "ttl": 2})
    assert st == 201 and body["ttl"] in (1, 2), body
    st, body, _ = g.admin("POST", "/consumers/bob/key-auth", form={"key": "long-lived", "ttl": "100"})
    assert st == 201 and 99 <= body["ttl"] <= 100
    # The workers receive the absolute expiry.
    cred = next(c for c in delta_puts(g, "keyauth_credentials") if c["key"] == "short-lived")
    assert abs(cred["expires_at"] - (time.time() + 2)) <= 2 and "ttl" not in cred
    wait_until(lambda: g.admin("GET", "/key-auths/short-lived")[0] == 404, timeout=6, what="ttl expiry")
    assert [c["key"] for c in g.admin("GET", "/key-auths")[1]["data"]] == ["long-lived"]
    assert g.admin("GET", "/consumers/bob/key-auth/short-lived")[0] == 404
    # The key is free again (the expired row is purged by the next key-auth write).
    st, body, _ = g.admin("POST", "/consumers/bob/key-auth", {"key": "short-lived"})
    assert st == 201 and body["ttl"] is None
    wait_until(lambda: [c.get("expires_at") for c in published(g)["keyauth_credentials"]
                        if c["key"] == "short-lived"] == [None], timeout=15, what="purged in the full document")


def test_basic_auth_admin_api(gateway):
    g = gateway(workers=1)
    bob = consumer(g, "bob")
    other = consumer(g, "other")
    st, cred, _ = g.admin("POST", "/consumers/bob/basic-auth", {"username": "bob", "password": "kong"})
    assert st == 201 and cred["consumer"] == {"id": bob} and cred["username"] == "bob"
    assert cred["password"] == sha1("kong", bob)
    st, ws, _ = g.admin("POST", "/consumers/bob/basic-auth", form={"username": "ws", "password": " kong "})
    assert st == 201 and ws["password"] == sha1(" kong ", bob)
    st, body, _ = g.admin("POST", "/consumers/bob/basic-auth", {})
    assert st == 400 and body["fields"] == {"username": "required field missing", "password": "required field missing"}
    st, body, _ = g.admin("POST", "/consumers/other/basic-auth", {"username": "bob", "password": "x"})
    assert st == 409 and body["message"] == "UNIQUE violation detected on '{username=\"bob\"}'"
    st, body, _ = g.admin("PUT", "/basic-auths/newbie", {})
    assert st == 400 and body["message"] == ("2 schema violations (consumer: required field missing; "
                                             "password: required field missing)")
    # GET by id and username, ownership.
    assert g.admin("GET", f"/consumers/bob/basic-auth/{cred['id']}")[1]["id"] == cred["id"]
    assert g.admin("GET", "/consumers/bob/basic-auth/bob")[1]["id"] == cred["id"]
    assert g.admin("GET", "/consumers/other/basic-auth/bob")[0] == 404
    assert g.admin("GET", "/basic-auths/bob/consumer")[1]["id"] == bob
    # PATCH re-hashes a new password, keeps the hash otherwise.
    st, body, _ = g.admin("PATCH", f"/consumers/bob/basic-auth/{cred['id']}", {"password": "hello"})
    assert st == 200 and body["password"] == sha1("hello", bob)
    st, body, _ = g.admin("PATCH", "/consumers/bob/basic-auth/bob", {"username": "Tyrion Lannister"})
    assert st == 200 and body["password"] == sha1("hello", bob)
    st, body, _ = g.admin("PATCH", f"/consumers/bob/basic-auth/{cred['id']}", {"username": 123})
    assert st == 400 and body["fields"] == {"username": "expected a string"}
    st, body, _ = g.admin("PATCH", "/basic-auths/ws", {"consumer": {"id": other}})
    assert st == 400 and body["message"] == ("schema violation (all or none of these fields must be set: "
                                             "'password', 'consumer.id')")
    # PUT by username creates.
    st, body, _ = g.admin("PUT", "/consumers/bob/basic-auth/robert", {"password": "kong"})
    assert st == 200 and body["username"] == "robert" and body["password"] == sha1("kong", bob)
    assert len(g.admin("GET", "/basic-auths")[1]["data"]) == 3
    assert len(g.admin("GET", "/basic-auths?size=1")[1]["data"]) == 1
    assert g.admin("DELETE", "/consumers/bob/basic-auth/robert")[0] == 204
    assert g.admin("DELETE", "/consumers/bob/basic-auth/robert")[0] == 404
    # Workers receive only the hash.
    creds = wait_until(lambda: len(published(g)["basicauth_credentials"]) == 2 and published(g)["basicauth_credentials"],
                       timeout=15, what="full document with the credentials")
    assert sorted(c["password"] for c in creds) == sorted([sha1("hello", bob), sha1(" kong ", bob)])


def test_acls_admin_api(gateway):
    g = gateway(workers=1)
    bob = consumer(g, "bob")
    consumer(g, "alice")
    st, acl, _ = g.admin("POST", "/consumers/bob/acls", {"group": "admin"})
    assert st == 201 and acl["consumer"] == {"id": bob} and acl["group"] == "admin"
    st, body, _ = g.admin("POST", "/consumers/bob/acls/", form={"group": "tagged", "tags[]": ["tag1", "tag2"]})
    assert st == 201 and body["tags"] == ["tag1", "tag2"]
    st, body, _ = g.admin("POST", "/consumers/bob/acls", {})
    assert st == 400 and body["fields"] == {"group": "required field missing"}
    st, body, _ = g.admin("POST", "/consumers/bob/acls", {"group": "admin"})
    assert st == 409 and body == {"code": 5, "name": "unique constraint violation",
                                  "message": f"UNIQUE violation detected on '{{consumer={{id=\"{bob}\"}},group=\"admin\"}}'",
                                  "fields": {"consumer": {"id": bob}, "group": "admin"}}
    # The same group for another consumer is fine, and lookups by group stay per consumer.
    st, alice_admin, _ = g.admin("POST", "/consumers/alice/acls", {"group": "admin"})
    assert st == 201
    assert g.admin("GET", "/consumers/bob/acls/admin")[1]["id"] == acl["id"]
    assert g.admin("GET", "/consumers/alice/acls/admin")[1]["id"] == alice_admin["id"]
    assert g.admin("GET", f"/consumers/alice/acls/{acl['id']}")[0] == 404
    # PUT by group name creates the row, then updates it.
    st, pro, _ = g.admin("PUT", "/consumers/bob/acls/pro", {})
    assert st == 200 and pro["group"] == "pro" and pro["consumer"] == {"id": bob}
    st, again, _ = g.admin("PUT", "/consumers/bob/acls/pro", {"tags": ["x"]})
    assert st == 200 and again["id"] == pro["id"]
    st, body, _ = g.admin("PUT", "/consumers/bob/acls/f7852533-9160-4f5a-ae12-1ab99219ea95", {"group": 123})
    assert st == 400 and body["fields"] == {"group": "expected a string"}
    # PATCH by id and by group.
    st, body, _ = g.admin("PATCH", f"/consumers/bob/acls/{acl['id']}", {"group": "root"})
    assert st == 200 and body["group"] == "root"
    st, body, _ = g.admin("PATCH", "/consumers/bob/acls/root", {"group": "admin"})
    assert st == 200 and body["id"] == acl["id"]
    # Top level.
    assert len(g.admin("GET", "/acls")[1]["data"]) == 4
    st, body, _ = g.admin("PUT", "/acls/6b1e0f48-3ad2-4c59-8a55-6f6ba1c1c0de", {"group": "test-group"})
    assert st == 400 and body["message"] == "schema violation (consumer: required field missing)"
    st, body, _ = g.admin("PUT", "/acls/6b1e0f48-3ad2-4c59-8a55-6f6ba1c1c0de", {"group": "test-group", "consumer": {"id": bob}})
    assert st == 200 and body["group"] == "test-group"
    assert g.admin("GET", f"/acls/{acl['id']}/consumer")[1]["username"] == "bob"
    # DELETE by id and by group.
    assert g.admin("DELETE", "/consumers/bob/acls/blah")[0] == 404
    assert g.admin("DELETE", "/consumers/bob/acls/00000000-0000-0000-0000-000000000000")[0] == 404
    assert g.admin("DELETE", "/consumers/bob/acls/admin")[0] == 204
    assert g.admin("DELETE", f"/consumers/bob/acls/{pro['id']}")[0] == 204


def test_consumer_delete_cascades_and_deltas_reach_workers(gateway):
    g = gateway(workers=2)
    consumer(g, "bob")
    consumer(g, "keep")
    run = os.path.join(g.prefix, "run")
    before = set(os.listdir(run))
    assert g.admin("POST", "/consumers/bob/key-auth", {"key": "k"})[0] == 201
    assert g.admin("POST", "/consumers/bob/basic-auth", {"username": "bob", "password": "p"})[0] == 201
    assert g.admin("POST", "/consumers/bob/acls", {"group": "g"})[0] == 201
    assert g.admin("POST", "/consumers/keep/acls", {"group": "g"})[0] == 201
    puts = set()
    for n in set(os.listdir(run)) - before:
        if n.startswith("config.delta."):
            with open(os.path.join(run, n)) as f:
                puts |= set(json.load(f)["put"])
    assert {"keyauth_credentials", "basicauth_credentials", "acls"} <= puts, puts
    assert g.admin("DELETE", "/consumers/bob")[0] == 204
    assert g.admin("GET", "/key-auths")[1]["data"] == []
    assert g.admin("GET", "/basic-auths")[1]["data"] == []
    assert [a["group"] for a in g.admin("GET", "/acls")[1]["data"]] == ["g"]
    # Deltas and the next full document apply on every worker without error.
    gen = g.admin("GET", "/status")[1]["server"]["config_generation"]
    wait_until(lambda: published(g)["generation"] == gen, timeout=20, what="full document")
    doc = published(g)
    assert doc["keyauth_credentials"] == [] and doc["basicauth_credentials"] == [] and len(doc["acls"]) == 1
    assert " rejected:" not in g.log(), g.log()


NESTED = {
    "_format_version": "3.0",
    "consumers": [
        {"username": "bob",
         "keyauth_credentials": [{"key": "bob-key"}],
         "basicauth_credentials": [{"username": "bob", "password": "kong"}],
         "acls": [{"group": "admin"}, {"group": "pro"}]},
        {"username": "alice"},
    ],
    "keyauth_credentials": [{"key": "alice-key", "consumer": "alice", "ttl": 1000}],
    "basicauth_credentials": [{"username": "alice", "password": "secret", "consumer": "alice"}],
    "acls": [{"group": "admin", "consumer": "alice"}],
}


def test_dbless_post_config_with_credentials(gateway):
    g = gateway(workers=2, database="off")
    st, body, _ = g.admin("POST", "/config", NESTED)
    assert st == 201, body
    bob = g.admin("GET", "/consumers/bob")[1]["id"]
    assert g.admin("GET", "/consumers/bob/key-auth/bob-key")[0] == 200
    assert g.admin("GET", "/basic-auths/bob")[1]["password"] == sha1("kong", bob)
    assert sorted(a["group"] for a in g.admin("GET", "/consumers/bob/acls")[1]["data"]) == ["admin", "pro"]
    assert 990 < g.admin("GET", "/key-auths/alice-key")[1]["ttl"] <= 1000
    assert g.admin("POST", "/consumers/bob/acls", {"group": "x"})[0] == 405
    doc = published(g)
    assert len(doc["keyauth_credentials"]) == 2 and len(doc["basicauth_credentials"]) == 2 and len(doc["acls"]) == 3
    # Errors come back in Kong's declarative shape.
    bad = {"_format_version": "3.0", "consumers": [{"username": "c", "acls": [{"tags": ["x"]}]}]}
    st, body, _ = g.admin("POST", "/config", bad)
    assert st == 400 and body["fields"]["consumers"]["1"]["acls"]["1"] == {"group": "required field missing"}, body


def test_db_import_export_round_trip_with_credentials(gateway, tmp_path):
    src = tmp_path / "in.json"
    src.write_text(json.dumps(NESTED))
    g = gateway(workers=1, start=False)
    r = g.cli("config", "db_import", str(src), "-c", g.conf, "-p", g.prefix)
    assert r.returncode == 0, r.stdout + r.stderr
    out = tmp_path / "out.yml"
    r = g.cli("config", "db_export", str(out), "-c", g.conf, "-p", g.prefix)
    assert r.returncode == 0, r.stdout + r.stderr
    text = out.read_text()
    assert "_transform: false" in text and "basicauth_credentials" in text and "acls" in text
    assert "kong" not in re.findall(r"password: (\S+)", text)
    # The export imports into a fresh prefix with the same hashes (not hashed twice).
    g2 = gateway(workers=1, start=False)
    r = g2.cli("config", "db_import", str(out), "-c", g2.conf, "-p", g2.prefix)
    assert r.returncode == 0, r.stdout + r.stderr
    out2 = tmp_path / "out2.yml"
    r = g2.cli("config", "db_export", str(out2), "-c", g2.conf, "-p", g2.prefix)
    assert r.returncode == 0, r.stdout + r.stderr

    def without_ttl(t):
        # ttl counts down; updated_at is the time of the import (an upsert touches it, as Kong's does).
        return re.sub(r"updated_at: \d+", "updated_at: N", re.sub(r"ttl: \d+", "ttl: N", t))
    assert without_ttl(out2.read_text()) == without_ttl(text)
    g2.start()
    bob = g2.admin("GET", "/consumers/bob")[1]["id"]
    assert g2.admin("GET", "/basic-auths/bob")[1]["password"] == sha1("kong", bob)
    assert g2.admin("GET", "/consumers/alice/acls/admin")[0] == 200
    assert g2.admin("GET", "/key-auths/bob-key")[1]["consumer"] == {"id": bob}
