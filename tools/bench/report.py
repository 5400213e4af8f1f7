"""The benchmark's results: per-run CPU breakdown (µs per request: proxy user/kernel, upstream, wrk,
idle, other), medians over rounds, ratios to nginx, and the Markdown report (main table, CPU
breakdown with nginx's user-space ceiling, idle-connection tables)."""
import math
import statistics

from procstats import CLK_TCK


def breakdown(w, c0, c1, up_ticks, m0, m1):
    """Where the machine's time went during one wrk run, in microseconds per request: the proxy's user and
    kernel time, the upstream's and wrk's CPU time, idle time, and the rest (softirq work charged to no
    process, the benchmark itself). `total` is the machine's CPU time (all cores) per request, so
    req/s = cores * 1e6 / total while the run is CPU-bound."""
    n = w["requests"]
    if not n:
        return None
    us = lambda ticks: round(ticks / CLK_TCK / n * 1e6, 2)  # noqa: E731
    total, idle = m1[0] - m0[0], m1[1] - m0[1]
    b = {"proxy_user": us(c1[0] - c0[0]), "proxy_sys": us(c1[1] - c0[1]), "upstream": us(up_ticks),
         "wrk": round(w["wrk_cpu_s"] / n * 1e6, 2), "idle": us(idle), "total": us(total)}
    b["other"] = round(b["total"] - sum(b[k] for k in ("proxy_user", "proxy_sys", "upstream", "wrk", "idle")), 2)
    return b


def median_breakdown(runs):
    rows = [r["breakdown_us"] for r in runs if r.get("breakdown_us")]
    if not rows:
        return None
    return {k: round(statistics.median(r[k] for r in rows), 2) for k in rows[0]}


def ratios(res):
    """Each proxy's figures over plain nginx's ("vs_nginx") and, where the run has it, over nginx adding
    the gateway's default headers ("vs_nginx_h")."""
    for base_kind, field in (("nginx", "vs_nginx"), ("nginx-h", "vs_nginx_h")):
        base = res["proxies"].get(base_kind)
        if not base:
            continue
        for kind, p in res["proxies"].items():
            r = {}
            for key in ("rps", "p50_ms", "p99_ms", "cpu_s_per_100k", "peak_rss_kb", "kb_per_conn"):
                a, b = p.get(key), base.get(key)
                if a is not None and b:
                    r[key] = round(a / b, 2)
            p[field] = r
            if kind == "gateway":
                pr = paired(res, kind, base_kind)
                if pr:
                    p["paired_" + field] = pr


# Two-sided 95 % quantiles of Student's t for 1..30 degrees of freedom (beyond: the normal 1.96).
T95 = (12.71, 4.30, 3.18, 2.78, 2.57, 2.45, 2.36, 2.31, 2.26, 2.23, 2.20, 2.18, 2.16, 2.14, 2.13, 2.12, 2.11,
       2.10, 2.09, 2.09, 2.08, 2.07, 2.07, 2.06, 2.06, 2.06, 2.05, 2.05, 2.05, 2.04)


def paired(res, kind, base_kind="nginx", key="rps"):
    """`kind` over `base_kind` round by round (each round runs them back to back, so a slow stretch of this
    noisy machine hits both): the geometric mean of the per-round ratios, its 95 % confidence interval
    (t-distribution on the log-ratios) and the per-round ratios. None with fewer than 3 rounds."""
    a = res["proxies"].get(kind, {}).get("runs") or []
    b = res["proxies"].get(base_kind, {}).get("runs") or []
    logs = [math.log(x[key] / y[key]) for x, y in zip(a, b) if x.get(key) and y.get(key)]
    if len(logs) < 3:
        return None
    m, sd = statistics.mean(logs), statistics.stdev(logs)
    half = (T95[len(logs) - 2] if len(logs) - 1 <= len(T95) else 1.96) * sd / math.sqrt(len(logs))
    return {"mean": round(math.exp(m), 3), "ci95": [round(math.exp(m - half), 3), round(math.exp(m + half), 3)],
            "rounds": [round(math.exp(x), 2) for x in logs]}


def paired_markdown(results):
    """Per-round paired ratios of the gateway to nginx (and nginx-h) with a 95 % confidence interval."""
    lines = []
    for res in results:
        if res.get("error") or "gateway" not in res.get("proxies", {}):
            continue
        for base in ("nginx", "nginx-h"):
            for key in ("rps", "p99_ms"):
                pr = paired(res, "gateway", base, key)
                if pr:
                    lines.append(f"| {res['scenario']} | {base} | {'req/s' if key == 'rps' else 'p99'} | {fmt(pr['mean'], 3)} "
                                 f"| {fmt(pr['ci95'][0], 3)} – {fmt(pr['ci95'][1], 3)} | {' '.join(map(str, pr['rounds']))} |")
    if not lines:
        return []
    return ["", "Paired rounds: gateway / base, round by round (each round runs the proxies back to back); "
            "geometric mean and its 95 % confidence interval:", "",
            "| scenario | base | figure | mean ratio | 95 % interval | per round |", "|---|---|---|---:|---:|---|"] + lines


