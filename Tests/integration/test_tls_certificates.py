"""The TLS entities and the certificate per SNI (issue #14; KONG-TLS-CLUSTER.md A.1-A.3, scenarios of Kong's
spec/02-integration/04-admin_api/06-certificates_routes_spec.lua, 16-ca_certificates_routes_spec.lua,
05-proxy/06-ssl_spec.lua and 18-upstream_tls_spec.lua): certificates, snis and ca_certificates through the Admin
API (Kong's messages), the SNI selection table (exact, wildcards, `*`, none, unknown), rotation without restart on
every worker, https upstreams verified with a CA certificate entity, mTLS to an upstream, declarative config.
Certificates are made here with the openssl CLI; clients are Python's ssl module and `openssl s_client`."""
import json
import os
import socket
import ssl
import subprocess
import threading

import pytest

from conftest import TIMEOUT, Gateway, TLSTestServer, free_port, read_http_request, wait_until


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=cwd)


class Certs:
    """Makes certificates in a directory: self-signed leaves (RSA or EC), a CA and leaves signed by it."""

    def __init__(self, d):
        self.d = str(d)
        os.makedirs(self.d, exist_ok=True)
        self.n = 0

    def read(self, name):
        with open(os.path.join(self.d, name)) as f:
            return f.read()

    def key(self, kind):
        self.n += 1
        name = f"k{self.n}.key"
        if kind == "ec":
            openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", name, cwd=self.d)
        else:
            openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", name, cwd=self.d)
        return name

    def self_signed(self, cn, kind="rsa"):
        k = self.key(kind)
        crt = k.replace(".key", ".crt")
        openssl("req", "-x509", "-new", "-key", k, "-out", crt, "-days", "2", "-subj", f"/CN={cn}",
                "-addext", f"subjectAltName=DNS:{cn}", cwd=self.d)
        return self.read(crt), self.read(k)

    def ca(self, cn="Test CA"):
        k = self.key("rsa")
        crt = k.replace(".key", ".crt")
        openssl("req", "-x509", "-new", "-key", k, "-out", crt, "-days", "2", "-subj", f"/CN={cn}",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                cwd=self.d)
        return crt, k

    def signed(self, ca, cn, eku="serverAuth"):
        k = self.key("rsa")
        csr, crt = k.replace(".key", ".csr"), k.replace(".key", ".crt")
        ext = k.replace(".key", ".ext")
        with open(os.path.join(self.d, ext), "w") as f:
            f.write(f"subjectAltName=DNS:{cn}\nextendedKeyUsage={eku}\nbasicConstraints=CA:FALSE\n")
        openssl("req", "-new", "-key", k, "-out", csr, "-subj", f"/CN={cn}", cwd=self.d)
        openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial", "-out", crt, "-days", "2",
                "-extfile", ext, cwd=self.d)
        return self.read(crt), self.read(k)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return Certs(tmp_path_factory.mktemp("certs"))


def served_der(port, sni):
    """The DER certificate the gateway serves for `sni` (None: no SNI)."""
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        with c.wrap_socket(s, server_hostname=sni) as t:
            return t.getpeercert(binary_form=True)


def served_cn(port, sni):
    der = served_der(port, sni)
    out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject"], input=der, capture_output=True).stdout
    return out.decode().strip().rsplit("CN = ", 1)[-1].rsplit("CN=", 1)[-1]


@pytest.fixture
def tlsgw(tmp_path):
    made = []

    def make(workers=2, **extra):
        g = Gateway(str(tmp_path / f"gw{len(made)}"), workers=workers, extra={k: str(v) for k, v in extra.items()})
        g.tls_port = free_port()
        os.makedirs(os.path.dirname(g.conf), exist_ok=True)
        g.write_conf(proxy_listen=f"127.0.0.1:{g.proxy_port}, 127.0.0.1:{g.tls_port} ssl")
        made.append(g)
        g.start()
        return g

    yield make
    for g in made:
        g.stop()


def msg(b):
    return b["message"] if isinstance(b, dict) else b


