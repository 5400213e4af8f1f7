"""request-size-limiting through the real proxy (Kong's spec/03-plugins/12-request-size-limiting/01-access_spec.lua):
Content-Length checked before the body is read (413, or 417 with Expect: 100-continue), chunked bodies counted
as they stream (buffered or not), size units, require_content_length (411)."""
import json
import socket

from conftest import TIMEOUT, add_route


def plugin(g, body):
    s, b, _ = g.admin("POST", "/plugins", body)
    assert s == 201, b
    return b


def raw(g, data, read_all=False):
    with socket.create_connection(("127.0.0.1", g.proxy_port), timeout=TIMEOUT) as s:
        s.sendall(data)
        f = s.makefile("rb")
        status = int(f.readline().split()[1])
        h = {}
        while True:
            l = f.readline()
            if l in (b"\r\n", b""):
                break
            k, v = l.decode().split(":", 1)
            h[k.strip().lower()] = v.strip()
        return status, h, f.read(int(h.get("content-length", 0)))


def chunked(path, sizes):
    out = f"POST {path} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    for n in sizes:
        out += b"%x\r\n" % n + b"x" * n + b"\r\n"
    return out + b"0\r\n\r\n"


def test_limits(gateway, upstream):
    g = gateway(workers=1)
    up = upstream("u")
    add_route(g, up, "/small")
    route_id = g.admin("GET", "/routes")[1]["data"][0]["id"]
    plugin(g, {"name": "request-size-limiting", "route": {"id": route_id},
               "config": {"allowed_payload_size": 10, "size_unit": "bytes"}})
    g.wait_route("/small")
    s, _, _ = g.get("/small", method="POST", body=b"x" * 10)
    assert s == 200
    hits = up.hits
    s, body, _ = g.get("/small", method="POST", body=b"x" * 11)
    assert s == 413 and json.loads(body)["message"] == "Request size limit exceeded"
    s, _, body = raw(g, b"POST /small HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n")
    assert s == 417 and json.loads(body)["message"] == "Request size limit exceeded"
    # Chunked: counted as it arrives.
    s, _, _ = raw(g, chunked("/small", [4, 6]))
    assert s == 200
    s, _, body = raw(g, chunked("/small", [4, 4, 4]))
    assert s == 413 and json.loads(body)["message"] == "Request size limit exceeded"
    assert up.hits == hits + 1


def test_limit_while_streaming_and_units(gateway, upstream):
    g = gateway(workers=1)
    up = upstream("u")
    s, b, _ = g.admin("POST", "/services", {"name": "s", "url": f"http://{up.address}"})
    assert s == 201
    s, b, _ = g.admin("POST", "/services/s/routes", {"paths": ["/stream"], "request_buffering": False})
    assert s == 201, b
    plugin(g, {"name": "request-size-limiting", "config": {"allowed_payload_size": 1, "size_unit": "kilobytes"}})
    g.wait_route("/stream")
    s, _, _ = raw(g, chunked("/stream", [1000, 24]))
    assert s == 200 and up.requests[-1]["body"] == b"x" * 1024
    s, _, body = raw(g, chunked("/stream", [1000, 1000]))
    assert s == 413 and json.loads(body)["message"] == "Request size limit exceeded"
    # megabytes (Kong's default unit)
    s, b, _ = g.admin("PATCH", f"/plugins/{g.admin('GET', '/plugins')[1]['data'][0]['id']}",
                      {"config": {"allowed_payload_size": 1, "size_unit": "megabytes"}})
    assert s == 200, b
    big = b"y" * ((1 << 20) + 1)
    from conftest import wait_until
    wait_until(lambda: g.get("/stream", method="POST", body=big)[0] == 413, what="megabyte limit")
    assert g.get("/stream", method="POST", body=b"y" * (1 << 20))[0] == 200


def test_require_content_length_and_schema(gateway, upstream):
    g = gateway(workers=1)
    up = upstream("u")
    add_route(g, up, "/cl")
    plugin(g, {"name": "request-size-limiting", "config": {"require_content_length": True}})
    g.wait_route("/cl", expect=411)
    s, _, body = raw(g, chunked("/cl", [3]))
    assert s == 411 and json.loads(body) == {"message": "A valid Content-Length header is required"}
    s, _, _ = g.get("/cl", method="POST", body=b"abc")
    assert s == 200
    s, b, _ = g.admin("POST", "/plugins", {"name": "request-size-limiting", "config": {"size_unit": "gigabytes"}})
    assert s == 400 and "size_unit" in b["fields"]["config"]
