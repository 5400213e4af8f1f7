"""The TLS scenarios: TLS on the client side (the upstream stays plain HTTP), every proxy with the same
certificate and key (made once per run with the openssl CLI) and Kong's intermediate cipher suite.
  tls-new-ecdsa / tls-new-rsa  GET /small, one full handshake per request (wrk cannot do that: it makes
                               no resumption): 4 parallel `openssl s_time -new` clients (run_stime);
  tls-resumed                  wrk with `Connection: close` (wrk 4.1 resumes every connection with the
                               session of its first one: TLS 1.2 with a ticket);
  tls-small / tls-16k          keep-alive https (wrk: TLS 1.2);
  idle-tls                     idle-10k over TLS (N_IDLE_TLS connections, Python's ssl client).
Here: the scenario names, each proxy's https listener config, the client context, the s_time client
and the TLS arms of the scenario table (request, connections, load client) that bench.py consults."""
import os
import re
import ssl
import subprocess
import threading
import time

from load_clients import run_client, run_wrk

TLS_SCENARIOS = ["tls-new-ecdsa", "tls-new-rsa", "tls-resumed", "tls-small", "tls-16k", "idle-tls"]
FULL_HANDSHAKE_SCENARIOS = ("tls-new-ecdsa", "tls-new-rsa")
N_IDLE_TLS = 2000


# Kong's ssl_cipher_suite = intermediate (the gateway's default), given to nginx and HAProxy too.
INTERMEDIATE_CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
                        "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
                        "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305")


def tls_pair(root, scenario):
    """(certificate, key) paths every proxy uses in a TLS scenario: RSA 2048 for tls-new-rsa, else ECDSA
    P-256; made once per benchmark run with the openssl CLI."""
    kind = "rsa" if scenario == "tls-new-rsa" else "ecdsa"
    crt, key = f"{root}/bench-{kind}.crt", f"{root}/bench-{kind}.key"
    if not os.path.exists(crt):
        newkey = ["-newkey", "rsa:2048"] if kind == "rsa" else ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
        subprocess.run(["openssl", "req", "-x509", *newkey, "-nodes", "-keyout", key, "-out", crt, "-days", "30",
                        "-subj", "/CN=localhost"], check=True, capture_output=True)
        os.chmod(key, 0o644)  # nginx workers run as nobody
    return crt, key


def nginx_tls(root, scenario, port):
    """nginx's server-block lines for the https listener on `port` ("" outside a TLS scenario): Kong's
    nginx settings (ssl_cipher_suite intermediate, shared session cache of 10m, tickets, one day)."""
    if scenario not in TLS_SCENARIOS:
        return ""
    crt, key = tls_pair(root, scenario)
    return f"""listen 127.0.0.1:{port} ssl reuseport backlog=16384;
        ssl_certificate {crt};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers {INTERMEDIATE_CIPHERS};
        ssl_prefer_server_ciphers off;
        ssl_session_cache shared:SSL:10m;
        ssl_session_timeout 1d;
        ssl_session_tickets on;"""


def haproxy_tls_bind(root, scenario, port, conf_dir):
    """HAProxy's frontend `bind` line for the https listener on `port` ("" outside a TLS scenario); the
    certificate and key are joined into one PEM file in conf_dir, as HAProxy wants them."""
    if scenario not in TLS_SCENARIOS:
        return ""
    crt, key = tls_pair(root, scenario)
    pem = f"{conf_dir}/pair.pem"
    with open(pem, "w") as f, open(crt) as c, open(key) as k:
        f.write(c.read() + k.read())
    return (f"    bind 127.0.0.1:{port} ssl crt {pem} ssl-min-ver TLSv1.2 "
            f"ciphers {INTERMEDIATE_CIPHERS}\n")


def gateway_tls(root, scenario, port, settings):
    """Adds the gateway's https listener on `port` and its certificate to its gateway.conf settings
    (nothing outside a TLS scenario)."""
    if scenario not in TLS_SCENARIOS:
        return
    crt, key = tls_pair(root, scenario)
    settings["proxy_listen"] += f", 127.0.0.1:{port} ssl reuseport backlog=16384"
    settings.update({"ssl_cert": crt, "ssl_cert_key": key})


def tls_client_ctx():
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def tls_request(name):
    """(path, wrk extra args, lua script) of a TLS scenario, or None for a scenario that is not one."""
    if name == "tls-resumed":
        return "/small", ["-H", "Connection: close"], None
    if name == "tls-16k":
        return "/16k", [], None
    if name in TLS_SCENARIOS:
        return "/small", [], None
    return None


def tls_conns(name, args):
    """Concurrent clients of a TLS scenario, or None for a scenario that is not one."""
    if name == "tls-resumed":
        return max(1, min(args.connections, 32))
    if name in FULL_HANDSHAKE_SCENARIOS:
        return 4  # s_time processes
    return args.connections if name in TLS_SCENARIOS else None


def tls_drive(server, name, path, duration, conns, threads, extra, script):
    """One load run of a TLS scenario against a proxy's https listener: s_time for full handshakes,
    wrk over https otherwise."""
    if name in FULL_HANDSHAKE_SCENARIOS:
        return run_stime(server.tls_port, path, duration, conns)
    return run_wrk(server.tls_port, path, duration, conns, threads, extra, script, scheme="https")


def run_stime(port, path, duration, procs):
    """`procs` parallel `openssl s_time -new` clients: one connection at a time each, a full handshake
    per connection (HTTP/1.0 GET, read to the close). Same result shape as run_wrk (requests = connections)."""
    cmd = ["openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-new", "-time", str(duration), "-www", path]
    outs = [None] * procs
    threads = [threading.Thread(target=lambda i=i: outs.__setitem__(i, run_client(cmd, duration))) for i in range(procs)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0  # s_time's own "real seconds" are whole seconds
    res = {"rps": 0.0, "requests": 0, "p50_ms": None, "p99_ms": None, "non2xx": 0, "socket_errors": 0,
           "wrk_cpu_s": 0.0, "raw": ""}
    for out, err, ru, rc in outs:
        res["wrk_cpu_s"] += ru.ru_utime + ru.ru_stime
        res["raw"] += out[-300:] + err[-200:]
        res["socket_errors"] += 0 if rc == 0 else 1
        m = re.search(r"(\d+) connections in (\d+) real seconds", out)
        if m:
            res["requests"] += int(m.group(1))
    res["rps"] = res["requests"] / wall
    return res