def test_certificate_api(tlsgw, certs):
    g = tlsgw(workers=1)
    rsa_crt, rsa_key = certs.self_signed("api-rsa.test")
    ec_crt, ec_key = certs.self_signed("api-ec.test", "ec")
    other_crt, other_key = certs.self_signed("other.test")
    # Kong's schema errors.
    s, b, _ = g.admin("POST", "/certificates", {})
    assert (s, msg(b)) == (400, "2 schema violations (cert: required field missing; key: required field missing)")
    s, b, _ = g.admin("POST", "/certificates", {"cert": "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n", "key": rsa_key})
    assert s == 400 and b["code"] == 2 and b["fields"]["cert"].startswith("invalid certificate: "), b
    s, b, _ = g.admin("POST", "/certificates", {"cert": rsa_crt, "key": "garbage"})
    assert s == 400 and b["fields"]["key"].startswith("invalid key: "), b
    s, b, _ = g.admin("POST", "/certificates", {"cert": rsa_crt, "key": other_key})
    assert (s, msg(b)) == (400, "schema violation (certificate does not match key)")
    s, b, _ = g.admin("POST", "/certificates", {"cert": rsa_crt, "key": rsa_key, "cert_alt": ec_crt})
    assert (s, msg(b)) == (400, "schema violation (all or none of these fields must be set: 'cert_alt', 'key_alt')")
    s, b, _ = g.admin("POST", "/certificates", {"cert": rsa_crt, "key": rsa_key, "cert_alt": other_crt, "key_alt": other_key})
    assert (s, msg(b)) == (400, "schema violation (certificate and alternative certificate need to have different type "
                                "(e.g. RSA and ECDSA), the provided certificates were both of the same type)")
    s, b, _ = g.admin("POST", "/certificates", {"cert": rsa_crt, "key": rsa_key, "cert_alt": ec_crt, "key_alt": rsa_key})
    assert (s, msg(b)) == (400, "schema violation (alternative certificate does not match key)")
    s, b, _ = g.admin("POST", "/certificates", {"cert": rsa_crt, "key": rsa_key, "snis": ["a.test", "a.test"]})
    assert (s, msg(b)) == (400, "schema violation (snis: a.test is duplicated)")
    # Created with snis sorted; cert_alt pair accepted.
    s, c1, _ = g.admin("POST", "/certificates", {"cert": rsa_crt, "key": rsa_key, "cert_alt": ec_crt, "key_alt": ec_key,
                                                 "snis": ["b.test", "a.test"], "tags": ["t1"]})
    assert s == 201 and c1["snis"] == ["a.test", "b.test"] and c1["cert_alt"] == ec_crt, c1
    s, b, _ = g.admin("POST", "/certificates", {"cert": other_crt, "key": other_key, "snis": ["c.test", "a.test"]})
    assert (s, msg(b)) == (400, f"schema violation (snis: a.test already associated with existing certificate '{c1['id']}')")
    s, c2, _ = g.admin("POST", "/certificates", {"cert": other_crt, "key": other_key})
    assert s == 201 and c2["snis"] == []
    # Reads: by id, by SNI name; the list carries snis; an unknown name.
    assert g.admin("GET", f"/certificates/{c1['id']}")[1]["snis"] == ["a.test", "b.test"]
    s, b, _ = g.admin("GET", "/certificates/b.test")
    assert s == 200 and b["id"] == c1["id"]
    s, b, _ = g.admin("GET", "/certificates/nope.test")
    assert (s, b) == (404, {"message": "SNI not found"})
    s, b, _ = g.admin("GET", "/certificates")
    assert [c["snis"] for c in b["data"]] == [["a.test", "b.test"], []]
    s, b, _ = g.admin("GET", "/certificates?size=1")
    assert len(b["data"]) == 1 and b["next"]
    s, b, _ = g.admin("GET", b["next"])
    assert [c["id"] for c in b["data"]] == [c2["id"]]
    s, b, _ = g.admin("GET", "/certificates?tags=t1")
    assert [c["id"] for c in b["data"]] == [c1["id"]]
    # PUT on an unknown SNI name creates a certificate holding it.
    s, c3, _ = g.admin("PUT", "/certificates/new.test", {"cert": other_crt, "key": other_key})
    assert s == 200 and c3["snis"] == ["new.test"] and c3["id"] not in (c1["id"], c2["id"]), c3
    # Nested snis.
    s, b, _ = g.admin("POST", f"/certificates/{c2['id']}/snis", {"name": "*.wild.test"})
    assert s == 201 and b["certificate"]["id"] == c2["id"], b
    s, b, _ = g.admin("POST", f"/certificates/{c2['id']}/snis", {"name": "*.wild.test"})
    assert s == 409 and b["name"] == "unique constraint violation", b
    s, b, _ = g.admin("GET", f"/certificates/{c2['id']}/snis")
    assert [x["name"] for x in b["data"]] == ["*.wild.test"]
    s, b, _ = g.admin("POST", "/certificates/00000000-0000-4000-8000-000000000000/snis", {"name": "x.test"})
    assert (s, b) == (404, {"message": "Not found"})
    # snis validation (Kong's wildcard_host).
    for name, err in [("foo.*.com", "wildcard must be leftmost or rightmost character"),
                      ("*.example.*", "only one wildcard must be specified"),
                      ("valid.name:8000", "must not have a port"), ("*.wildcard.com:8000", "must not have a port"),
                      ("127.0.0.1", "must not be an IP"), ("example^com", "invalid value: example^com")]:
        s, b, _ = g.admin("POST", "/snis", {"name": name, "certificate": {"id": c2["id"]}})
        assert s == 400 and b["fields"]["name"] == err, (name, b)
    s, b, _ = g.admin("POST", "/snis", {"name": "*", "certificate": {"id": c2["id"]}})
    assert s == 201, b
    s, b, _ = g.admin("GET", "/snis/%2A")
    assert s == 200 and b["name"] == "*"
    s, b, _ = g.admin("GET", "/snis/*.wild.test/certificate")
    assert s == 404
    # PATCH /snis moves a name to another certificate.
    s, b, _ = g.admin("PATCH", "/snis/%2A", {"certificate": {"id": c1["id"]}})
    assert s == 200 and b["certificate"]["id"] == c1["id"]
    assert g.admin("GET", f"/certificates/{c1['id']}")[1]["snis"] == ["*", "a.test", "b.test"]
    # PATCH with snis replaces them; without leaves them; null clears.
    s, b, _ = g.admin("PATCH", f"/certificates/{c1['id']}", {"snis": ["z.test", "a.test"]})
    assert s == 200 and b["snis"] == ["a.test", "z.test"], b
    assert g.admin("GET", "/snis/b.test")[0] == 404
    s, b, _ = g.admin("PATCH", f"/certificates/{c1['id']}", {"tags": ["t2"]})
    assert s == 200 and b["snis"] == ["a.test", "z.test"]
    s, b, _ = g.admin("PATCH", "/certificates/a.test", {"snis": None})
    assert s == 200 and b["snis"] == []
    # Form bodies work too.
    s, b, _ = g.admin("PATCH", f"/certificates/{c1['id']}", form={"snis[1]": "f2.test", "snis[2]": "f1.test"})
    assert s == 200 and b["snis"] == ["f1.test", "f2.test"], b
    # A certificate used as a service's client_certificate cannot be deleted; delete cascades to its snis.
    s, svc, _ = g.admin("POST", "/services", {"name": "m", "url": "https://127.0.0.1:1", "client_certificate": {"id": c1["id"]}})
    assert s == 201, svc
    s, b, _ = g.admin("DELETE", f"/certificates/{c1['id']}")
    assert s == 400 and b["message"] == "an existing 'services' entity references this 'certificates' entity", b
    s, b, _ = g.admin("POST", "/services", {"name": "m2", "url": "https://127.0.0.1:1",
                                            "client_certificate": {"id": "00000000-0000-4000-8000-000000000000"}})
    assert s == 400 and b["code"] == 4, b
    assert g.admin("DELETE", "/services/m")[0] == 204
    assert g.admin("DELETE", f"/certificates/{c1['id']}")[0] == 204
    assert g.admin("GET", "/snis/f1.test")[0] == 404
    s, b, _ = g.admin("GET", "/endpoints")
    assert "/certificates/{certificates}/snis" in b["data"] and "/ca_certificates/{ca_certificates}" in b["data"]