def fmt(v, nd=2):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def markdown(results, meta):
    lines = [f"Command: `{meta['command']}`  ",
             f"Machine: {meta['cpus']} CPUs, load average before/after {meta['load_before']} / {meta['load_after']}; "
             f"{meta['started']} .. {meta['finished']}  ",
             f"wrk {meta['threads']} thread(s), {meta['duration']}s x {meta['rounds']} interleaved rounds, medians; "
             "access logs off for all proxies; ratios are proxy / nginx in the same run. "
             "CPU = utime+stime of all the proxy's processes (master included); peak RSS = sum of VmHWM "
             "of those processes (shared pages counted once per process that touched them); worker: "
             "the VmRSS of the proxy's largest worker process (HAProxy: its one process) and its private "
             "part (smaps_rollup Private_*: without shared libraries and pages still shared copy-on-write "
             "with the master).", "",
             "| scenario | proxy | req/s | p50 ms | p99 ms | CPU s/100k req | peak RSS MiB | non-2xx | sock err "
             "| req/s vs nginx | p99 vs nginx | CPU vs nginx | RSS vs nginx | of RSS: shm MiB "
             "| worker RSS / private MiB |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    idle, crashes = [], []
    for res in results:
        if res.get("error"):
            lines.append(f"| {res['scenario']} | (failed: {res['error'][:80]}) |||||||||||")
            continue
        if res["scenario"] in ("idle-10k", "idle-tls"):
            idle.append(res)
            continue
        for kind in res["proxies"]:
            p = res["proxies"].get(kind)
            if not p:
                continue
            v = p.get("vs_nginx", {})
            rss = p.get("peak_rss_kb")
            lines.append(
                f"| {res['scenario']} (w={res['workers']}, c={res['connections']}) | {kind} | {fmt(p.get('rps'), 0)} "
                f"| {fmt(p.get('p50_ms'))} | {fmt(p.get('p99_ms'))} | {fmt(p.get('cpu_s_per_100k'))} "
                f"| {fmt(rss / 1024 if rss else None, 1)} | {p.get('non2xx')} | {p.get('socket_errors')} "
                f"| {fmt(v.get('rps'))} | {fmt(v.get('p99_ms'))} | {fmt(v.get('cpu_s_per_100k'))} "
                f"| {fmt(v.get('peak_rss_kb'))} | {fmt((p.get('rss_shmem_kb') or 0) / 1024, 1)} "
                f"| {fmt((p.get('worker_rss_kb') or 0) / 1024, 1)} / {fmt((p.get('worker_private_kb') or 0) / 1024, 1)} |")
            if p.get("worker_crashes"):
                crashes.append(f"{res['scenario']}: {p['worker_crashes']} gateway worker crash(es) (error.log)")
    if crashes:
        lines += ["", "Worker crashes: " + "; ".join(crashes)]
    lines += same_work_markdown(results)
    lines += paired_markdown(results)
    lines += breakdown_markdown(results)
    for res in idle:
        over = " over TLS" if res["scenario"] == "idle-tls" else ""
        lines += ["", f"Idle keep-alive connections{over} ({res['workers']} worker(s)):", "",
                  "| proxy | connections | answered 200 | RSS before MiB | RSS after MiB | KiB per connection "
                  "| vs nginx |", "|---|---:|---:|---:|---:|---:|---:|"]
        for kind in res["proxies"]:
            p = res["proxies"].get(kind)
            if not p:
                continue
            lines.append(f"| {kind} | {p.get('connections')} | {p.get('ok')} | {fmt(p['rss_before_kb'] / 1024, 1)} "
                         f"| {fmt(p['rss_after_kb'] / 1024, 1)} | {fmt(p.get('kb_per_conn'))} "
                         f"| {fmt(p.get('vs_nginx', {}).get('kb_per_conn'))} |")
    return "\n".join(lines) + "\n"


def breakdown_markdown(results):
    """The CPU breakdown table and, per scenario, the req/s ceiling over nginx that no user-space work can
    pass: the ratio a proxy would reach if it did nginx's kernel work and no user-space work at all, with
    wrk, the upstream and the idle time as in nginx's run."""
    lines = ["", "Where the machine's time goes, in µs per request (medians; all cores; `other` is mostly "
             "softirq work charged to no process). `ceiling` = total / (total − proxy user) of nginx's run: "
             "the req/s ratio to nginx of a proxy with nginx's kernel work and no user-space work at all.", "",
             "| scenario | proxy | proxy user | proxy kernel | upstream | wrk | idle | other | total | ceiling |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for res in results:
        if res.get("error") or res["scenario"] in ("idle-10k", "idle-tls"):
            continue
        nb = res["proxies"].get("nginx", {}).get("breakdown_us")
        ceiling = round(nb["total"] / (nb["total"] - nb["proxy_user"]), 2) if nb and nb["total"] > nb["proxy_user"] else None
        for kind in res["proxies"]:
            b = res["proxies"].get(kind, {}).get("breakdown_us")
            if not b:
                continue
            lines.append(f"| {res['scenario']} | {kind} | {fmt(b['proxy_user'])} | {fmt(b['proxy_sys'])} "
                         f"| {fmt(b['upstream'])} | {fmt(b['wrk'])} | {fmt(b['idle'])} | {fmt(b['other'])} "
                         f"| {fmt(b['total'])} | {fmt(ceiling) if kind == 'nginx' else ''} |")
    return lines


def same_work_markdown(results):
    """The gateway against nginx-h (nginx adding the gateway's default headers) where the run has it."""
    rows = [(res, res["proxies"]["gateway"].get("vs_nginx_h")) for res in results
            if not res.get("error") and "gateway" in res["proxies"] and res["proxies"]["gateway"].get("vs_nginx_h")]
    if not rows:
        return []
    lines = ["", "The same work: gateway / nginx-h (nginx adding the gateway's default request and response "
             "headers, so wrk and the upstream parse the same bytes):", "",
             "| scenario | req/s | p99 | CPU per request |", "|---|---:|---:|---:|"]
    for res, v in rows:
        lines.append(f"| {res['scenario']} | {fmt(v.get('rps'))} | {fmt(v.get('p99_ms'))} | {fmt(v.get('cpu_s_per_100k'))} |")
    return lines
