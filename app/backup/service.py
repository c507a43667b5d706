"""Backups with PostgreSQL's own tools: `pg_dump` (custom format, one consistent snapshot) and
`pg_restore` into an empty database, then `ledger verify`.

A backup is written beside its final name, read back with `pg_restore --list` (the archive's table of
contents must parse) and its SHA-256 stored in `<file>.sha256`; only then is it renamed into place and
the oldest beyond BACKUP_KEEP removed. A restore checks the checksum and the table of contents before it
touches the target, refuses a target that holds tables unless forced, restores in one transaction
(nothing half-restored), migrates to head (a dump made by an earlier version is brought up to date) and
verifies the ledger.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from app.core import clock
from app.core.config import Settings, get_settings

PREFIX = "jianfei-"
SUFFIX = ".dump"
_NAME = re.compile(r"^jianfei-\d{8}T\d{6}Z\.dump$")


class BackupError(RuntimeError):
    """A backup or restore that cannot go on; the message says why, for the operator."""


# --- the tools ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Connection:
    """What libpq's tools need: a URL without the password, and the password in PGPASSWORD (never on a
    command line, where `ps` shows it)."""

    url: str
    password: str | None

    @classmethod
    def of(cls, url: str) -> Connection:
        u = make_url(url)
        password = u.password
        plain = u.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
        return cls(plain, password)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        return env

    def connect(self, **kw) -> psycopg.Connection:
        return psycopg.connect(self.url, password=self.password, connect_timeout=10, **kw)

    @property
    def database(self) -> str:
        return make_url(self.url).database or ""


def _major(binary: Path) -> int | None:
    try:
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return None
    found = re.search(r"\) (\d+)", out)
    return int(found.group(1)) if found else None


def _candidate_dirs(settings: Settings) -> list[Path]:
    dirs: list[Path] = []
    try:
        from app.core.embedded import binaries

        dirs.append(binaries())
    except RuntimeError:
        pass
    if on_path := shutil.which("pg_dump"):
        dirs.append(Path(on_path).resolve().parent)
    dirs += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    return dirs


def find_tool(name: str, server_major: int, settings: Settings | None = None) -> Path:
    """`pg_dump` or `pg_restore` for a server of major version `server_major`: PG_BIN_DIR's if set,
    else the same major among the embedded wheel's, PATH's and /usr/lib/postgresql's; else the newest
    newer one (they read and write older servers); an older one is refused (it cannot dump a newer
    server)."""
    settings = settings or get_settings()
    if settings.pg_bin_dir:
        tool = Path(settings.pg_bin_dir) / name
        if not tool.exists():
            raise BackupError(f"PG_BIN_DIR has no {name}: {tool}")
        return tool
    found: list[tuple[int, Path]] = []
    for folder in _candidate_dirs(settings):
        tool = folder / name
        if tool.exists() and (major := _major(tool)) is not None:
            found.append((major, tool))
    for major, tool in found:
        if major == server_major:
            return tool
    newer = sorted((m, t) for m, t in found if m > server_major)
    if newer:
        return newer[-1][1]
    have = ", ".join(f"{t} ({m})" for m, t in found) or "none"
    raise BackupError(f"no {name} of PostgreSQL {server_major} or newer (found: {have}); set PG_BIN_DIR")


def server_major(conn: Connection) -> int:
    with conn.connect() as c:
        return int(c.execute("SHOW server_version_num").fetchone()[0]) // 10000


def _run(command: list[str], conn: Connection) -> str:
    done = subprocess.run(command, capture_output=True, text=True, env=conn.env(), stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise BackupError(f"{Path(command[0]).name} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done.stdout


# --- backup -------------------------------------------------------------------------------------------

@dataclass
class Backup:
    path: Path
    bytes: int
    sha256: str
    removed: list[Path] = field(default_factory=list)


def backup_dir(settings: Settings | None = None) -> Path:
    settings = settings or get_settings()
    return Path(settings.backup_dir) if settings.backup_dir else Path(settings.data_dir) / "backups"


def file_name(at: datetime) -> str:
    return f"{PREFIX}{at.astimezone(UTC):%Y%m%dT%H%M%SZ}{SUFFIX}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def backup(url: str, target: Path | None = None, *, keep: int | None = None, snapshot: str | None = None) -> Backup:
    """Dump the database at `url` into `target` (a folder: a new `jianfei-<UTC time>.dump` in it; a
    file: that file; default BACKUP_DIR). `keep`: then remove all but the newest `keep` backups of the
    folder (only files named as this writes them). `snapshot`: dump the snapshot another transaction
    exported with pg_export_snapshot() (what that transaction sees, to the row)."""
    settings = get_settings()
    conn = Connection.of(url)
    folder_given = target is None or target.is_dir() or not target.suffix  # "backups/" or "backups": a folder
    folder = (target or backup_dir(settings)) if folder_given else target.parent
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / file_name(clock.now()) if folder_given else target
    if path.exists():
        raise BackupError(f"{path} exists: a backup is never written over")
    partial = path.with_name(path.name + ".partial")
    major = server_major(conn)
    command = [str(find_tool("pg_dump", major, settings)), "--format=custom", "--no-owner", "--no-privileges",
               f"--file={partial}", f"--dbname={conn.url}"]
    if snapshot:
        command.append(f"--snapshot={snapshot}")
    try:
        _run(command, conn)
        partial.chmod(0o600)  # the dump holds password and phone hashes: its owner's only
        check_archive(partial, major)
        digest = _sha256(partial)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    Path(f"{path}.sha256").write_text(f"{digest}  {path.name}\n")
    done = Backup(path, path.stat().st_size, digest)
    if keep is not None and folder_given:
        done.removed = prune(folder, keep)
    return done


def prune(folder: Path, keep: int) -> list[Path]:
    """Remove all but the newest `keep` backups in `folder` (by the time in their names)."""
    dumps = sorted(p for p in folder.iterdir() if _NAME.match(p.name))
    old = dumps[: max(len(dumps) - keep, 0)]
    for p in old:
        p.unlink()
        Path(f"{p}.sha256").unlink(missing_ok=True)
    return old


def check_archive(path: Path, major: int) -> int:
    """The archive's table of contents, read by pg_restore --list; its entry count. A truncated or
    foreign file fails here."""
    tool = find_tool("pg_restore", major)
    done = subprocess.run([str(tool), "--list", str(path)], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise BackupError(f"{path} is not a readable pg_dump archive: {done.stderr.strip()[-500:]}")
    return sum(1 for line in done.stdout.splitlines() if line and not line.startswith(";"))


def check_checksum(path: Path) -> bool | None:
    """True when `<file>.sha256` matches the file, None when there is none; raises when it differs."""
    sidecar = Path(f"{path}.sha256")
    if not sidecar.exists():
        return None
    expected = sidecar.read_text().split()[0]
    if _sha256(path) != expected:
        raise BackupError(f"{path} does not match its checksum in {sidecar.name}: the file is damaged")
    return True


# --- restore ------------------------------------------------------------------------------------------

@dataclass
class Restore:
    entries: int
    checksum: bool | None
    revision_before: str | None
    revision_after: str | None
    cleared: bool


def tables_in(conn: Connection) -> int:
    with conn.connect() as c:
        return int(c.execute(
            "SELECT count(*) FROM pg_class k JOIN pg_namespace n ON n.oid = k.relnamespace "
            "WHERE k.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname NOT LIKE 'pg_toast%'"
        ).fetchone()[0])


def _revision(conn: Connection) -> str | None:
    with conn.connect() as c:
        if c.execute("SELECT to_regclass('public.alembic_version')").fetchone()[0] is None:
            return None
        rows = [r[0] for r in c.execute("SELECT version_num FROM alembic_version ORDER BY 1")]
    return ",".join(rows) or None


def restore(path: Path, url: str, *, force: bool = False, migrate: bool = True) -> Restore:
    """Restore the archive `path` into the database at `url`, which must hold no tables (`force`:
    its public schema is dropped first). Checks the checksum and the table of contents first; restores
    in one transaction; then migrates to head unless `migrate` is False."""
    if not path.is_file():
        raise BackupError(f"no such backup: {path}")
    conn = Connection.of(url)
    major = server_major(conn)
    checksum = check_checksum(path)
    entries = check_archive(path, major)
    cleared = False
    if tables_in(conn):
        if not force:
            raise BackupError(
                f"the database {conn.database} is not empty: restore into an empty database, "
                "or pass --force to replace everything in it"
            )
        with conn.connect(autocommit=True) as c:
            c.execute("DROP SCHEMA IF EXISTS public CASCADE")
            c.execute("CREATE SCHEMA public")
        cleared = True
    _run([str(find_tool("pg_restore", major)), "--no-owner", "--no-privileges", "--exit-on-error",
          "--single-transaction", f"--dbname={conn.url}", str(path)], conn)
    before = _revision(conn)
    if migrate:
        from app.core.migrate import upgrade

        upgrade(url)
    return Restore(entries, checksum, before, _revision(conn), cleared)