def test_ca_certificates_api(tlsgw, certs):
    g = tlsgw(workers=1)
    ca = certs.ca("API CA")
    ca_pem = certs.read(ca[0])
    leaf, _ = certs.signed(ca, "not-a-ca.test")
    s, b, _ = g.admin("POST", "/ca_certificates", {"cert": leaf})
    assert (s, msg(b)) == (400, 'schema violation (certificate does not appear to be a CA because it is missing the "CA" basic constraint)')
    s, b, _ = g.admin("POST", "/ca_certificates", {"cert": ca_pem + ca_pem})
    assert (s, msg(b)) == (400, "schema violation (please submit only one certificate at a time)")
    s, b, _ = g.admin("POST", "/ca_certificates", {"cert": "nope"})
    assert s == 400 and b["fields"]["cert"].startswith("invalid certificate: ")
    s, ca, _ = g.admin("POST", "/ca_certificates", {"cert": ca_pem, "tags": ["ca"]})
    assert s == 201 and len(ca["cert_digest"]) == 64, ca
    der = subprocess.run(["openssl", "x509", "-outform", "DER"], input=ca_pem.encode(), capture_output=True).stdout
    import hashlib
    assert ca["cert_digest"] == hashlib.sha256(der).hexdigest()
    s, b, _ = g.admin("POST", "/ca_certificates", {"cert": ca_pem})
    assert s == 409 and b["message"] == f"UNIQUE violation detected on '{{cert_digest=\"{ca['cert_digest']}\"}}'", b
    s, svc, _ = g.admin("POST", "/services", {"name": "v", "url": "https://localhost:1", "tls_verify": True,
                                              "ca_certificates": [ca["id"]]})
    assert s == 201, svc
    s, b, _ = g.admin("DELETE", f"/ca_certificates/{ca['id']}")
    assert s == 400 and b["code"] == 19 and b["message"] == \
        f"ca certificate {ca['id']} is still referenced by services (id = {svc['id']})", b
    s, b, _ = g.admin("POST", "/services", {"name": "h", "url": "http://localhost:1", "ca_certificates": [ca["id"]]})
    assert s == 400 and b["fields"]["ca_certificates"] == "value must be null", b
    assert g.admin("DELETE", "/services/v")[0] == 204
    assert g.admin("DELETE", f"/ca_certificates/{ca['id']}")[0] == 204


