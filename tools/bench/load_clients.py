"""The load clients' runs: wrk (http or https; its output parsed into req/s, p50/p99, errors) and the
generic runner that waits for a client and returns its own rusage (the client's CPU share, reported in
the CPU breakdown). TLS full handshakes use `openssl s_time` (tls_scenarios.run_stime)."""
import os
import re
import subprocess
import tempfile
import time


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def parse_ms(s):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", s)
    return float(m.group(1)) * UNITS[m.group(2)] if m else None


def run_wrk(port, path, duration, conns, threads, extra=(), script=None, scheme="http"):
    cmd = ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{duration}s", "--latency", "--timeout", "5s"]
    cmd += list(extra)
    if script:
        cmd += ["-s", script]
    cmd.append(f"{scheme}://127.0.0.1:{port}{path}")
    out, err, ru, _ = run_client(cmd, duration)
    res = {"rps": 0.0, "requests": 0, "p50_ms": None, "p99_ms": None, "non2xx": 0, "socket_errors": 0,
           "wrk_cpu_s": ru.ru_utime + ru.ru_stime, "raw": out[-2000:] + err[-500:]}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        res["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in", out)
    if m:
        res["requests"] = int(m.group(1))
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", out, re.M)
        if m:
            res[key] = parse_ms(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m:
        res["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        res["socket_errors"] = sum(int(x) for x in m.groups())
    return res


def run_client(cmd, duration):
    """(stdout, stderr, rusage, exit code) of a load client run to completion."""
    # Popen + wait4 rather than subprocess.run: the rusage gives wrk's own CPU time (its share of the
    # machine, reported in the CPU breakdown).
    with tempfile.TemporaryFile("w+") as fo, tempfile.TemporaryFile("w+") as fe:
        proc = subprocess.Popen(cmd, stdout=fo, stderr=fe, text=True)
        deadline = time.monotonic() + duration + 60
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, ru = os.wait4(proc.pid, 0)
                proc.returncode = -9
                break
            time.sleep(0.02)
        fo.seek(0)
        fe.seek(0)
        return fo.read(), fe.read(), ru, proc.returncode
