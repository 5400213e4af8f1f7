"""Plugins that read the request body in access (Kong's spec/03-plugins/09-key-auth/02-access_spec.lua
key_in_body cases, 36-request-transformer/02-access_spec.lua body cases): the body is read whole before
the access phase and a transformed body reaches the upstream with its own Content-Length."""
import json
import urllib.parse

import pytest

from conftest import add_route

BOUNDARY = "xYzZY"


def multipart(fields):
    out = b""
    for k, v in fields:
        out += (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").encode()
    return out + f"--{BOUNDARY}--\r\n".encode()


def parse_multipart(body):
    fields = {}
    for part in body.split(f"--{BOUNDARY}".encode())[1:]:
        if part.startswith(b"--"):
            break
        head, _, data = part.partition(b"\r\n\r\n")
        name = head.split(b'name="')[1].split(b'"')[0].decode()
        fields[name] = data[:-2].decode()
    return fields


def plugin(g, body):
    s, b, _ = g.admin("POST", "/plugins", body)
    assert s == 201, b
    return b


@pytest.fixture
def keyed(gateway, upstream):
    g = gateway(workers=1, client_body_buffer_size="8k")
    up = upstream("u")
    add_route(g, up, "/kb")
    s, b, _ = g.admin("POST", "/consumers", {"username": "bob"})
    assert s == 201, b
    s, b, _ = g.admin("POST", "/consumers/bob/key-auth", {"key": "secret123"})
    assert s == 201, b
    plugin(g, {"name": "key-auth", "config": {"key_in_body": True, "hide_credentials": True}})
    g.wait_route("/kb", expect=401)
    return g, up


def test_key_in_body_form_json_multipart(keyed):
    g, up = keyed
    form = urllib.parse.urlencode({"apikey": "secret123", "other": "x y"}).encode()
    s, body, _ = g.get("/kb", method="POST", body=form, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert s == 200, body
    r = up.requests[-1]
    assert urllib.parse.parse_qs(r["body"].decode()) == {"other": ["x y"]}, "hide_credentials removes the key from the body"
    assert r["headers"]["Content-Length"] == str(len(r["body"]))
    assert r["headers"].get("X-Consumer-Username") == "bob"

    s, body, _ = g.get("/kb", method="POST", body=json.dumps({"apikey": "secret123", "n": 1}).encode(),
                       headers={"Content-Type": "application/json"})
    assert s == 200, body
    assert json.loads(up.requests[-1]["body"]) == {"n": 1}

    s, body, _ = g.get("/kb", method="POST", body=multipart([("apikey", "secret123"), ("keep", "me")]),
                       headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    assert s == 200, body
    assert parse_multipart(up.requests[-1]["body"]) == {"keep": "me"}


def test_key_in_body_refusals(keyed):
    g, up = keyed
    hits = up.hits
    cases = [
        (b"apikey=wrong", "application/x-www-form-urlencoded", "Unauthorized"),
        (b"other=1", "application/x-www-form-urlencoded", "No API key found in request"),
        (b"apikey=a&apikey=b", "application/x-www-form-urlencoded", "Duplicate API key found"),
        (b"{not json", "application/json", "No API key found in request"),
        (b"apikey=secret123", "text/plain", "No API key found in request"),
        # Larger than client_body_buffer_size: Kong's get_body cannot read it ("did not fit").
        (b"apikey=secret123&pad=" + b"x" * 20000, "application/x-www-form-urlencoded", "No API key found in request"),
    ]
    for body, ctype, message in cases:
        s, resp, h = g.get("/kb", method="POST", body=body, headers={"Content-Type": ctype})
        assert s == 401 and json.loads(resp)["message"] == message, (body[:40], s, resp)
        assert h["WWW-Authenticate"] == "Key"
    assert up.hits == hits
    # The key in a header still works with key_in_body on; the body is passed on unchanged.
    s, _, _ = g.get("/kb", method="POST", body=b"a=1", headers={"apikey": "secret123",
                                                                 "Content-Type": "application/x-www-form-urlencoded"})
    assert s == 200 and up.requests[-1]["body"] == b"a=1"
    # A chunked body is read whole before access too.
    s, _, _ = g.get("/kb", method="POST", body=iter([b"apikey=", b"secret123"]),
                    headers={"Content-Type": "application/x-www-form-urlencoded", "Transfer-Encoding": "chunked"})
    assert s == 200 and up.requests[-1]["body"] == b""


def test_request_transformer_bodies(gateway, upstream):
    g = gateway(workers=1)
    up = upstream("u")
    add_route(g, up, "/rb")
    plugin(g, {"name": "request-transformer", "config": {
        "remove": {"body": ["drop"]},
        "rename": {"body": ["old:new"]},
        "replace": {"body": ["rep:replaced", "absent:never"]},
        "add": {"body": ["added:$(headers.who)", "rep:not-added"]},
        "append": {"body": ["multi:two"]}}})
    form = b"drop=1&old=o&rep=r&multi=one"
    s, _, _ = g.get("/rb", method="POST", body=form, headers={"Content-Type": "application/x-www-form-urlencoded", "Who": "al"})
    assert s == 200
    r = up.requests[-1]
    assert urllib.parse.parse_qs(r["body"].decode()) == {"new": ["o"], "rep": ["replaced"], "added": ["al"], "multi": ["one", "two"]}
    assert r["headers"]["Content-Length"] == str(len(r["body"]))

    s, _, _ = g.get("/rb", method="POST", body=json.dumps({"drop": 1, "old": "o", "rep": "r", "multi": "one"}).encode(),
                    headers={"Content-Type": "application/json", "Who": "al"})
    assert s == 200
    assert json.loads(up.requests[-1]["body"]) == {"new": "o", "rep": "replaced", "added": "al", "multi": ["one", "two"]}

    s, _, _ = g.get("/rb", method="POST", body=multipart([("drop", "1"), ("old", "o"), ("rep", "r")]),
                    headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}", "Who": "al"})
    assert s == 200
    assert parse_multipart(up.requests[-1]["body"]) == {"new": "o", "rep": "replaced", "added": "al"}

    # An empty JSON body gets the added fields; a body that does not parse is passed on untouched.
    s, _, _ = g.get("/rb", method="POST", body=b"", headers={"Content-Type": "application/json", "Who": "al"})
    assert s == 200 and json.loads(up.requests[-1]["body"]) == {"added": "al", "rep": "not-added", "multi": ["two"]}
    s, _, _ = g.get("/rb", method="POST", body=b"{broken", headers={"Content-Type": "application/json"})
    assert s == 200 and up.requests[-1]["body"] == b"{broken"
    # No Content-Type: nothing is done to the body.
    s, _, _ = g.get("/rb", method="POST", body=b"drop=1", headers={"Content-Type": ""})
    assert s == 200 and up.requests[-1]["body"] == b"drop=1"


def test_request_transformer_get_moves_form_body_into_query(gateway, upstream):
    g = gateway(workers=1)
    up = upstream("u")
    add_route(g, up, "/rg")
    plugin(g, {"name": "request-transformer", "config": {"http_method": "GET"}})
    s, _, _ = g.get("/rg?q=1", method="POST", body=b"a=1&b=2", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert s == 200
    r = up.requests[-1]
    assert r["method"] == "GET"
    assert urllib.parse.parse_qs(urllib.parse.urlparse(r["path"]).query) == {"q": ["1"], "a": ["1"], "b": ["2"]}
