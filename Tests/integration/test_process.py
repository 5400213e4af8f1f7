"""Process model, CLI and project skeleton: master + workers, signals, reload, respawn, CLI errors.
Every wait is bounded (conftest.wait_until / timeouts); durations are printed, never asserted."""
import json
import os
import signal
import socket
import threading
import time
import urllib.request

from conftest import (TIMEOUT, Load, add_route, alive, children, cmdline, port_free, processes_using,
                      wait_until)


def cli(g, *args, **kw):
    return g.cli(*args, "-c", g.conf, "-p", g.prefix, **kw)


def current_workers(g, n, replacing=()):
    """Waits until pids/workers lists n live workers, none of them in `replacing`, and the master
    has exactly those children (drained workers of an earlier generation have exited). Returns the
    sorted pids."""
    master = g.master_pid()

    def ok():
        pids = g.worker_pids()
        if len(pids) != n or set(pids) & set(replacing) or not all(alive(p) for p in pids):
            return None
        return sorted(pids) if sorted(children(master)) == sorted(pids) else None
    return wait_until(ok, what=f"{n} workers, no others")


def test_start_health_titles_stop(gateway):
    g = gateway(workers=2)
    r = cli(g, "health")
    assert r.returncode == 0, r.stdout + r.stderr
    master = g.master_pid()
    workers = current_workers(g, 2)
    assert f"master.......running (pid {master})" in r.stdout
    for w in workers:
        assert f"(pid {w})" in r.stdout
    assert r.stdout.count("worker ") == 2
    assert cmdline(master).startswith("gateway: master process"), cmdline(master)
    for w in workers:
        assert cmdline(w).startswith("gateway: worker process"), cmdline(w)
    assert not port_free(g.proxy_port) and not port_free(g.admin_port)

    r = g.stop()
    assert r.returncode == 0, r.stdout + r.stderr
    assert not alive(master)
    wait_until(lambda: not any(alive(w) for w in workers), what="workers gone")
    assert not os.path.exists(g.pid_file)
    assert port_free(g.proxy_port) and port_free(g.admin_port)
    # A new socket can listen on the proxy port.
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", g.proxy_port))
    s.listen(1)
    s.close()
    assert processes_using(g.prefix) == []
    r = cli(g, "health")
    assert r.returncode != 0 and "not running" in r.stdout + r.stderr


def test_reload_under_traffic_applies_config(gateway, upstream):
    up = upstream("u")
    g = gateway(workers=2)
    add_route(g, up, "/r")
    master = g.master_pid()
    old = current_workers(g, 2)
    assert "via" in {k.lower() for k in g.get("/r")[2]}
    with Load(g.proxy_port, "/r", fresh=2, keepalive=2) as load:
        wait_until(lambda: load.ok > 20, what="traffic before reload")
        g.write_conf(headers="off")
        r = cli(g, "reload")
        assert r.returncode == 0, r.stdout + r.stderr
        new = current_workers(g, 2, replacing=old)
        assert not any(alive(p) for p in old)
        before = load.ok
        wait_until(lambda: load.ok > before + 20, what="traffic after reload")
        # Responses from the new workers carry no Via header (headers = off).
        wait_until(lambda: "via" not in load.last_headers, what="Via header gone")
    print(f"\nreload under traffic: {load.summary()}")
    assert load.failed == 0, load.summary()
    assert g.master_pid() == master and alive(master)
    assert "via" not in {k.lower() for k in g.get("/r")[2]}


