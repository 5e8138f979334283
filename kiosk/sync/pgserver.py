"""A throw-away PostgreSQL server on loopback, for the tests and ``kiosk bench --store``.

It uses the server binaries of the operating system's package (Debian: ``postgresql``,
``/usr/lib/postgresql/<version>/bin``): ``initdb`` makes a cluster in a fresh temporary folder,
``pg_ctl`` starts it on a free TCP port of 127.0.0.1 (and a unix socket in the same folder),
with password (SCRAM) authentication for the user ``kiosk`` and a database ``kiosk``.

``initdb`` and ``postgres`` refuse to run as root; when this process is root the cluster
belongs to the unprivileged user ``nobody`` and both are started as that user (the folder is
created in the system's temporary directory and handed to it).

This is not how a store runs its server: a store points ``[store] server`` at its existing
PostgreSQL.  No Qt, no psycopg needed to start or stop it.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

USER = "kiosk"
DATABASE = "kiosk"


def find_pg_bin() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``, or None when the server
    package is not installed (newest version first; ``$KIOSK_PG_BIN`` overrides)."""
    env = os.environ.get("KIOSK_PG_BIN")
    candidates = [env] if env else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                         key=lambda p: [int(x) if x.isdigit() else 0 for x in p.split("/")[-2].split(".")],
                         reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for c in candidates:
        if c and all((Path(c) / b).is_file() for b in ("initdb", "pg_ctl", "postgres")):
            return Path(c)
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalPostgres:
    """One cluster in its own temporary folder.  ``start()``, then ``url`` and ``password``;
    ``stop()`` / ``kill()`` / ``start()`` again (same data, same port); ``cleanup()`` stops it
    and removes the folder."""

    def __init__(self, *, password: str = "kiosk-test-pw", port: int | None = None,
                 settings: dict[str, str] | None = None) -> None:
        self.bin = find_pg_bin()
        if self.bin is None:
            raise FileNotFoundError("PostgreSQL server binaries (initdb, pg_ctl, postgres) not "
                                    "found: install the Debian package postgresql")
        self.password = password
        self.port = port or free_port()
        self.settings = dict(settings or {})
        self._as: dict = {}
        if os.geteuid() == 0:  # initdb/postgres refuse root: run them as nobody
            pw = pwd.getpwnam("nobody")
            self._as = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        self.dir = Path(tempfile.mkdtemp(prefix="kiosk-pg-"))
        os.chmod(self.dir, 0o700)
        if self._as:
            os.chown(self.dir, self._as["user"], self._as["group"])
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self._initialised = False

    # ------------------------------------------------------------------ plumbing
    def _run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", LANG="C", TZ="UTC")
        return subprocess.run([str(self.bin / args[0]), *args[1:]], cwd=self.dir, env=env,
                              capture_output=True, text=True, check=check, timeout=timeout,
                              **self._as)

    @property
    def url(self) -> str:
        """The connection URL, without the password."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    def conninfo(self) -> str:
        return f"host=127.0.0.1 port={self.port} user={USER} dbname={DATABASE} password={self.password}"

    def _initdb(self) -> None:
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._as:
            os.chown(pwfile, self._as["user"], self._as["group"])
        os.chmod(pwfile, 0o600)
        try:
            self._run("initdb", "-D", str(self.data), "-U", USER, "--pwfile", str(pwfile),
                      "--auth=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync")
        except subprocess.CalledProcessError as e:
            raise RuntimeError(f"initdb failed: {e.stderr or e.stdout}") from None
        finally:
            pwfile.unlink(missing_ok=True)
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.dir}'",
            "max_connections": "200",
            "shared_buffers": "128MB",
            "log_min_messages": "warning",
            "log_statement": "'none'",
            "timezone": "'UTC'",
        }
        conf.update(self.settings)
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as f:
            f.write("\n# kiosk test server\n")
            for k, v in conf.items():
                f.write(f"{k} = {v}\n")
        self._initialised = True

    # ------------------------------------------------------------------ life cycle
    def start(self, timeout: float = 60) -> "LocalPostgres":
        if not self._initialised:
            self._initdb()
        try:
            self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t",
                      str(int(timeout)), "start", timeout=timeout + 10)
        except subprocess.CalledProcessError as e:
            raise RuntimeError(f"pg_ctl start failed: {e.stderr or e.stdout}\n"
                               f"{self.log_tail()}") from None
        if not getattr(self, "_db_created", False):
            self._create_database()
        return self

    def _create_database(self) -> None:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=USER, dbname="postgres",
                             password=self.password, autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                (DATABASE,)).fetchone():
                conn.execute(f"CREATE DATABASE {DATABASE}")
        self._db_created = True

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def stop(self, mode: str = "fast") -> None:
        """A clean stop (``fast``: open sessions are ended, committed data kept)."""
        if self.data.exists() and self.running():
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def pids(self) -> list[int]:
        """The postmaster and all its children."""
        try:
            master = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        out = [master]
        for stat in glob.glob("/proc/[0-9]*/stat"):
            try:
                text = Path(stat).read_text()
                ppid = int(text.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == master:
                out.append(int(stat.split("/")[2]))
        return out

    def kill(self) -> None:
        """SIGKILL the server and every backend at once (a crash: recovery at the next start)."""
        pids = self.pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.05)
        # The lock file stays behind after a SIGKILL.  Postgres replaces a stale one itself,
        # unless its pid still exists: where nothing reaps orphans (a container whose first
        # process is not an init), the killed postmaster stays a zombie under that pid.
        if pids and not any(_alive(p) for p in pids):
            (self.data / "postmaster.pid").unlink(missing_ok=True)
            for f in self.dir.glob(".s.PGSQL.*"):
                f.unlink(missing_ok=True)

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server's processes alive now (and of their exited
        children, as the kernel counts them into the postmaster)."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # utime stime cutime cstime are fields 14-17 (1-based) -> 11..14 after the name
            total += sum(int(x) for x in fields[11:15])
        return total / tick

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def cleanup(self) -> None:
        try:
            self.stop("immediate")
        except Exception:  # noqa: BLE001
            pass
        if self.pids():
            self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "LocalPostgres":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.cleanup()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie counts as gone
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