def test_sni_selection_table(tlsgw, certs):
    """Kong's order: exact, then prefix wildcard, then suffix wildcard, then `*`; no SNI → the default."""
    g = tlsgw(workers=2)
    a = certs.self_signed("cert-a.test")
    b = certs.self_signed("cert-b.test")
    e_rsa = certs.self_signed("ssl-example.com")
    e_ec = certs.self_signed("ssl-example-ec.com", "ec")
    s, ca_, _ = g.admin("POST", "/certificates", {"cert": a[0], "key": a[1], "snis": ["*.wildcard.com", "wildcard.*"]})
    assert s == 201, ca_
    s, cb, _ = g.admin("POST", "/certificates", {"cert": b[0], "key": b[1],
                                                 "snis": ["wildcard.org", "test.wildcard.*", "*.www.wildcard.com"]})
    assert s == 201, cb
    s, ce, _ = g.admin("POST", "/certificates", {"cert": e_rsa[0], "key": e_rsa[1], "cert_alt": e_ec[0], "key_alt": e_ec[1],
                                                 "snis": ["example.com", "ssl1.com"]})
    assert s == 201, ce
    table = [("test.wildcard.com", "cert-a.test"), ("wildcard.eu", "cert-a.test"), ("wildcard.org", "cert-b.test"),
             ("test.wildcard.org", "cert-b.test"), ("test.www.wildcard.com", "cert-b.test"),
             ("wildcard.com", "cert-a.test"),          # suffix wildcard.*
             ("www.wildcard.com", "cert-a.test"),      # *.www.wildcard.com does not match its apex
             ("example.com", {"ssl-example.com", "ssl-example-ec.com"}),
             ("ssl1.com", {"ssl-example.com", "ssl-example-ec.com"}),
             ("unknown.test", "localhost"), (None, "localhost")]
    for _ in range(3):   # several connections: both workers answer
        for sni, cn in table:
            assert served_cn(g.tls_port, sni) in (cn if isinstance(cn, set) else {cn}), sni
    # The pair OpenSSL serves follows the client's signature algorithms: RSA-only, ECDSA-only.
    for sigalgs, cn in [("RSA+SHA256", "CN = ssl-example.com"), ("ECDSA+SHA256", "CN = ssl-example-ec.com")]:
        out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{g.tls_port}", "-servername", "ssl1.com",
                              "-tls1_2", "-sigalgs", sigalgs], input="", capture_output=True, text=True,
                             timeout=TIMEOUT).stdout
        assert cn in out, out[-1500:]
    # `*`: every SNI without a better match, but never a handshake without SNI.
    s, b2, _ = g.admin("POST", "/snis", {"name": "*", "certificate": {"id": cb["id"]}})
    assert s == 201, b2
    assert served_cn(g.tls_port, "unknown.test") == "cert-b.test"
    assert served_cn(g.tls_port, "wildcard.eu") == "cert-a.test"
    assert served_cn(g.tls_port, None) == "localhost"
    # An invalid SNI gets the default certificate (openssl sends what it is given).
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{g.tls_port}", "-servername", "a.exam*le.com"],
                         input="", capture_output=True, text=True, timeout=TIMEOUT).stdout
    assert "CN = localhost" in out or "CN=localhost" in out, out[-1500:]


