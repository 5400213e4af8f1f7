#!/usr/bin/env python3
"""Profile one gateway worker under wrk load (perf stat, perf record, strace -c).

Starts the bench upstream (Debian nginx) and the gateway with one worker and access log off,
configured like bench.py's scenario, drives /small (or the scenario's path) with wrk and, during
separate load windows, runs on the worker process:
  1. perf stat (task-clock, context switches, cycles/instructions when the PMU is available)
  2. perf record -g (call graphs) -> perf report --no-children, top symbols, grouped into
     syscalls/kernel, HTTP parsing, routing, balancer, allocation/ARC, libev, other
  3. strace -c (syscall counts per request; slows the worker, so it runs on its own)
Usage: python3 tools/bench/profile.py --gateway .build/release/gateway [--scenario small-1w]
       [--duration 8] [--out tools/bench/results/profile]
"""
import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

CATEGORIES = [
    ("client IP / peer key formatting (inet_ntop, sprintf)", re.compile(r"appendIP|SocketAddressV2ip|inet_ntop|"
                                                                       r"vfprintf|strchrnul|sprintf", re.I)),
    ("Swift runtime: exclusivity checks, weak/unowned refs, generics, hashing",
     re.compile(r"AccessSet|swift_beginAccess|swift_endAccess|swift_unownedRetainStrong|swift_weakLoadStrong|"
                r"instantiateConcreteType|swift_getEnumCase|Hasher|swift_getGenericMetadata", re.I)),
    ("kernel/syscalls", re.compile(r"\[k\]|^(__)?(libc_)?(read|write|writev|readv|recv|send|epoll|accept|close|"
                                   r"connect|socket|setsockopt|getsockopt|clock_gettime)", re.I)),
    ("HTTP parsing (llhttp + GWHTTP)", re.compile(r"llhttp|GWHTTP|HTTPParser|HTTPHeaders|HTTPRequestHead|"
                                                  r"HTTPResponseHead|scanHead", re.I)),
    ("routing (GWRouter, path normalise)", re.compile(r"GWRouter|Router|KongPath|RouteDecision|route", re.I)),
    ("balancer (GWBalancer)", re.compile(r"GWBalancer|Balancer|ServicePlan|pick|PeerState", re.I)),
    ("allocation / ARC / copies", re.compile(r"malloc|free|_int_|swift_retain|swift_release|"
                                                     r"swift_allocObject|swift_dealloc|swift_bridgeObject|"
                                                     r"swift_arrayInit|initializeWithCopy|"
                                                     r"swift_unknownObject|swift_isUniquely|swift_once|"
                                                     r"ContiguousArrayBuffer|_ArrayBuffer|"
                                                     r"Array.*(append|reserve|Capacity)|memmove|memcpy|memset|"
                                                     r"String|Substring|_StringGuts|UTF8", re.I)),
    ("libev / event loop", re.compile(r"ev_|libev|GWEvent|EventLoop|IOWatcher|TimerWatcher", re.I)),
    ("proxy logic (GWProxy)", re.compile(r"GWProxy|ClientConnection|UpstreamConnection|ProxyServer|"
                                         r"MessageBuilder|IOBuffer", re.I)),
]


def categorise(symbol):
    for name, rx in CATEGORIES:
        if rx.search(symbol):
            return name
    return "other"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gateway", default=os.path.join(bench.HERE, "../../.build/release/gateway"))
    ap.add_argument("--scenario", default="small-1w", help="a bench scenario name (default small-1w)")
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--out", default=os.path.join(bench.HERE, "results", "profile"))
    args = ap.parse_args()
    args.gateway = os.path.abspath(args.gateway)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    os.makedirs(args.out, exist_ok=True)
    root = tempfile.mkdtemp(prefix="gwprof-")
    os.chmod(root, 0o755)
    up = bench.Upstream(root, 1)
    gw = None
    report = []
    try:
        up.wait_ready()
        gw = bench.Gateway(root, 1, up, args.scenario, args.gateway)
        path, extra, script = bench.scenario_request(args.scenario, root)
        gw.wait_ready(path)
        worker = [p for p in gw.pids() if p != gw.root_pid()][0]
        report.append(f"scenario {args.scenario}, path {path}, worker pid {worker}, "
                      f"load {open('/proc/loadavg').read().split()[:3]}")

        def load(seconds):
            return bench.run_wrk(gw.port, path, seconds, args.connections, 1, extra, script)

        load(2)  # warm-up
        # 1. perf stat
        res = {}
        t = threading.Thread(target=lambda: res.update(load(args.duration)))
        t.start()
        time.sleep(0.5)
        st = subprocess.run(["perf", "stat", "-p", str(worker), "--", "sleep", str(args.duration - 1)],
                            capture_output=True, text=True)
        t.join()
        reqs = res.get("rps", 0) * (args.duration - 1)
        report += ["", "## perf stat (worker)", f"wrk: {res.get('rps')} req/s during the window "
                   f"(~{int(reqs)} requests in {args.duration - 1}s)", st.stderr.strip()]
        m = re.search(r"([\d.,]+)\s+msec task-clock", st.stderr)
        if m and reqs:
            ms = float(m.group(1).replace(",", ""))
            report.append(f"=> {ms * 1000 / reqs:.1f} us of worker CPU per request")
        # 2. perf record
        data = os.path.join(args.out, "perf.data")
        t = threading.Thread(target=lambda: load(args.duration))
        t.start()
        time.sleep(0.5)
        subprocess.run(["perf", "record", "-F", "999", "-g", "-o", data, "-p", str(worker), "--",
                        "sleep", str(args.duration - 1)], capture_output=True, text=True)
        t.join()
        rep = subprocess.run(["perf", "report", "-i", data, "--no-children", "--stdio", "-g", "none",
                              "--percent-limit", "0.05", "--sort", "dso,symbol"],
                             capture_output=True, text=True).stdout
        with open(os.path.join(args.out, "perf-report.txt"), "w") as f:
            f.write(rep)
        cats = {}
        top = []
        for line in rep.splitlines():
            m = re.match(r"\s+([\d.]+)%\s+(\S+)\s+(\[.\])\s+(.*)", line)
            if not m:
                continue
            pct, dso, kind, sym = float(m.group(1)), m.group(2), m.group(3), m.group(4).strip()
            c = categorise(f"{kind} {sym}" if kind == "[k]" else sym)
            if dso.startswith("libev"):
                c = "libev / event loop"
            cats[c] = cats.get(c, 0) + pct
            top.append(f"{pct:6.2f}%  {dso:24.24s} {kind} {sym[:110]}")
        report += ["", "## perf record: self time by category (symbols >= 0.05%)"]
        for c, v in sorted(cats.items(), key=lambda x: -x[1]):
            report.append(f"{v:6.1f}%  {c}")
        report += ["", "## top symbols (self)"] + top[:40]
        # 3. strace -c
        t = threading.Thread(target=lambda: res.update(load(args.duration)))
        t.start()
        time.sleep(0.5)
        st = subprocess.run(["timeout", "-s", "INT", str(args.duration - 2), "strace", "-c", "-f", "-p", str(worker)],
                            capture_output=True, text=True)
        t.join()
        report += ["", "## strace -c (worker; strace slows it down, use the counts, not the times)",
                   f"wrk during strace: {res.get('rps')} req/s, {res.get('requests')} requests in {args.duration}s",
                   st.stderr.strip()[-3000:]]
    finally:
        if gw:
            gw.stop()
        up.stop()
        shutil.rmtree(root, ignore_errors=True)
    text = "\n".join(report) + "\n"
    with open(os.path.join(args.out, f"profile-{args.scenario}.txt"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
