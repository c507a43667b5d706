"""How long the demo generator takes to build a street and replay its days, on PostgreSQL.

    bench/run.sh generate          # a year of a 60,000-household street (30 communities of 2,000)
    COMMUNITIES=2 DAYS=60 bench/run.sh generate      # a smaller slice

Plans the street (seed 1), builds it in a throwaway database, replays DAYS days (default 365) of
check-ins, compost, recycling days and exchange days through the services, WORKERS (default 2)
communities at a time in separate processes — exactly what `jianfei generate-demo --workers 2`
does — then runs `ledger verify`. Prints households, journal entries, check-ins per second, wall
time, CPU time (this process, its workers, and the database backends serving them) and peak memory,
BULK_LOAD=1 (the default) replays as `generate-demo --bulk-load` does (no per-row foreign-key checks),
beside the target (a year for 60,000 households well under 30 minutes), and appends them to
bench/RESULTS.md with the load average (the 2 cores are shared).
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.chdir(Path(__file__).resolve().parents[1])
os.environ.setdefault("ENVIRONMENT", "test")
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="jianfei-bench-"))
os.environ.setdefault("JWT_SECRET", "bench-secret-" + "x" * 40)
os.environ.setdefault("PHONE_HASH_KEY", "bench-phone-key")

from sqlalchemy import create_engine, text  # noqa: E402

from bench.common import drop_database, fresh_database, record  # noqa: E402

COMMUNITIES = int(os.environ.get("COMMUNITIES", "30"))
HOUSEHOLDS = int(os.environ.get("HOUSEHOLDS", "2000"))
DAYS = int(os.environ.get("DAYS", "365"))
WORKERS = int(os.environ.get("WORKERS", "2"))
BULK_LOAD = os.environ.get("BULK_LOAD", "1") == "1"  # generate-demo --bulk-load (BULK_LOAD=0: without)
TODAY = date(2026, 11, 23)  # fixed: the same seed replays the same calendar
TARGET_S = 30 * 60


class BackendCpu:
    """CPU seconds of the PostgreSQL backends serving one database (same machine), sampled from
    /proc twice a second while they live: a backend's last sample is at most 0.5 s short."""

    def __init__(self, url: str):
        self.name = url.rsplit("/", 1)[1]
        self.admin = create_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
        self.seen: dict[int, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        with self.admin.connect() as conn:
            pids = conn.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = :d"), {"d": self.name}).scalars().all()
        tick = os.sysconf("SC_CLK_TCK")
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            self.seen[pid] = (int(fields[11]) + int(fields[12])) / tick

    def _run(self) -> None:
        while not self.stop.wait(0.5):
            self._sample()

    def __enter__(self) -> BackendCpu:
        self._sample()
        self.start = dict(self.seen)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()
        self._sample()
        self.admin.dispose()

    @property
    def seconds(self) -> float:
        return sum(v - self.start.get(pid, 0.0) for pid, v in self.seen.items())


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    from sqlmodel import Session

    from app.generator.activity import replay_engine, replay_street
    from app.generator.plan import plan_street
    from app.generator.service import build_street
    from app.ledger.verify import verify

    url = fresh_database("street")
    try:
        load_before = os.getloadavg()
        engine = replay_engine(url)
        wall0, cpu0 = time.perf_counter(), cpu_seconds()
        with BackendCpu(url) as backends:
            plan = plan_street(1, COMMUNITIES, HOUSEHOLDS)
            with Session(engine, expire_on_commit=False) as session:
                built = build_street(session, plan)
            build_wall = time.perf_counter() - wall0
            engine.dispose()  # workers open their own connections
            done = [0]

            def progress(_cid: int, _summary) -> None:
                done[0] += 1
                print(f"  {done[0]}/{len(built.communities)} communities replayed, {time.perf_counter() - wall0:7.1f} s", flush=True)

            activity = replay_street(url, [(c.id, c.staff) for c in built.communities], seed=1, days=DAYS, today=TODAY,
                                     workers=WORKERS, bulk_load=BULK_LOAD, done=progress)
        wall = time.perf_counter() - wall0
        cpu = cpu_seconds() - cpu0
        load_after = os.getloadavg()
        total = {k: sum(getattr(a, k) for a in activity.values())
                 for k in ("scans", "credited", "compost_drops", "weigh_ins", "redemptions", "harvests")}
        engine = replay_engine(url)
        with Session(engine) as session:
            verify0 = time.perf_counter()
            report = verify(session, None)
            verify_s = time.perf_counter() - verify0
            entries = session.execute(text("SELECT count(*) FROM journal_entry")).scalar()
            postings = session.execute(text("SELECT count(*) FROM posting")).scalar()
            size = session.execute(text("SELECT pg_size_pretty(pg_database_size(current_database()))")).scalar()
        engine.dispose()
        peak_mb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
        households = built.households
        residents = sum(c.residents for c in built.communities)
        full = DAYS >= 365 and households >= 60_000
        verdict = ("✓" if wall < TARGET_S else "✗") if full else "(a slice: no verdict)"
        print(f"demo street, PostgreSQL: {households:,} households in {len(built.communities)} communities, {residents:,} residents; "
              f"{DAYS} days, {WORKERS} workers{', --bulk-load' if BULK_LOAD else ''}")
        print(f"  build (places, people)   {build_wall:8.1f} s")
        print(f"  build + replay (wall)    {wall:8.1f} s  target < {TARGET_S} s for a year of 60,000 households {verdict}")
        print(f"  CPU: app {cpu:.0f} s (this process and its workers) + PostgreSQL backends {backends.seconds:.0f} s")
        print(f"  {total['scans']:,} check-ins ({total['scans'] / wall:,.0f}/s of wall), {total['compost_drops']:,} compost drops, "
              f"{total['weigh_ins']:,} weigh-ins, {total['redemptions']:,} redemptions, {total['harvests']} harvests")
        print(f"  {entries:,} journal entries, {postings:,} postings ({entries / wall:,.0f} entries/s); database {size}")
        print(f"  peak RSS {peak_mb:.0f} MB (largest of this process and one worker)")
        print(f"  ledger verify: {'clean' if report.clean else 'NOT CLEAN'} ({report.accounts_checked:,} accounts, "
              f"{report.entries_checked:,} entries, {verify_s:.1f} s)")
        print(f"  load average {load_before[0]:.1f} before, {load_after[0]:.1f} after")
        record(
            "generate",
            f"Demo street generator: {households:,} households × {DAYS} days (PostgreSQL)",
            [
                f"`bench/bench_generate_street.py` COMMUNITIES={COMMUNITIES} HOUSEHOLDS={HOUSEHOLDS} DAYS={DAYS} WORKERS={WORKERS} "
                f"BULK_LOAD={int(BULK_LOAD)}: {households:,} households, {residents:,} residents; the CLI's path "
                f"(`generate-demo --workers {WORKERS}{' --bulk-load' if BULK_LOAD else ''}`).",
                "",
                "| wall (s) | target | app CPU (s) | PostgreSQL CPU (s) | check-ins | check-ins/s | journal entries | peak RSS | ledger verify |",
                "|---|---|---|---|---|---|---|---|---|",
                f"| {wall:.0f} (build {build_wall:.0f}) | < {TARGET_S} s {verdict} "
                f"| {cpu:.0f} | {backends.seconds:.0f} | {total['scans']:,} | {total['scans'] / wall:,.0f} | {entries:,} "
                f"| {peak_mb:.0f} MB | {'clean' if report.clean else 'NOT CLEAN'} |",
                "",
                f"Also {total['compost_drops']:,} compost drops, {total['weigh_ins']:,} weigh-ins, {total['redemptions']:,} redemptions, "
                f"{total['harvests']} harvests; {postings:,} postings; database {size}. Load average {load_before[0]:.1f} before, "
                f"{load_after[0]:.1f} after (the 2 cores are shared with other engineers' work).",
            ],
            f"{households:,} households × {DAYS} days in {wall:.0f} s ({total['scans'] / wall:,.0f} check-ins/s), "
            f"app {cpu:.0f} + PostgreSQL {backends.seconds:.0f} CPU-s; ledger verify {'clean' if report.clean else 'NOT CLEAN'}",
        )
    finally:
        drop_database(url)


if __name__ == "__main__":
    main()
