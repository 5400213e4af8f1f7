#!/usr/bin/env python3
"""Driver of the bounded busy-polling experiment (issue #18, not merged): nginx, the gateway, and the same
gateway binary with GW_BUSY_POLL_US set, in front of one upstream, in alternating paired rounds.

The binary must carry busy-poll-experiment.diff (apply it to a checkout of 821b3c7 or later and build into another
scratch path: `git apply tools/bench/results/busy-poll-experiment.diff && swift build -c release
--scratch-path /tmp/build-busy`). Without GW_BUSY_POLL_US the patched gateway behaves as the unpatched
one. Per run: requests/s, p99, the proxy's CPU and its workers' voluntary switches per request, and the
machine's idle time per request; at the end the geometric mean of each gateway's per-round ratio to nginx.

Usage: W=2 R=8 US=50 GW=/tmp/build-busy/release/gateway python3 tools/bench/results/busy_poll.py
"""
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from load_clients import run_wrk  # noqa: E402
from report import paired  # noqa: E402
from servers import Gateway, NginxProxy, Upstream  # noqa: E402
from procstats import cpu_ticks, machine_ticks  # noqa: E402
from switches import ctx  # noqa: E402

os.environ["GATEWAY_ADMIN_GUI_LISTEN"] = "off"   # two gateways run side by side
W = int(os.environ.get("W", "2"))
US = os.environ.get("US", "50")
ROUNDS = int(os.environ.get("R", "4"))
GW = os.environ.get("GW", "/tmp/build-busy/release/gateway")


def main():
    root = tempfile.mkdtemp(prefix="busy-")
    os.chmod(root, 0o755)
    up = Upstream(root, 1)
    up.wait_ready()
    servers = []
    try:
        servers.append(NginxProxy(root, W, up, "small-2w"))
        servers.append(Gateway(root, W, up, "small-2w", GW))
        os.environ["GW_BUSY_POLL_US"] = US
        busy = Gateway(root, W, up, "small-2w", GW)
        del os.environ["GW_BUSY_POLL_US"]
        busy.name = f"gw-busy{US}"
        servers.append(busy)
        runs = {s.name: [] for s in servers}
        for s in servers:
            s.wait_ready()
            run_wrk(s.port, "/small", 1, 64, 1)
        tick = 1e6 / os.sysconf("SC_CLK_TCK")
        for rnd in range(ROUNDS):
            for s in servers:
                workers = [p for p in s.pids() if p != s.root_pid()]
                c0, i0 = cpu_ticks(s.pids()), machine_ticks()[1]
                v0 = sum(ctx(p)[0] for p in workers)
                r = run_wrk(s.port, "/small", 5, 64, 1)
                c1, i1 = cpu_ticks(s.pids()), machine_ticks()[1]
                v1 = sum(ctx(p)[0] for p in workers)
                n = max(r["requests"], 1)
                runs[s.name].append(r)
                print(f"{s.name:12s} r{rnd} req/s {r['rps']:.0f} p99 {r['p99_ms']} ms proxy CPU {(c1 - c0) * tick / n:.2f} µs "
                      f"vol switches {(v1 - v0) / n:.3f} idle {(i1 - i0) * tick / n:.2f} µs per request, non-2xx {r['non2xx']}",
                      flush=True)
        res = {"proxies": {name: {"runs": r} for name, r in runs.items()}}
        for s in servers[1:]:
            rps, p99 = paired(res, s.name, "nginx", "rps"), paired(res, s.name, "nginx", "p99_ms")
            print(f"{s.name}: req/s / nginx {rps and rps['mean']} {rps and rps['ci95']}, "
                  f"p99 / nginx {p99 and p99['mean']} (geometric means over {ROUNDS} paired rounds, 95 % intervals)")
    finally:
        for s in servers:
            s.stop()
        up.stop()


if __name__ == "__main__":
    main()
