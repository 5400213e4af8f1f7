#!/usr/bin/env python3
"""Context switches and epoll wake-ups per request of a proxy's workers (issue #18, two workers).

Runs the bench's small-body scenario (keep-alive GET /small, wrk, 64 connections) against nginx and the
gateway with the same number of workers in front of the same upstream, one after the other, and
reports per request, for the proxy's worker processes only: CPU time, voluntary and involuntary context
switches (/proc/<pid>/status, before and after the run), the I/O system calls (perf stat on the
syscalls:sys_enter_* tracepoints, attached to the workers during the run), and the master
process's voluntary switches over the run (the gateway's master runs the Admin API, health probes
and timers; nginx's sleeps). The same upstream serves both proxies: its worker's CPU, voluntary switches
and epoll_wait calls per request are reported too (a proxy whose requests reach the upstream in smaller
batches wakes it more often). Also: the client connections each worker holds halfway through the run
(ss; SO_REUSEPORT spreads them by hash), the busiest worker's share of the workers' CPU, and the
machine's TCP segments sent per request (/proc/net/snmp OutSegs: 4.00 for every proxy here, two data
segments each way with the ACKs piggy-backed, so no proxy causes extra pure ACKs or split writes).

Usage: python3 tools/bench/switches.py [--gateway .build/release/gateway] [--workers 2] [--duration 8]
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
from load_clients import run_wrk  # noqa: E402
from procstats import cpu_ticks  # noqa: E402
from servers import Gateway, NginxProxy, Upstream  # noqa: E402


def ctx(pid):
    v = n = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for ln in f:
                if ln.startswith("voluntary_ctxt_switches"):
                    v = int(ln.split()[1])
                elif ln.startswith("nonvoluntary_ctxt_switches"):
                    n = int(ln.split()[1])
    except OSError:
        pass
    return v, n


SYSCALLS = ("epoll_wait", "epoll_ctl", "read", "recvfrom", "readv", "write", "writev", "sendto", "sendmsg")


def perf_syscalls(pids, seconds):
    """Entries of each syscall in SYSCALLS by `pids` over `seconds` (perf stat on the tracepoints)."""
    cmd = ["perf", "stat", "-x,"]
    for c in SYSCALLS:
        cmd += ["-e", f"syscalls:sys_enter_{c}"]
    cmd += ["-p", ",".join(map(str, pids)), "--", "sleep", str(seconds)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    out = {}
    for c in SYSCALLS:
        m = re.search(rf"^(\d+),,syscalls:sys_enter_{c}\b", r.stderr, re.M)
        out[c] = int(m.group(1)) if m else 0
    return out


def tcp_out_segments():
    """The machine's TCP segments sent so far (/proc/net/snmp Tcp: OutSegs)."""
    with open("/proc/net/snmp") as f:
        rows = [ln.split() for ln in f if ln.startswith("Tcp:")]
    return int(rows[1][rows[0].index("OutSegs")])


def conn_split(port, workers):
    """Established client connections on `port` held by each worker (ss -tnp), largest first."""
    r = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{port} )"], capture_output=True, text=True)
    counts = {p: 0 for p in workers}
    for pid in re.findall(r"pid=(\d+)", r.stdout):
        if int(pid) in counts:
            counts[int(pid)] += 1
    return sorted(counts.values(), reverse=True)


def measure(server, duration, conns, upstream):
    server.wait_ready()
    bench.http_get(server.port, "/small")
    root = server.root_pid()
    workers = [p for p in server.pids() if p != root]
    up_root = upstream.root_pid()
    up_workers = [p for p in upstream.pids() if p != up_root] or [up_root]
    run_wrk(server.port, "/small", 2, conns, 1)             # warm-up
    before = {p: ctx(p) for p in workers + [root] + up_workers}
    s0 = tcp_out_segments()
    t0 = cpu_ticks(workers)
    w0 = {p: cpu_ticks([p]) for p in workers}
    u0 = cpu_ticks(up_workers)
    import threading
    ep, uep = {}, {}
    t = threading.Thread(target=lambda: ep.update(perf_syscalls(workers, duration - 1)))
    tu = threading.Thread(target=lambda: uep.update(perf_syscalls(up_workers, duration - 1)))
    t.start()
    tu.start()
    split = []
    ts = threading.Timer(duration / 2, lambda: split.extend(conn_split(server.port, workers)))
    ts.start()
    res = run_wrk(server.port, "/small", duration, conns, 1)
    ts.join()
    t.join()
    tu.join()
    after = {p: ctx(p) for p in workers + [root] + up_workers}
    segs = tcp_out_segments() - s0
    tick = 1e6 / os.sysconf("SC_CLK_TCK")
    cpu_us = (cpu_ticks(workers) - t0) * tick
    wcpu = sorted((cpu_ticks([p]) - w0[p] for p in workers), reverse=True)
    up_cpu_us = (cpu_ticks(up_workers) - u0) * tick
    n = max(res["requests"], 1)
    vol = sum(after[p][0] - before[p][0] for p in workers)
    inv = sum(after[p][1] - before[p][1] for p in workers)
    mvol = after[root][0] - before[root][0]
    uvol = sum(after[p][0] - before[p][0] for p in up_workers)
    per = res["rps"] * (duration - 1)
    return {"cpu_us": cpu_us / n, "rps": res["rps"], "requests": res["requests"], "p99_ms": res["p99_ms"], "non2xx": res["non2xx"],
            "voluntary": vol / n, "involuntary": inv / n, "master_voluntary": mvol,
            "syscalls": {c: v / per for c, v in ep.items()} if res["rps"] else {},
            "split": split, "segments": segs / n, "cpu_share": wcpu[0] / max(sum(wcpu), 1), "up_cpu_us": up_cpu_us / n, "up_voluntary": uvol / n,
            "up_epoll_wait": uep.get("epoll_wait", 0) / per if res["rps"] else 0}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gateway", default=os.path.join(bench.HERE, "../../.build/release/gateway"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="gwsw-")
    os.chmod(root, 0o755)
    up = Upstream(root, 1)
    up.wait_ready()
    servers = [NginxProxy(root, args.workers, up, "small-2w"),
               Gateway(root, args.workers, up, "small-2w", os.path.abspath(args.gateway))]
    try:
        print(f"{args.workers} workers, {args.connections} connections, {args.duration} s per run")
        print("proxy    round  req/s    p99 ms  worker CPU µs/req  vol/req  invol/req  master-vol  "
              "upstream: CPU µs/req  vol/req  epoll_wait/req  conns per worker  busiest CPU share  TCP segments/req | proxy syscalls per request")
        for r in range(args.rounds):
            for s in servers:
                m = measure(s, args.duration, args.connections, up)
                sc = "  ".join(f"{c} {v:.2f}" for c, v in m["syscalls"].items() if v >= 0.005)
                print(f"{s.name:8s} {r:5d}  {m['rps']:7.0f}  {m['p99_ms'] or 0:6.2f}  {m['cpu_us']:17.1f}  {m['voluntary']:7.3f}  "
                      f"{m['involuntary']:9.3f}  {m['master_voluntary']:10d}  "
                      f"{m['up_cpu_us']:20.1f}  {m['up_voluntary']:7.3f}  {m['up_epoll_wait']:14.3f}  {'/'.join(map(str, m['split'])):>16s}  {m['cpu_share']:17.2f}  {m['segments']:16.3f} | {sc}")
    finally:
        for s in servers:
            s.stop()
        up.stop()


if __name__ == "__main__":
    main()