def test_sigkill_worker_respawns(gateway, upstream):
    up = upstream("u")
    g = gateway(workers=2)
    add_route(g, up, "/r")
    old = current_workers(g, 2)
    victim = old[0]
    with Load(g.proxy_port, "/r", fresh=1, keepalive=1) as load:
        wait_until(lambda: load.ok > 10, what="traffic before kill")
        t0 = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        new = wait_until(lambda: (lambda p: p if len(p) == 2 and victim not in p and all(alive(x) for x in p)
                                  else None)(g.worker_pids()), interval=0.005, what="respawned worker")
        took = time.monotonic() - t0
        assert old[1] in new
        after_kill = load.ok
        wait_until(lambda: load.ok > after_kill + 30, what="traffic after respawn")
        failed_at_respawn = load.failed
        later = load.ok
        wait_until(lambda: load.ok > later + 30, what="more traffic")
    print(f"\nrespawn after SIGKILL took {took * 1000:.0f} ms; traffic: {load.summary()}")
    # Only exchanges held by the killed worker may fail; traffic after the respawn all succeeds.
    assert load.failed == failed_at_respawn, load.summary()
    st, body, _ = g.get("/r")
    assert st == 200 and json.loads(body)["upstream"] == "u"
    assert "worker process" in g.log() and "killed by signal 9" in g.log()


def slow_request(g, path, result):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{g.proxy_port}{path}", timeout=TIMEOUT * 2) as r:
            result["status"] = r.status
            result["body"] = r.read()
    except Exception as e:  # noqa: BLE001
        result["error"] = f"{type(e).__name__}: {e}"


def test_quit_waits_for_inflight_stop_does_not(gateway, upstream):
    up = upstream("slow")
    for mode in ("quit", "stop"):
        g = gateway(workers=1)
        add_route(g, up, "/slow")
        master = g.master_pid()
        workers = current_workers(g, 1)
        up.delay = 2.0
        hits = up.hits
        result = {}
        t = threading.Thread(target=slow_request, args=(g, "/slow", result), daemon=True)
        t.start()
        wait_until(lambda: up.hits > hits, what="slow request at the upstream")
        r = cli(g, mode)
        assert r.returncode == 0, r.stdout + r.stderr
        t.join(TIMEOUT * 2)
        assert not t.is_alive()
        up.delay = 0.0
        assert not alive(master)
        wait_until(lambda: not any(alive(w) for w in workers), what="workers gone")
        assert not os.path.exists(g.pid_file)
        if mode == "quit":
            assert result.get("status") == 200, result
            assert json.loads(result["body"])["upstream"] == "slow"
            assert "gracefully" in r.stdout
        else:
            assert "status" not in result and "error" in result, result
        assert port_free(g.proxy_port)


def assert_start_fails(g, *needles, env=None):
    r = g.cli("start", "-c", g.conf, "-p", g.prefix, env=env)
    err = r.stderr.strip()
    assert r.returncode != 0, r.stdout + r.stderr
    assert len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, (n, err)
    assert not os.path.exists(g.pid_file)
    assert processes_using(g.prefix) == [], err
    return err


def test_start_errors(gateway):
    # Proxy port already in use.
    g = gateway(workers=2, start=False)
    busy = socket.socket()
    busy.bind(("127.0.0.1", g.proxy_port))
    busy.listen(1)
    try:
        err = assert_start_fails(g, f"127.0.0.1:{g.proxy_port}", "in use")
        print(f"\nport in use: {err}")
        assert port_free(g.admin_port)
    finally:
        busy.close()
    # Admin port in use (bound after daemonizing: the verdict comes back through the pipe).
    g = gateway(workers=2, start=False)
    busy = socket.socket()
    busy.bind(("127.0.0.1", g.admin_port))
    busy.listen(1)
    try:
        err = assert_start_fails(g, f"127.0.0.1:{g.admin_port}", "in use")
        print(f"admin port in use: {err}")
        assert port_free(g.proxy_port)
    finally:
        busy.close()
    # Unknown key: names the key and the line.
    g = gateway(workers=2, start=False)
    with open(g.conf, "a") as f:
        f.write("# comment\nbogus_key = 1\n")
    line = len(open(g.conf).read().splitlines())
    err = assert_start_fails(g, "bogus_key", f"{g.conf}:{line}")
    print(f"unknown key: {err}")
    # Bad value: names the key, the value and the line.
    g = gateway(workers=2, start=False)
    g.write_conf(worker_processes="lots")
    line = 1 + list(g.settings).index("worker_processes")
    err = assert_start_fails(g, "worker_processes", "'lots'", f"{g.conf}:{line}")
    print(f"bad value: {err}")
    assert port_free(g.proxy_port) and port_free(g.admin_port)