def test_rotation_without_restart(tlsgw, certs):
    g = tlsgw(workers=2)
    one = certs.self_signed("rotation-one.test")
    two = certs.self_signed("rotation-two.test")
    pids = set(g.worker_pids())
    s, c, _ = g.admin("POST", "/certificates", {"cert": one[0], "key": one[1], "snis": ["rot.test"]})
    assert s == 201
    for _ in range(6):
        assert served_cn(g.tls_port, "rot.test") == "rotation-one.test"
    # Replaced: the next handshakes on every worker get the new certificate.
    s, b, _ = g.admin("PATCH", f"/certificates/{c['id']}", {"cert": two[0], "key": two[1]})
    assert s == 200, b
    for _ in range(6):
        assert served_cn(g.tls_port, "rot.test") == "rotation-two.test"
    # A new SNI on the certificate, then the name moved away, then the certificate deleted.
    s, b, _ = g.admin("POST", f"/certificates/{c['id']}/snis", {"name": "*.rot.test"})
    assert s == 201
    for _ in range(4):
        assert served_cn(g.tls_port, "x.rot.test") == "rotation-two.test"
    assert g.admin("DELETE", "/snis/*.rot.test")[0] == 204
    for _ in range(4):
        assert served_cn(g.tls_port, "x.rot.test") == "localhost"
    assert g.admin("DELETE", f"/certificates/{c['id']}")[0] == 204
    for _ in range(4):
        assert served_cn(g.tls_port, "rot.test") == "localhost"
    assert set(g.worker_pids()) == pids, "no worker restarted"


class TLSServer(TLSTestServer):
    """An HTTPS upstream on 127.0.0.1 serving `pair` (PEM files); with `client_ca`, a client certificate signed by
    that CA is required. Records the connections and the CN of each client certificate; answers 200 JSON."""

    def __init__(self, crt, key, client_ca=None):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(crt, key)
        if client_ca:
            self.ctx.verify_mode = ssl.CERT_REQUIRED
            self.ctx.load_verify_locations(client_ca)
        self.connections, self.client_cns, self.failures = 0, [], 0
        self.listen()

    def serve(self, c):
        c.settimeout(TIMEOUT)
        try:
            t = self.ctx.wrap_socket(c, server_side=True)
        except (ssl.SSLError, OSError):
            self.failures += 1
            c.close()
            return
        self.connections += 1
        peer = t.getpeercert()
        cn = None
        if peer:
            cn = dict(x[0] for x in peer["subject"]).get("commonName")
            self.client_cns.append(cn)
        f = t.makefile("rb")
        try:
            while True:
                r = read_http_request(f)
                if r is None:
                    break
                body = json.dumps({"client": cn}).encode()
                t.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        except (OSError, ValueError, ssl.SSLError):
            pass
        finally:
            t.close()


