"""Readers of /proc for the benchmark: a server's process tree, its CPU ticks (user/system), the
machine's busy/idle ticks, and memory figures (VmRSS/VmHWM/RssShmem sums, private memory, the largest
worker). All best effort: a process gone between listing and reading is skipped."""
import os

CLK_TCK = os.sysconf("SC_CLK_TCK")


def children_map():
    m = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        ppid = int(s[s.rfind(")") + 2:].split()[1])
        m.setdefault(ppid, []).append(int(d))
    return m


def process_tree(root):
    m = children_map()
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(m.get(p, []))
    return out


def cpu_split(pids):
    """(utime, stime) in clock ticks, summed over pids."""
    ut = st = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                s = f.read()
        except OSError:
            continue
        fields = s[s.rfind(")") + 2:].split()
        ut += int(fields[11])  # utime (field 14)
        st += int(fields[12])  # stime (field 15)
    return ut, st


def cpu_ticks(pids):
    return sum(cpu_split(pids))


def machine_ticks():
    """(all, idle) clock ticks of the whole machine from /proc/stat (idle includes iowait; guest time is
    already inside user)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v[:8]), v[3] + v[4]


def status_kb(pids, key):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


def private_kb(pids):
    """Private_Clean + Private_Dirty (smaps_rollup) summed over pids: the memory only these processes use
    (no shared libraries, no copy-on-write pages still shared with a parent)."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith(("Private_Clean:", "Private_Dirty:")):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


def largest_worker_kb(pids):
    """(pid, VmRSS, private) of the largest worker: the process with the largest RSS other than the
    first pid (the master), or the only process (HAProxy's threads share one)."""
    best = (None, 0, 0)
    for p in (pids[1:] if len(pids) > 1 else pids):
        rss = status_kb([p], "VmRSS")
        if rss > best[1]:
            best = (p, rss, private_kb([p]))
    return best
