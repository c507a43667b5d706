"""Shared set-up for benchmarks: a fresh PostgreSQL database migrated to head, and a community in it."""

from __future__ import annotations

import os
import platform
import re
import statistics
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, text

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def fresh_database(tag: str) -> str:
    base = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    base = base.replace("postgresql://", "postgresql+psycopg://", 1)
    name = f"bench_{tag}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = base.rsplit("/", 1)[0] + "/" + name
    from app.core.migrate import upgrade

    upgrade(url)
    return url


def drop_database(url: str) -> None:
    base, name = url.rsplit("/", 1)
    admin = create_engine(base + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def timed(fn, n: int) -> dict[str, float]:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return {"p50": statistics.median(samples), "p99": samples[int(len(samples) * 0.99) - 1], "mean": statistics.fmean(samples)}


def machine() -> str:
    return f"{platform.node()} · {os.cpu_count()} cores · Python {platform.python_version()}"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} × {os.cpu_count()}"
    except OSError:
        pass
    return f"{os.cpu_count()} cores"


# bench/RESULTS.md: the latest run of each benchmark (a section each, in the order of bench/run.sh), then
# the history table, one line a run.
LATEST, HISTORY = "## Latest run of each benchmark", "## History"
ORDER = ("ingest", "batch", "passbook", "roster", "rates", "redemption", "export", "generate", "backup")


def record(name: str, title: str, lines: list[str], headline: str) -> None:
    """Print a run, make it the latest of benchmark `name` in bench/RESULTS.md and add its history line."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    block = f"### {title} — {stamp} UTC\n\nMachine: {machine()}\n\n" + "\n".join(lines) + "\n"
    print(block)
    row = f"| {stamp} | {name} | {headline.replace('|', '/')} | {cpu_model()}, load {os.getloadavg()[0]:.1f} |"
    RESULTS.write_text(recorded(RESULTS.read_text(), name, block, row))


def recorded(text: str, name: str, block: str, row: str) -> str:
    """The file `text` with `block` as the latest run of `name` and `row` at the end of the history."""
    head, rest = text.split(LATEST + "\n", 1)
    latest, history = rest.split(HISTORY + "\n", 1)
    sections = dict(re.findall(r"<!-- bench:(\w+) -->\n(.*?)(?=<!-- bench:|\Z)", latest, re.S))
    sections[name] = block
    order = [n for n in ORDER if n in sections] + sorted(n for n in sections if n not in ORDER)
    latest = "\n".join(f"<!-- bench:{n} -->\n{sections[n].strip()}\n" for n in order)
    return f"{head}{LATEST}\n\n{latest}\n{HISTORY}\n{history.rstrip()}\n{row}\n"