def pem_files(certs, pair, name):
    crt, key = os.path.join(certs.d, name + ".crt"), os.path.join(certs.d, name + ".key")
    with open(crt, "w") as f:
        f.write(pair[0])
    with open(key, "w") as f:
        f.write(pair[1])
    return crt, key


def test_https_upstream_verified_with_ca_certificate(tlsgw, certs):
    g = tlsgw(workers=1)
    ca = certs.ca("Upstream CA")
    other_ca = certs.ca("Other CA")
    server = TLSServer(*pem_files(certs, certs.signed(ca, "localhost"), "up-ca"))
    try:
        s, good, _ = g.admin("POST", "/ca_certificates", {"cert": certs.read(ca[0])})
        assert s == 201, good
        s, bad, _ = g.admin("POST", "/ca_certificates", {"cert": certs.read(other_ca[0])})
        assert s == 201, bad
        s, b, _ = g.admin("POST", "/services", {"name": "v", "url": f"https://localhost:{server.port}/", "tls_verify": True,
                                                "ca_certificates": [bad["id"]]})
        assert s == 201, b
        s, b, _ = g.admin("POST", "/services/v/routes", {"paths": ["/v"]})
        assert s == 201, b
        # Trusted by another CA only: 502 (Kong: upstream SSL certificate verify error).
        wait_until(lambda: g.get("/v")[0] == 502, what="unknown CA refused")
        assert "certificate verify failed" in g.log()
        # The right CA: verified, 200; the pooled connection serves the next requests.
        s, b, _ = g.admin("PATCH", "/services/v", {"ca_certificates": [good["id"]]})
        assert s == 200, b
        wait_until(lambda: g.get("/v")[0] == 200, what="verified with the CA certificate entity")
        before = server.connections
        for _ in range(3):
            assert g.get("/v")[0] == 200
        assert server.connections == before, "keep-alive pool"
        # Back to the wrong CA: a pooled connection verified with the other trust setting is not reused.
        s, b, _ = g.admin("PATCH", "/services/v", {"ca_certificates": [bad["id"]]})
        assert s == 200
        wait_until(lambda: g.get("/v")[0] == 502, what="pool keyed by the trust setting")
        # tls_verify off: the CAs are not consulted.
        s, b, _ = g.admin("PATCH", "/services/v", {"tls_verify": False})
        assert s == 200
        wait_until(lambda: g.get("/v")[0] == 200, what="no verification")
    finally:
        server.stop()


