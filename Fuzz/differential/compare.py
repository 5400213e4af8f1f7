#!/usr/bin/env python3
"""Runs GWHTTP's request parser (fuzz-http-request, GW_FUZZ_VERDICT=1) and strict llhttp
(llhttp-strict-verdict) over the given input files and groups the disagreements. See ../differential.sh."""
import collections, os, subprocess, sys

def batches(xs, n=400):
    for i in range(0, len(xs), n):
        yield xs[i:i + n]

def ours(files):
    res = {}
    env = dict(os.environ, GW_FUZZ_VERDICT="1", SWIFT_BACKTRACE="enable=no")
    for b in batches(files):
        p = subprocess.run([".build/release/fuzz-http-request", "-runs=0"] + b, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        cur = None
        for line in p.stderr.decode("utf-8", "replace").splitlines():
            if line.startswith("Running: "):
                cur = line[len("Running: "):]; res[cur] = []
            elif line.startswith("Executed "):
                cur = None
            elif cur is not None and (line[:2] in ("M ", "B ") or line in ("E", "upgrade") or line.startswith(("error ", "eof "))):
                res[cur].append(line)
                if line == "upgrade" or line.startswith(("error ", "eof ")):
                    cur = None   # libFuzzer may run an input twice: keep the first verdict
    return res

def theirs(files):
    res = {}
    for b in batches(files):
        p = subprocess.run(["differential/llhttp-strict-verdict"] + b, stdout=subprocess.PIPE)
        cur = None
        for line in p.stdout.decode("utf-8", "replace").splitlines():
            if line.startswith("== "):
                cur = line[3:]; res[cur] = []
            elif cur is not None:
                res[cur].append(line)
    return res

def norm(v):
    # llhttp reports an upgrade's message end before pausing; ours reports the upgrade itself
    out = []
    for x in v:
        if x == "upgrade" and out and out[-1] == "E":
            out.pop()
        out.append(x)
    return out

def kind(line):
    if line.startswith("error "):
        return "error"
    return line.split(" ", 1)[0] if line != "(end)" else "(end)"

def main():
    files = [f for f in sys.argv[1:] if os.path.getsize(f) >= 4]
    a, b = ours(files), theirs(files)
    classes = collections.defaultdict(lambda: collections.defaultdict(list))
    agree = 0
    for f in files:
        x, y = norm(a.get(f, ["(no verdict)"])), norm(b.get(f, ["(no verdict)"]))
        if x == y:
            agree += 1
            continue
        i = 0
        while i < min(len(x), len(y)) and x[i] == y[i]:
            i += 1
        dx = x[i] if i < len(x) else "(end)"
        dy = y[i] if i < len(y) else "(end)"
        kx, ky = kind(dx), kind(dy)
        if kx == "error" and ky == "error":
            cls, key = "A. both reject, at the same message (reasons differ)", ""
        elif kx == "error":
            cls, key = "B. gateway rejects, strict llhttp accepts (the gateway is stricter)", dx
        elif ky == "error":
            cls, key = "C. strict llhttp rejects, gateway accepts", f"{dy}  (gateway: {dx})"
        else:
            cls, key = "D. both accept, framing or EOF differs", f"gateway {dx!r} / llhttp {dy!r}"
        classes[cls][key].append(f)
    total = len(files)
    print(f"inputs: {total}  same verdict and framing: {agree}  different: {total - agree}")
    for cls in sorted(classes):
        groups = classes[cls]
        print(f"\n{cls}: {sum(len(v) for v in groups.values())}")
        for key, fs in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            if key:
                print(f"  {len(fs):5d}  {key}   e.g. {os.path.basename(fs[0])}")

main()