def test_worker_count_follows_reload(gateway, upstream):
    up = upstream("u")
    g = gateway(workers=2)
    add_route(g, up, "/r")
    master = g.master_pid()
    pids = current_workers(g, 2)
    with Load(g.proxy_port, "/r", fresh=2, keepalive=2) as load:
        for n in (1, 2):
            wait_until(lambda: load.ok > 10, what="traffic")
            before = load.ok
            g.write_conf(worker_processes=n)
            assert cli(g, "reload").returncode == 0
            pids = current_workers(g, n, replacing=pids)
            r = cli(g, "health")
            assert r.returncode == 0 and r.stdout.count("worker ") == n, r.stdout
            wait_until(lambda: load.ok > before + 20, what=f"traffic with {n} workers")
            assert all(cmdline(p).startswith("gateway: worker process") for p in pids)
    print(f"\nworker_processes 2 -> 1 -> 2 under traffic: {load.summary()}")
    assert load.failed == 0, load.summary()
    assert g.master_pid() == master


def test_usr1_reopens_logs(gateway, upstream):
    up = upstream("u")
    g = gateway(workers=2)
    add_route(g, up, "/r")
    logs = os.path.join(g.prefix, "logs")
    wait_until(lambda: "GET /r " in g.log("access.log"), what="request in access.log")
    os.rename(os.path.join(logs, "access.log"), os.path.join(logs, "access.log.1"))
    os.rename(os.path.join(logs, "error.log"), os.path.join(logs, "error.log.1"))
    os.kill(g.master_pid(), signal.SIGUSR1)
    wait_until(lambda: os.path.exists(os.path.join(logs, "error.log")), what="fresh error.log")

    def logged():
        # Every worker must have reopened: send a few fresh-connection requests (spread over the
        # workers by SO_REUSEPORT) with a marker path and look for them in the new file.
        for i in range(4):
            assert g.get(f"/r/after-usr1-{i}")[0] == 200
        return "/r/after-usr1-" in g.log("access.log")
    wait_until(logged, interval=0.3, what="request in the fresh access.log")
    assert "reopening logs" in open(os.path.join(logs, "error.log.1")).read()
    assert "/r/after-usr1-" not in open(os.path.join(logs, "access.log.1")).read()


def test_env_override_and_check(gateway, tmp_path):
    g = gateway(workers=2, start=False)
    g.cli("start", "-c", g.conf, "-p", g.prefix, env={"GATEWAY_WORKER_PROCESSES": "3"}, check=True)
    current_workers(g, 3)
    r = cli(g, "health")
    assert r.returncode == 0 and r.stdout.count("worker ") == 3, r.stdout + r.stderr
    st, info, _ = g.admin("GET", "/")
    assert st == 200 and info["configuration"]["worker_processes"] == 3
    g.stop()

    r = g.cli("check", g.conf)
    assert r.returncode == 0 and f"configuration at {g.conf} is valid" in r.stdout, r.stdout + r.stderr
    bad = tmp_path / "bad.conf"
    bad.write_text("log_level = info\n\nworker_processes = 2\nkeepalive_timeout = soon\n")
    r = g.cli("check", str(bad))
    assert r.returncode != 0
    assert f"{bad}:4" in r.stderr and "keepalive_timeout" in r.stderr, r.stderr
    # worker_processes is capped at half the 64 shared-memory slots (a reload runs two generations).
    r = g.cli("check", g.conf, env={"GATEWAY_WORKER_PROCESSES": "33"})
    assert r.returncode != 0 and "between 1 and 32" in r.stderr, r.stderr
    # An invalid environment override is named as such.
    r = g.cli("check", g.conf, env={"GATEWAY_WORKER_PROCESSES": "zero"})
    assert r.returncode != 0 and "GATEWAY_WORKER_PROCESSES" in r.stderr, r.stderr