def test_mtls_upstream(tlsgw, certs):
    g = tlsgw(workers=1)
    server_ca = certs.ca("Server CA")
    client_ca = certs.ca("Client CA")
    server = TLSServer(*pem_files(certs, certs.signed(server_ca, "localhost"), "up-mtls"),
                       client_ca=os.path.join(certs.d, client_ca[0]))
    try:
        client = certs.signed(client_ca, "gateway-client", eku="clientAuth")
        other_client = certs.signed(client_ca, "upstream-level-client", eku="clientAuth")
        s, cc, _ = g.admin("POST", "/certificates", {"cert": client[0], "key": client[1]})
        assert s == 201, cc
        s, oc, _ = g.admin("POST", "/certificates", {"cert": other_client[0], "key": other_client[1]})
        assert s == 201, oc
        s, b, _ = g.admin("POST", "/services", {"name": "m", "url": f"https://localhost:{server.port}/"})
        assert s == 201, b
        s, b, _ = g.admin("POST", "/services/m/routes", {"paths": ["/m"]})
        assert s == 201, b
        # No client certificate: the upstream refuses the handshake.
        wait_until(lambda: g.get("/m")[0] == 502, what="mTLS required")
        s, b, _ = g.admin("PATCH", "/services/m", {"client_certificate": {"id": cc["id"]}})
        assert s == 200, b
        wait_until(lambda: g.get("/m")[0] == 200, what="client certificate sent")
        s, body, _ = g.get("/m")
        assert json.loads(body)["client"] == "gateway-client"
        # The upstream's client_certificate when the service has none (service wins otherwise).
        s, b, _ = g.admin("POST", "/upstreams", {"name": "mtls-up", "client_certificate": {"id": oc["id"]}})
        assert s == 201, b
        s, b, _ = g.admin("POST", "/upstreams/mtls-up/targets", {"target": f"localhost:{server.port}"})
        assert s == 201, b
        s, b, _ = g.admin("POST", "/services", {"name": "m2", "protocol": "https", "host": "mtls-up", "port": server.port})
        assert s == 201, b
        s, b, _ = g.admin("POST", "/services/m2/routes", {"paths": ["/m2"]})
        assert s == 201, b
        wait_until(lambda: g.get("/m2")[0] == 200, what="upstream's client certificate")
        assert json.loads(g.get("/m2")[1])["client"] == "upstream-level-client"
        s, b, _ = g.admin("PATCH", "/services/m2", {"client_certificate": {"id": cc["id"]}})
        assert s == 200
        wait_until(lambda: json.loads(g.get("/m2")[1] or b"{}").get("client") == "gateway-client", what="service wins")
        # Still referenced: the certificate cannot be deleted.
        s, b, _ = g.admin("DELETE", f"/certificates/{oc['id']}")
        assert s == 400 and b["message"] == "an existing 'upstreams' entity references this 'certificates' entity", b
    finally:
        server.stop()


def test_declarative_certificates(tmp_path, certs):
    """DB-less: certificates with nested snis, snis and ca_certificates in POST /config; selection follows."""
    g = Gateway(str(tmp_path / "dbless"), workers=2, extra={"database": "off"})
    g.tls_port = free_port()
    os.makedirs(os.path.dirname(g.conf), exist_ok=True)
    g.write_conf(proxy_listen=f"127.0.0.1:{g.proxy_port}, 127.0.0.1:{g.tls_port} ssl")
    g.start()
    try:
        one = certs.self_signed("decl-one.test")
        two = certs.self_signed("decl-two.test")
        ca = certs.ca("Declarative CA")
        doc = {"_format_version": "3.0",
               "certificates": [{"cert": one[0], "key": one[1], "snis": [{"name": "one.test"}, {"name": "*.one.test"}]},
                                {"id": "6a1c1d3e-0e39-4a0e-9c8b-8a4f8f0b7d21", "cert": two[0], "key": two[1]}],
               "snis": [{"name": "two.test", "certificate": "6a1c1d3e-0e39-4a0e-9c8b-8a4f8f0b7d21"}],
               "ca_certificates": [{"cert": certs.read(ca[0])}]}
        s, b, _ = g.admin("POST", "/config", doc)
        assert s == 201, b
        assert len(b["certificates"]) == 2 and len(b["snis"]) == 3 and len(b["ca_certificates"]) == 1
        for _ in range(4):
            assert served_cn(g.tls_port, "one.test") == "decl-one.test"
            assert served_cn(g.tls_port, "x.one.test") == "decl-one.test"
            assert served_cn(g.tls_port, "two.test") == "decl-two.test"
            assert served_cn(g.tls_port, "three.test") == "localhost"
        s, b, _ = g.admin("GET", "/certificates/two.test")
        assert s == 200 and b["snis"] == ["two.test"]
        # An invalid document: Kong's error with the entity's field.
        bad = {"_format_version": "3.0", "certificates": [{"cert": one[0], "key": two[1]}]}
        s, b, _ = g.admin("POST", "/config", bad)
        assert s == 400, b
        f = b["fields"]["certificates"]
        assert (f[0] if isinstance(f, list) else f["1"])["@entity"] == ["certificate does not match key"], b
        # Exported (GET /config) and loaded back: the same certificates.
        s, b, _ = g.admin("GET", "/config")
        assert s == 200 and "certificates:" in b["config"] and "two.test" in b["config"]
        s, b2, _ = g.admin("POST", "/config", {"config": b["config"]})
        assert s == 201 and len(b2["snis"]) == 3, b2
        assert served_cn(g.tls_port, "two.test") == "decl-two.test"
    finally:
        g.stop()


