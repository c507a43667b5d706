"""Ingest benchmark: the service against the plainest SQL check-in, same PostgreSQL, same run, same concurrency.

    bench/run.sh                 # or: .venv/bin/python -m bench.checkin [--smoke] [--seconds 20] [--profile]

1. A fresh database, migrated; one community with many households and a committee member's token.
2. The server started exactly as the container starts it (scripts/docker-entrypoint.sh: migrate, then
   granian with WEB_CONCURRENCY workers, production settings).
3. wrk (a separate, nearly CPU-free load generator) with 32 connections POSTs to the ingest endpoint,
   each request a distinct household and a fresh idempotency key / client id (bench/checkin.lua).
   The endpoint is the check-in route when the app has one, else a ledger adjustment (the same
   writes: a journal entry, two postings, a household balance).
4. pgbench runs the yardstick (../shared/bench/reference-checkin/checkin.sql, beside the repository) against the same server
   with 32 clients, in its own database.
5. On demand (`--profile`, or PROFILE=1 in the environment), py-spy samples the workers during a second,
   shorter wrk run and bench/profiles/ (not in git) gets the collapsed stacks and a summary of where the
   time goes.
Prints tps, p50/p99 and the ratio, and appends them to bench/RESULTS.md. The p99 is read two ways
for both sides: per request (each request's own latency, from the Lua script for wrk and from
pgbench's log) and with wrk's correction for coordinated omission (what wrk prints; applied to
pgbench's log here). A probe times a disk flush every 50 ms beside PostgreSQL's data during both
runs: the corrected p99 follows the disk's flush stalls, which hold every commit.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SECRET = "bench-secret-" + "x" * 40
os.environ.setdefault("ENVIRONMENT", "test")
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="jianfei-bench-"))
os.environ.setdefault("JWT_SECRET", SECRET)
os.environ.setdefault("PHONE_HASH_KEY", "bench-phone-key")
os.environ.setdefault("LOG_LEVEL", "WARNING")
# The scheduled jobs (a backup's pg_dump, reminders, roll-ups) would share the two cores with the run.
os.environ.setdefault("JOBS_IN_SERVICE", "false")

from sqlalchemy import create_engine, insert, text  # noqa: E402
from sqlmodel import Session, select  # noqa: E402

from bench.common import cpu_model, drop_database, fresh_database, record  # noqa: E402

# The yardstick lives beside the repository (../shared/bench/reference-checkin), not at a machine path.
REFERENCE = Path(os.environ.get("BENCH_REFERENCE", ROOT.parent / "shared" / "bench" / "reference-checkin"))
PROFILES = ROOT / "bench" / "profiles"
TARGET_TPS, TARGET_P99_MS, TARGET_RATIO = 1500, 50, 0.5


# --- parsing tool output (tested in tests/bench/test_bench_harness.py) ----------------------------

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", value.strip())
    if not m:
        raise ValueError(value)
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(output: str) -> dict[str, float]:
    """Requests/sec, p50/p99 (--latency), total requests and non-2xx answers from wrk's report."""
    tps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))
    total = int(re.search(r"(\d+) requests in", output).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return {
        "tps": tps,
        "p50_ms": p50,
        "p99_ms": p99,
        "requests": total,
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0,
    }


def percentile(ordered: list, q: float):
    """The q-quantile of sorted values (nearest rank, as parse_pgbench always read it)."""
    return ordered[max(0, int(len(ordered) * q) - 1)] if ordered else float("nan")


def co_corrected(latencies: list[int], interval: int) -> list[int]:
    """Latencies with wrk 4's correction for coordinated omission (its stats_correct): a closed-loop
    client that waited n for an answer did not send the requests it would have sent meanwhile, so
    every n of at least twice the interval (the run's time per request per connection) also counts
    n - interval, n - 2 x interval, ... down to the interval. wrk's printed percentiles are these;
    pgbench's log and the per-request figures are not corrected."""
    out = list(latencies)
    for n in latencies:
        m = n - interval
        while n >= 2 * interval and m > interval:
            out.append(m)
            m -= interval
    return sorted(out)


def latency_figures(latencies_us: list[int], seconds: float, connections: int) -> dict[str, float]:
    """p50/p99 per request and p99 with wrk's correction (ms) from raw latencies in µs."""
    ordered = sorted(latencies_us)
    interval = int(seconds * 1e6 / max(len(ordered) / connections, 1))
    return {"p50_ms": percentile(ordered, 0.5) / 1000, "p99_ms": percentile(ordered, 0.99) / 1000,
            "p99_co_ms": percentile(co_corrected(ordered, interval), 0.99) / 1000}


def parse_pgbench(output: str, log_lines: list[str]) -> dict[str, float]:
    """tps from pgbench's report; p50/p99 from its per-transaction log (-l: latency in µs is field 3),
    and the p99 with wrk's correction (p99_co_ms), so that both sides are read both ways."""
    tps = float(re.search(r"tps = ([\d.]+)", output).group(1))
    latencies = sorted(int(line.split()[2]) for line in log_lines if line.strip())
    p50 = latencies[len(latencies) // 2] / 1000 if latencies else float("nan")
    failed = re.search(r"number of failed transactions: (\d+)", output)
    seconds = float(re.search(r"duration: (\d+) s", output).group(1))
    clients = int(re.search(r"number of clients: (\d+)", output).group(1))
    return {"tps": tps, "p50_ms": p50, "p99_ms": percentile(latencies, 0.99) / 1000,
            "p99_co_ms": latency_figures(latencies, seconds, clients)["p99_co_ms"] if latencies else float("nan"),
            "requests": len(latencies), "failed": int(failed.group(1)) if failed else 0}


def summarise_profile(collapsed: list[str], top: int = 25) -> dict[str, list[tuple[str, float]]]:
    """Where the busy samples go, from py-spy's collapsed ("raw") stacks.

    "app": our functions by inclusive share; "self": the frames that were on CPU (leaf), grouped by
    function; "package": the leaf share by top-level package (sqlalchemy, pydantic, psycopg...).
    """
    inclusive: collections.Counter[str] = collections.Counter()
    leaf: collections.Counter[str] = collections.Counter()
    package: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed:
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_frame(f) for f in stack.split(";") if not f.startswith(("process ", " "))]
        if not frames:
            continue
        total += n
        for frame in set(frames):
            if "(app/" in frame:
                inclusive[frame] += n
        leaf[frames[-1]] += n
        package[_package(frames[-1])] += n
    if not total:
        return {"app": [], "self": [], "package": []}

    def share(counter: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(f, 100 * c / total) for f, c in counter.most_common(top)]

    return {"app": share(inclusive), "self": share(leaf), "package": share(package)}


def _package(frame: str) -> str:
    m = re.search(r"\((.*?)\)$", frame)
    path = m.group(1) if m else frame
    return path.split("/", 1)[0] if "/" in path else path


def _frame(frame: str) -> str:
    # "function (path/to/file.py:123)" → "function (file.py)" ; site-packages shortened to the package
    m = re.match(r"(.*?) \((.*?)(?::\d+)?\)$", frame)
    if not m:
        return frame
    func, path = m.groups()
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    elif "/app/" in path:
        path = "app/" + path.split("/app/", 1)[1]
    return f"{func} ({path})"


# --- set-up --------------------------------------------------------------------------------------

def seed(url: str, households: int) -> dict:
    """One community, `households` households over 100 buildings, a committee member and a volunteer."""
    from app.core.db import make_engine
    from app.identity.models import Role, RoleGrant, User
    from app.identity.service import issue_tokens
    from app.places.models import Building, Community, Compound, Household, Street
    from app.places.service import qr_payload

    engine = make_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with Session(engine, expire_on_commit=False) as s:
        street = Street(city="苏州市", district="昆山市", name=f"压测街道-{uuid.uuid4().hex[:6]}")
        s.add(street)
        s.flush()
        community = Community(name="压测社区", street_id=street.id)
        s.add(community)
        s.flush()
        compound = Compound(name="一期", community_id=community.id)
        s.add(compound)
        s.flush()
        buildings = [Building(name=f"{b}号楼", compound_id=compound.id, community_id=community.id) for b in range(1, 101)]
        s.add_all(buildings)
        s.flush()
        rows = [
            {
                "community_id": community.id,
                "building_id": buildings[i % 100].id,
                "unit": "1",
                "door_plate": str(1000 + i // 100),
                "members": 3,
                "status": "active",
                "public_code": f"BN{i:08d}",
                "created_at": datetime.now(UTC),
                "updated_at": datetime.now(UTC),
            }
            for i in range(households)
        ]
        s.execute(insert(Household.__table__), rows)
        tokens = {}
        for role in (Role.committee, Role.volunteer):
            user = User(username=f"bench-{role.value}-{uuid.uuid4().hex[:6]}", display_name=role.value)
            s.add(user)
            s.flush()
            s.add(RoleGrant(user_id=user.id, role=role, community_id=community.id))
            s.commit()
            tokens[role.value] = issue_tokens(s, user).access_token
        s.commit()
        ids = [h for (h,) in s.execute(text("select id from household where community_id = :c order by id"), {"c": community.id})]
        payloads = {h.id: qr_payload(h) for h in s.exec(select(Household).where(Household.community_id == community.id))}
    engine.dispose()
    return {"community_id": community.id, "household_ids": ids, "payloads": payloads, "tokens": tokens}


def ingest_target(world: dict, url: str, out: Path) -> tuple[str, str]:
    """Writes the wrk request file; returns (name of the endpoint measured, token to use)."""
    from app.main import app

    paths = app.openapi()["paths"]
    c = world["community_id"]
    lines = []
    if "/api/v1/communities/{community_id}/checkins" in paths:
        from fastapi.testclient import TestClient

        from app.core.db import make_engine, set_engine
        from bench.checkin_body import checkin_body, prepare

        engine = make_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        set_engine(engine)
        with TestClient(app) as client:
            shared = prepare(client, world)
        set_engine(None)
        engine.dispose()
        for h in world["household_ids"]:
            lines.append(f"/api/v1/communities/{c}/checkins\t{json.dumps(checkin_body(world, shared, h), ensure_ascii=False)}")
        name, token = "POST /api/v1/communities/{id}/checkins", world["tokens"]["volunteer"]
    else:
        for h in world["household_ids"]:
            body = {"points": 10, "reason": "压测", "idempotency_key": "{KEY}"}
            lines.append(f"/api/v1/households/{h}/adjustments\t{json.dumps(body, ensure_ascii=False)}")
        name, token = "POST /api/v1/households/{id}/adjustments (stand-in until check-ins land)", world["tokens"]["committee"]
    out.write_text("\n".join(lines) + "\n")
    return name, token


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def group_pids(pgid: int) -> list[int]:
    """The server's processes: the server's master and workers share the process group the harness gave them."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2]) == pgid:
                    pids.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return pids


def backend_pids(url: str) -> list[int]:
    """PostgreSQL backends connected to the benchmark database (the workers' pooled connections)."""
    out = subprocess.run(["psql", "-XtA", "-d", url, "-c",
                          "select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()"],
                         capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


class FlushProbe:
    """Times an 8 KiB write and fdatasync every 50 ms on the disk that holds PostgreSQL's data, when it
    is on this machine. Every commit waits for such a flush of the WAL: a stall here holds up every
    transaction committing meanwhile, the service's and the yardstick's alike."""

    def __init__(self, url: str, every: float = 0.05):
        out = subprocess.run(["psql", "-XtA", "-d", url, "-c", "show data_directory"], capture_output=True, text=True).stdout
        data = Path(out.strip()) if out.strip() else None
        self.path = data.parent / f"bench-flush-probe-{os.getpid()}" if data and data.is_dir() and os.access(data.parent, os.W_OK) else None
        self.every, self.times, self._stop = every, [], threading.Event()

    def _run(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            block, n = b"\0" * 8192, 0
            while not self._stop.wait(self.every):
                start = time.perf_counter()
                os.pwrite(fd, block, (n % 64) * 8192)
                os.fdatasync(fd)
                self.times.append(time.perf_counter() - start)
                n += 1
        finally:
            os.close(fd)
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> FlushProbe:
        self.times.clear()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True) if self.path else None
        if self._thread:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def summary(self) -> str:
        if not self.path:
            return "not measured (PostgreSQL's data directory is not on this machine)"
        slow = [t for t in self.times if t > 0.05]
        return (f"{len(slow)} of {len(self.times)} over 50 ms, worst {max(self.times, default=0) * 1000:.0f} ms, "
                f"median {sorted(self.times)[len(self.times) // 2] * 1000 if self.times else 0:.1f} ms")


def cpu_delta(before: dict[int, float]) -> float:
    """CPU seconds used since `before` by the processes still alive (a pooled connection may have closed)."""
    total = 0.0
    for pid, then in before.items():
        now = _cpu_seconds(pid)
        if now >= then:
            total += now - then
    return total


def _entries_written(url: str) -> int:
    """Journal entries in the database: each first-time check-in (or adjustment) writes exactly one."""
    out = subprocess.run(["psql", "-XtA", "-d", url, "-c", "select count(*) from journal_entry"], capture_output=True, text=True)
    return int(out.stdout.strip() or 0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(url: str, port: int, workers: int, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "ENVIRONMENT": "production",
        "SEED_DEMO": "false",
        # The scheduled jobs are all due at a fresh start (expiry over every household, the roll-up):
        # they would run inside the measured seconds, which a serving day sees once a night.
        "JOBS_IN_SERVICE": "false",
        # Not the fake WeChat server's defaults (production refuses them); never called here.
        "WECHAT_APP_ID": "wx-bench", "WECHAT_APP_SECRET": "bench-secret", "WECHAT_API_BASE": "https://api.weixin.qq.com",
        "JWT_SECRET": SECRET,
        "PHONE_HASH_KEY": "bench-phone-key",
        "PORT": str(port),
        "WEB_CONCURRENCY": str(workers),
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(ROOT),  # as the image sets it: this checkout's code, whatever is installed
    }
    env.pop("LOG_LEVEL", None)  # as in the container: request logs on
    proc = subprocess.Popen(
        ["sh", str(ROOT / "scripts" / "docker-entrypoint.sh")],
        cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.3)
        if proc.poll() is not None:
            break
    stop_server(proc)
    raise SystemExit(f"server did not become ready; see {log}")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


_sent = 0  # requests sent by earlier wrk runs: the next run starts on households they did not touch


def run_wrk(port: int, seconds: int, requests_file: Path, token: str, run: str, connections: int = 32, threads: int = 2,
            latencies: Path | None = None) -> str:
    """wrk's report; with `latencies`, each request's own latency (µs) is written there (bench/checkin.lua)."""
    global _sent
    env = {**os.environ, "BENCH_TOKEN": token, "BENCH_REQUESTS": str(requests_file), "BENCH_RUN": run,
           # Past every household an earlier run could have reached: its threads need not have sent the same
           # number of requests, and the ones in flight when it stopped are not counted.
           "BENCH_OFFSET": str(_sent + connections + 1 if _sent else 0)}
    if latencies is not None:
        env["BENCH_LATENCIES"] = str(latencies)
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency", "--timeout", "10s",
           "-s", str(ROOT / "bench" / "checkin.lua"), f"http://127.0.0.1:{port}"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    m = re.search(r"(\d+) requests in", out)
    _sent += int(m.group(1)) if m else 0
    return out


def run_pgbench(base_url: str, seconds: int, clients: int = 32) -> tuple[str, list[str]]:
    """Loads the yardstick schema into its own database and runs its script; returns (report, log lines)."""
    admin = create_engine(base_url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT")
    name = f"refbench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    ref_url = base_url.rsplit("/", 1)[0] + "/" + name
    try:
        subprocess.run(["psql", "-q", "-X", "-v", "ON_ERROR_STOP=1", "-d", ref_url, "-f", str(REFERENCE / "schema.sql")],
                       check=True, capture_output=True)
        logdir = Path(tempfile.mkdtemp(prefix="pgbench-"))
        out = subprocess.run(
            ["pgbench", "-n", "-M", "prepared", "-c", str(clients), "-j", "2", "-T", str(seconds), "-l",
             "--log-prefix", str(logdir / "tx"), "-f", str(REFERENCE / "checkin.sql"), ref_url],
            check=True, capture_output=True, text=True, cwd=logdir,
        ).stdout
        lines = [line for f in glob.glob(str(logdir / "tx*")) for line in Path(f).read_text().splitlines()]
        shutil.rmtree(logdir, ignore_errors=True)
        return out, lines
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def profile(server: subprocess.Popen, port: int, seconds: int, requests_file: Path, token: str, run: str, stamp: str) -> Path | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists() and not shutil.which("py-spy"):
        print("py-spy not installed (pip install py-spy): no profile")
        return None
    PROFILES.mkdir(exist_ok=True)
    raw = PROFILES / f"checkin-{stamp}.collapsed.txt"
    # The server's master is the entry script's exec'd process; --subprocesses follows its workers.
    # --gil: only the thread holding the GIL is sampled, i.e. where the Python CPU goes (not threads waiting on I/O).
    spy_proc = subprocess.Popen([spy, "record", "--pid", str(server.pid), "--subprocesses", "--gil", "--rate", "250",
                                 "--duration", str(seconds), "--format", "raw", "--output", str(raw), "--nonblocking"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1)
    run_wrk(port, seconds - 1, requests_file, token, run + "p")
    _, err = spy_proc.communicate(timeout=60)
    if not raw.exists():
        print("py-spy failed:", err.decode()[-300:])
        return None
    tables = summarise_profile(raw.read_text().splitlines())
    summary = PROFILES / f"checkin-{stamp}.md"
    lines = [f"# Where the time goes in the ingest path ({stamp})", "",
             f"py-spy --gil ({seconds} s, 250 Hz) over all server workers under the same wrk load: shares of the samples in which",
             "a thread held the GIL, i.e. of the Python CPU time.", ""]
    for title, key in (("Our code, inclusive", "app"), ("On CPU (leaf frames)", "self"), ("On CPU by package", "package")):
        lines += [f"## {title}", "", "| frame | % |", "|---|---|"]
        lines += [f"| `{f}` | {pct:.1f} |" for f, pct in tables[key]]
        lines.append("")
    summary.write_text("\n".join(lines))
    return summary


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--households", type=int, default=200_000, help="more than the run sends: every request a first check-in")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "2")))
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--profile", action="store_true", default=os.environ.get("PROFILE") == "1",
                        help="sample the workers with py-spy into bench/profiles/ (also PROFILE=1)")
    parser.add_argument("--smoke", action="store_true", help="seconds-long run that records nothing (checks the harness)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.households, args.profile = 2, 50_000, False
    base = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    base = base.replace("postgresql+psycopg://", "postgresql://", 1)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    run = uuid.uuid4().hex[:8]
    load_before = os.getloadavg()[0]
    url = fresh_database("ingest").replace("postgresql+psycopg://", "postgresql://", 1)
    work = Path(tempfile.mkdtemp(prefix="ingest-"))
    probe = FlushProbe(base)
    server = None
    try:
        world = seed(url, args.households)
        requests_file = work / "requests.tsv"
        endpoint, token = ingest_target(world, url, requests_file)
        port = free_port()
        server = start_server(url, port, args.workers, work / "server.log")
        warm = parse_wrk(run_wrk(port, max(1, args.seconds // 5), requests_file, token, run + "w"))  # warm-up
        # A serving database has history and statistics; this one was seeded a moment ago, and its check-in
        # table was empty when the workers prepared their plans (generic, kept until statistics change). The
        # autovacuum's first ANALYZE comes within a minute of serving; here it comes after the warm-up.
        subprocess.run(["psql", "-XtA", "-d", url, "-c", "ANALYZE"], check=True, capture_output=True)
        again = parse_wrk(run_wrk(port, 2, requests_file, token, run + "a"))  # the workers' plans made again on the statistics
        app_pids, db_pids = group_pids(server.pid), backend_pids(url)
        app_cpu, db_cpu = {p: _cpu_seconds(p) for p in app_pids}, {p: _cpu_seconds(p) for p in db_pids}
        raw = work / "latencies.txt"
        with probe:
            service = parse_wrk(run_wrk(port, args.seconds, requests_file, token, run, connections=args.connections, latencies=raw))
        service["flushes"] = probe.summary()
        # wrk prints percentiles with its correction; the table reads both sides both ways.
        measured = [int(x) for x in raw.read_text().split()]
        # The script times the answers it can match to their request by the client id they echo (an
        # error answer echoes none: wrk counts it among the non-2xx); a per-request p99 read from a
        # small part of the answers would mislead.
        if len(measured) < 0.95 * service["requests"]:
            raise SystemExit(f"only {len(measured)} of {service['requests']} answers had their latency recorded")
        figures = latency_figures(measured, args.seconds, args.connections)
        service["p99_co_ms"] = service["p99_ms"]
        service["p99_co_check_ms"] = figures["p99_co_ms"]
        service.update({k: v for k, v in figures.items() if k != "p99_co_ms"})
        service["measured"] = len(measured)
        done = max(service["requests"], 1)
        # New backends opened during the run are missed (their CPU is small next to the pooled ones').
        service["app_cpu_ms"] = cpu_delta(app_cpu) * 1000 / done
        service["db_cpu_ms"] = cpu_delta(db_cpu) * 1000 / done
        written = _entries_written(url)
        # The case users live at the bin: every measured request a household's first check-in of the
        # window. The request file walks the households once; a run that wrapped round would measure
        # duplicates (no journal entry, no balance) and is refused, as is one whose entries do not
        # match its first-time answers (requests still in flight when wrk stopped may add a few).
        answered = _sent - warm["non_2xx"] - again["non_2xx"] - service["non_2xx"]
        # The measured run's counters reach its offset plus what each thread sent; an index is about twice that.
        if 2 * (_sent + 3 * (args.connections + 1)) > args.households:
            raise SystemExit(f"{_sent} requests for {args.households} households: some may be re-scans; raise --households")
        if not answered <= written <= answered + 3 * args.connections:  # three runs, each may leave its connections in flight
            raise SystemExit(f"journal entries written {written} ≠ first-time answers {answered}")
        summary = profile(server, port, 10, requests_file, token, run, stamp) if args.profile else None
        stop_server(server)
        server = None
        with probe:
            reference = parse_pgbench(*run_pgbench(base, args.seconds, clients=args.connections))
        reference["flushes"] = probe.summary()
    finally:
        if server is not None:
            stop_server(server)
        drop_database(url.replace("postgresql://", "postgresql+psycopg://", 1))
    ratio = service["tps"] / reference["tps"] if reference["tps"] else float("nan")
    figures = {"endpoint": endpoint, "service": service, "reference": reference, "ratio": ratio}
    pg = subprocess.run(["psql", "-XtA", "-d", base, "-c", "show server_version"], capture_output=True, text=True).stdout.strip()
    cpu = cpu_model()

    def ok(good: bool) -> str:
        return "✓" if good else "✗"

    lines = [
        f"Endpoint: `{endpoint}`; {args.connections} connections from wrk (2 threads), {args.seconds} s; "
        f"server: scripts/docker-entrypoint.sh, {args.workers} workers; PostgreSQL {pg}; CPU: {cpu}; "
        f"load average before the run {load_before:.1f} (other work on the machine competes for the same cores).",
        "",
        "| | tps | p50 (ms) | p99 per request (ms) | p99 with wrk's correction (ms) | requests | errors | disk flushes during the run |",
        "|---|---|---|---|---|---|---|---|",
        f"| service | {service['tps']:.0f} | {service['p50_ms']:.1f} | {service['p99_ms']:.1f} | {service['p99_co_ms']:.1f} | "
        f"{service['requests']} | {service['non_2xx'] + service['socket_errors']} | {service['flushes']} |",
        f"| yardstick (pgbench, `-M prepared`) | {reference['tps']:.0f} | {reference['p50_ms']:.1f} | {reference['p99_ms']:.1f} | "
        f"{reference['p99_co_ms']:.1f} | {reference['requests']} | {reference['failed']} | {reference['flushes']} |",
        "",
        f"p99 per request: each request's own latency (wrk's clock, {service['measured']} answers), as pgbench's log gives the "
        f"yardstick's. wrk's printed p99 adds its correction for coordinated omission (an answer that took n also counts "
        f"n − i, n − 2i, … down to i, the run's time per request per connection), which turns each stall of every "
        f"connection (a slow disk flush holds every commit) into hundreds of samples; the same correction applied to the "
        f"per-request latencies gives {service['p99_co_check_ms']:.1f} ms here, and to pgbench's gives its column.",
        "",
        f"Journal entries written by the warm-up and measured runs: {written}, for {answered} answers, every one a "
        f"household's first check-in of the window ({args.households} households; checked: a duplicate or replay writes none).",
        f"CPU per request: {service['app_cpu_ms']:.2f} ms in the app workers + {service['db_cpu_ms']:.2f} ms in PostgreSQL "
        f"backends (independent of contention: on {os.cpu_count()} dedicated cores this bounds the service at about "
        f"{os.cpu_count() * 1000 / max(service['app_cpu_ms'] + service['db_cpu_ms'], 0.001):.0f}/s).",
        "",
        f"Ratio service/yardstick: **{ratio:.0%}** (target ≥ {TARGET_RATIO:.0%} {ok(ratio >= TARGET_RATIO)}); "
        f"service {service['tps']:.0f}/s (target ≥ {TARGET_TPS} {ok(service['tps'] >= TARGET_TPS)}), "
        f"p99 per request {service['p99_ms']:.1f} ms (target < {TARGET_P99_MS} {ok(service['p99_ms'] < TARGET_P99_MS)}), "
        f"with wrk's correction {service['p99_co_ms']:.1f} ms ({ok(service['p99_co_ms'] < TARGET_P99_MS)}; "
        f"the yardstick's {reference['p99_co_ms']:.1f} ms {ok(reference['p99_co_ms'] < TARGET_P99_MS)}).",
    ]
    if summary:
        lines.append(f"Profile: `{summary.relative_to(ROOT)}` (collapsed stacks beside it; kept on this machine, not in git).")
    if args.smoke:
        print("\n".join(lines))
    else:
        record("ingest", "Check-in ingest vs the SQL yardstick (PostgreSQL, wrk + pgbench)", lines,
               f"{service['tps']:.0f}/s, {ratio:.0%} of the yardstick ({reference['tps']:.0f}/s), p99 {service['p99_ms']:.1f} ms "
               f"({service['p99_co_ms']:.1f} ms with wrk's correction); CPU per check-in app {service['app_cpu_ms']:.2f} + "
               f"PostgreSQL {service['db_cpu_ms']:.2f} ms")
    return figures


if __name__ == "__main__":
    main()