def test_workers_exit_when_master_killed(gateway, upstream):
    g = gateway(workers=2)
    master = g.master_pid()
    workers = current_workers(g, 2)
    os.kill(master, signal.SIGKILL)
    t0 = time.monotonic()
    wait_until(lambda: not any(alive(w) for w in workers), what="orphaned workers exit")
    print(f"\nworkers exited {1000 * (time.monotonic() - t0):.0f} ms after the master was killed")
    wait_until(lambda: port_free(g.proxy_port), what="proxy port free")
    assert processes_using(g.prefix) == []


def test_admin_node_info_and_status(gateway, upstream):
    up = upstream("u")
    g = gateway(workers=2)
    add_route(g, up, "/r")
    master = g.master_pid()
    workers = current_workers(g, 2)
    st, info, _ = g.admin("GET", "/")
    assert st == 200
    assert info["pids"]["master"] == master
    assert sorted(info["pids"]["workers"]) == workers

    def status():
        st, body, _ = g.admin("GET", "/status")
        assert st == 200
        return body["server"]
    s0 = status()
    assert sorted(w["pid"] for w in s0["workers"]) == workers
    assert all("requests" in w and "connections_accepted" in w for w in s0["workers"])
    for _ in range(20):
        assert g.get("/r")[0] == 200
    s1 = status()
    assert s1["total_requests"] >= s0["total_requests"] + 20
    assert sum(w["requests"] for w in s1["workers"]) >= sum(w["requests"] for w in s0["workers"]) + 20
    assert s1["connections_accepted"] >= s0["connections_accepted"] + 20
    # Node totals stay cumulative when a reload replaces every worker.
    g.cli("reload", "-c", g.conf, "-p", g.prefix, check=True)
    wait_until(lambda: not set(g.worker_pids()) & set(workers) and len(g.worker_pids()) == 2, what="new workers")
    wait_until(lambda: all(w["pid"] not in workers for w in status()["workers"]), what="old workers gone")
    s2 = status()
    assert s2["total_requests"] >= s1["total_requests"]
    assert s2["connections_accepted"] >= s1["connections_accepted"]


def test_quit_timeout_bounds_the_drain(gateway, upstream):
    # An exchange that outlives quit_timeout is cut by the worker itself: `quit` does not wait for
    # the 5 s upstream (without the bound the request would finish with 200).
    up = upstream("hung")
    g = gateway(workers=1, quit_timeout="1s")
    add_route(g, up, "/hung")
    master = g.master_pid()
    up.delay = 5.0
    result = {}
    hits = up.hits   # add_route's own checks already reached the upstream
    t = threading.Thread(target=slow_request, args=(g, "/hung", result), daemon=True)
    t.start()
    wait_until(lambda: up.hits > hits, what="request at the upstream")
    r = cli(g, "quit")
    assert r.returncode == 0, r.stdout + r.stderr
    t.join(TIMEOUT * 2)
    assert "status" not in result and "error" in result, result
    assert not alive(master)
    assert "quit_timeout (1 s) expired" in g.log()


def test_bad_reload_keeps_running_config(gateway, upstream):
    up = upstream("u")
    g = gateway(workers=2)
    add_route(g, up, "/r")
    master = g.master_pid()
    workers = current_workers(g, 2)
    g.write_conf(worker_processes="lots")
    # The CLI validates first and does not signal.
    r = cli(g, "reload")
    assert r.returncode != 0 and "worker_processes" in r.stderr, r.stdout + r.stderr
    # A SIGHUP with a broken file is refused by the master, which keeps its configuration.
    os.kill(master, signal.SIGHUP)
    wait_until(lambda: "reload failed, keeping the running configuration" in g.log(), what="reload refused")
    assert current_workers(g, 2) == workers
    assert g.get("/r")[0] == 200
    # restart = stop + start: a new master, healthy.
    g.write_conf(worker_processes=2)
    r = cli(g, "restart")
    assert r.returncode == 0, r.stdout + r.stderr
    assert g.master_pid() != master and not alive(master)
    current_workers(g, 2)
    assert cli(g, "health").returncode == 0
    g.wait_route("/r")