def test_https_health_checks_with_client_certificate(tlsgw, certs):
    """Active https probes send the upstream's client_certificate: an mTLS upstream flips with it."""
    g = tlsgw(workers=1)
    server_ca = certs.ca("HC Server CA")
    client_ca = certs.ca("HC Client CA")
    server = TLSServer(*pem_files(certs, certs.signed(server_ca, "localhost"), "up-hc"),
                       client_ca=os.path.join(certs.d, client_ca[0]))
    try:
        client = certs.signed(client_ca, "probe-client", eku="clientAuth")
        s, cc, _ = g.admin("POST", "/certificates", {"cert": client[0], "key": client[1]})
        assert s == 201, cc
        checks = {"active": {"type": "https", "https_verify_certificate": False, "timeout": 2,
                             "healthy": {"interval": 1, "successes": 1},
                             "unhealthy": {"interval": 1, "tcp_failures": 1, "http_failures": 1}}}
        s, b, _ = g.admin("POST", "/upstreams", {"name": "hc-mtls", "healthchecks": checks})
        assert s == 201, b
        s, b, _ = g.admin("POST", "/upstreams/hc-mtls/targets", {"target": f"127.0.0.1:{server.port}"})
        assert s == 201, b

        def health():
            return g.admin("GET", "/upstreams/hc-mtls/health")[1]["data"][0]["health"]

        wait_until(lambda: health() == "UNHEALTHY", timeout=15, what="probes refused without a client certificate")
        s, b, _ = g.admin("PATCH", "/upstreams/hc-mtls", {"client_certificate": {"id": cc["id"]}})
        assert s == 200, b
        wait_until(lambda: health() == "HEALTHY", timeout=15, what="probes with the upstream's client certificate")
        assert "probe-client" in server.client_cns
    finally:
        server.stop()


def https_status(port, sni, path, host="example.test"):
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        with c.wrap_socket(s, server_hostname=sni) as t:
            t.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while True:
                chunk = t.recv(65536)
                if not chunk:
                    break
                data += chunk
    return int(data.split(b" ", 2)[1])


def test_route_snis(tlsgw, upstream):
    """Routes' snis against the TLS server name; a plain request to an https-only route with snis gets 426."""
    g = tlsgw(workers=2)
    up = upstream("u")
    s, b, _ = g.admin("POST", "/services", {"name": "s", "url": f"http://{up.address}"})
    assert s == 201, b
    for name, snis in [("exact", ["route.test"]), ("prefix", ["*.wild.test"]), ("suffix", ["shop.*"])]:
        s, b, _ = g.admin("POST", "/services/s/routes", {"name": name, "protocols": ["https"], "snis": snis,
                                                         "paths": ["/sni"]})
        assert s == 201, b
    s, b, _ = g.admin("POST", "/services/s/routes", {"name": "bad", "protocols": ["http"], "snis": ["x.test"],
                                                     "paths": ["/x"]})
    assert s == 400 and b["fields"]["snis"] == \
        "'snis' can only be set when 'protocols' is 'grpcs', 'https', 'tls' or 'tls_passthrough'", b
    wait_until(lambda: https_status(g.tls_port, "route.test", "/sni") == 200, what="exact sni route")
    for _ in range(3):
        assert https_status(g.tls_port, "route.test", "/sni") == 200
        assert https_status(g.tls_port, "a.b.wild.test", "/sni") == 200
        assert https_status(g.tls_port, "shop.example.org", "/sni") == 200
        assert https_status(g.tls_port, "other.test", "/sni") == 404
        assert https_status(g.tls_port, None, "/sni") == 404
    assert g.get("/sni")[0] == 426
