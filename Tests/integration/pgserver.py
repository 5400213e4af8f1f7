"""A private PostgreSQL for the tests: initdb in a temporary directory (as an unprivileged user when the
tests run as root: initdb refuses root), postgres on a random 127.0.0.1 port, one database per test
(`PGServer.database()`), stopped and removed at the end. Binaries: /usr/lib/postgresql/*/bin (Debian's
`postgresql`), else initdb/pg_ctl on PATH. Every wait is bounded."""
import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../tools"))
from netutil import free_port  # noqa: E402 - outside the ephemeral range (see there)


def _bindir():
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]) if d.split("/")[-2].isdigit() else 0)
    for d in reversed(dirs):
        if os.path.exists(os.path.join(d, "initdb")):
            return d
    p = shutil.which("initdb") or shutil.which("pg_ctl")
    return os.path.dirname(p) if p else None




class PGServer:
    USER = "kong"

    def __init__(self):
        self.bindir = _bindir()
        if not self.bindir:
            raise RuntimeError("PostgreSQL binaries not found (install Debian's postgresql)")
        self.dir = tempfile.mkdtemp(prefix="gw-pg-")
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.runas = None
        if os.geteuid() == 0:
            for name in ("postgres", "nobody"):
                try:
                    pw = pwd.getpwnam(name)
                except KeyError:
                    continue
                self.runas = name
                os.chown(self.dir, pw.pw_uid, pw.pw_gid)
                break
        self.counter = 0
        self._run("initdb", "-D", self.data, "-U", self.USER, "--auth=trust", "-E", "UTF8", "--no-locale")
        self.start()

    def _cmd(self, prog, *args):
        cmd = [os.path.join(self.bindir, prog), *args]
        if self.runas:
            cmd = ["runuser", "-u", self.runas, "--", *cmd]
        return cmd

    def _run(self, prog, *args, timeout=60):
        r = subprocess.run(self._cmd(prog, *args), capture_output=True, text=True, timeout=timeout, cwd=self.dir)
        if r.returncode != 0:
            raise RuntimeError(f"{prog} failed: {r.stdout}\n{r.stderr}")
        return r

    def start(self):
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run("pg_ctl", "-D", self.data, "-o", opts, "-l", os.path.join(self.dir, "log"), "-w", "-t", "30", "start")

    def stop(self, mode="fast"):
        subprocess.run(self._cmd("pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "30", "stop"),
                       capture_output=True, text=True, timeout=60, cwd=self.dir)

    def psql(self, db, sql):
        r = subprocess.run([os.path.join(self.bindir, "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.USER,
                            "-d", db, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"psql failed: {r.stderr}")
        return r.stdout.strip()

    def database(self):
        """A new empty database; returns its name."""
        self.counter += 1
        name = f"gw{os.getpid()}_{self.counter}"
        self.psql("postgres", f"CREATE DATABASE {name}")
        return name

    def settings(self, db):
        """gateway.conf keys for database `db`."""
        return {"database": "postgres", "pg_host": "127.0.0.1", "pg_port": str(self.port), "pg_user": self.USER,
                "pg_database": db, "pg_timeout": "3000"}

    def close(self):
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)