def test_titles_with_short_command_line(gateway, tmp_path):
    # `gateway start` from PATH with conf/gateway.conf in the current directory: argv is only 14
    # bytes, the titles must still be whole (they borrow the environment's room, as nginx does).
    import shutil
    import subprocess
    from conftest import GATEWAY_BIN
    g = gateway(workers=2, start=False)
    work = tmp_path / "cwd"
    (work / "conf").mkdir(parents=True)
    shutil.copy(g.conf, work / "conf" / "gateway.conf")
    env = dict(os.environ, PATH=os.path.dirname(GATEWAY_BIN) + os.pathsep + os.environ.get("PATH", ""))
    r = subprocess.run(["gateway", "start"], cwd=work, env=env, capture_output=True, text=True, timeout=TIMEOUT * 3)
    assert r.returncode == 0, r.stdout + r.stderr
    master = g.master_pid()
    assert cmdline(master).startswith("gateway: master process"), cmdline(master)
    old = current_workers(g, 2)
    for w in old:
        assert cmdline(w).startswith("gateway: worker process"), cmdline(w)
    print(f"\nmaster cmdline: {cmdline(master)!r}")
    # The master re-reads its configuration (and its moved environment, getenv) on reload.
    r = subprocess.run(["gateway", "reload"], cwd=work, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    for w in current_workers(g, 2, replacing=old):
        assert cmdline(w).startswith("gateway: worker process"), cmdline(w)
    assert cli(g, "health").returncode == 0


def test_foreground_start_and_sigint(gateway):
    import subprocess
    from conftest import GATEWAY_BIN
    g = gateway(workers=2, start=False)
    p = subprocess.Popen([GATEWAY_BIN, "start", "--foreground", "-c", g.conf, "-p", g.prefix],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(iter(p.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        wait_until(lambda: cli(g, "health").returncode == 0, what="foreground gateway healthy")
        assert g.master_pid() == p.pid
        assert cli(g, "start").returncode != 0       # already running
        workers = current_workers(g, 2)
        # Running processes are healthy before every worker has reported ready: wait for the announcement.
        wait_until(lambda: any("gateway started" in l for l in lines), what="start announced")
        p.send_signal(signal.SIGINT)
        p.wait(timeout=TIMEOUT * 2)
        reader.join(timeout=TIMEOUT)
        out = "".join(lines)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, out
    assert "gateway started: 2 worker processes" in out and "exit" in out, out
    assert not any(alive(w) for w in workers)
    assert not os.path.exists(g.pid_file) and port_free(g.proxy_port)


def test_admin_answers_half_closed_requests(gateway):
    # Request + FIN arriving together (nc -q, HTTP/1.0 tools): every request is answered,
    # including two pipelined ones before the FIN.
    g = gateway(workers=1)
    for i in range(10):
        s = socket.create_connection(("127.0.0.1", g.admin_port), timeout=TIMEOUT)
        req = b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n"
        s.sendall(req * (1 + i % 2))
        s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
        s.close()
        assert data.count(b"HTTP/1.1 200") == 1 + i % 2, data[:300]


def test_reload_to_busy_port_is_refused(gateway, upstream):
    from conftest import free_port
    up = upstream("u")
    g = gateway(workers=2)
    add_route(g, up, "/r")
    workers = current_workers(g, 2)
    busy_port = free_port()
    busy = socket.socket()
    busy.bind(("127.0.0.1", busy_port))
    busy.listen(1)
    try:
        old_port = g.proxy_port
        g.write_conf(proxy_listen=f"127.0.0.1:{old_port}, 127.0.0.1:{busy_port}")
        assert cli(g, "reload").returncode == 0
        wait_until(lambda: "reload failed, keeping the running configuration" in g.log(), what="reload refused")
        assert current_workers(g, 2) == workers
        assert g.get("/r")[0] == 200
    finally:
        busy.close()
    # Once the port is free the same reload adds the second listener; the first keeps serving.
    assert cli(g, "reload").returncode == 0
    current_workers(g, 2, replacing=workers)
    g.wait_route("/r")
    with urllib.request.urlopen(f"http://127.0.0.1:{busy_port}/r", timeout=TIMEOUT) as r:
        assert r.status == 200


def fd_targets(pid):
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass
    return out


def test_workers_are_execd_with_only_their_descriptors(gateway, upstream):
    # A worker is the gateway binary exec'd again (not the forked master's memory image): it holds
    # its listeners, its channel, its logs and the shared segment's mapping, nothing of the master.
    up = upstream("u")
    g = gateway(workers=2)
    add_route(g, up, "/r")
    master = g.master_pid()
    master_fds = fd_targets(master)
    assert any("gateway.db" in t for t in master_fds), master_fds
    for w in current_workers(g, 2):
        assert os.path.realpath(f"/proc/{w}/exe") == os.path.realpath(os.path.realpath(f"/proc/{master}/exe"))
        targets = fd_targets(w)
        print(f"\nworker {w} descriptors: {sorted(targets)}")
        assert not any("gateway.db" in t or "memfd:" in t for t in targets), targets
        files = [t for t in targets if t.startswith("/") and t != "/dev/null"]
        assert all(t.startswith(os.path.join(g.prefix, "logs")) for t in files), files
        with open(f"/proc/{w}/maps") as f:
            assert "memfd:gateway-shm" in f.read()
    st, body, _ = g.get("/r")
    assert st == 200 and json.loads(body)["upstream"] == "u"


def test_binary_replaced_on_disk_workers_still_run_the_masters_code(gateway, upstream, tmp_path):
    # A package upgrade replaces the binary under a running master: a worker respawned (or started by
    # a reload) afterwards must run the master's own code, not whatever the path names now.
    import shutil
    import subprocess
    from conftest import GATEWAY_BIN
    up = upstream("u")
    g = gateway(workers=1, start=False)
    copy = str(tmp_path / "bin" / "gateway")
    os.makedirs(os.path.dirname(copy))
    shutil.copy(GATEWAY_BIN, copy)
    r = subprocess.run([copy, "start", "-c", g.conf, "-p", g.prefix], capture_output=True, text=True,
                       timeout=TIMEOUT * 3)
    assert r.returncode == 0, r.stdout + r.stderr
    add_route(g, up, "/r")
    old = current_workers(g, 1)
    # The "upgrade": a different file renamed over the path (as dpkg does).
    with open(copy + ".new", "w") as f:
        f.write("#!/bin/sh\nexit 3\n")
    os.chmod(copy + ".new", 0o755)
    os.rename(copy + ".new", copy)
    os.kill(old[0], signal.SIGKILL)
    new = current_workers(g, 1, replacing=old)
    st, body, _ = g.get("/r")
    assert st == 200 and json.loads(body)["upstream"] == "u"
    assert cmdline(new[0]).startswith("gateway: worker process"), cmdline(new[0])
    assert "exited with code 3" not in g.log()
    assert g.cli("reload", "-c", g.conf, "-p", g.prefix).returncode == 0
    current_workers(g, 1, replacing=new)
    st, _, _ = g.get("/r")
    assert st == 200


def test_worker_command_refuses_to_run_by_hand(gateway):
    # `gateway __worker FD` is how the master starts a worker; run by hand it must not read a
    # terminal or hang: it exits 2 at once.
    g = gateway(workers=1, start=False)
    for args in (["__worker"], ["__worker", "0"], ["__worker", "x"], ["__worker", "99"]):
        r = g.cli(*args, timeout=TIMEOUT)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        assert "started by the master process only" in r.stderr
