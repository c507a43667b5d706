"""Shared set-up for benchmarks: a fresh PostgreSQL database migrated to head, and a community in it."""

from __future__ import annotations

import os
import platform
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


def record(title: str, lines: list[str]) -> None:
    """Append a dated section to bench/RESULTS.md and print it."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    block = f"\n## {title} — {stamp}\n\nMachine: {machine()}\n\n" + "\n".join(lines) + "\n"
    print(block)
    with RESULTS.open("a") as f:
        f.write(block)
