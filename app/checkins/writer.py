"""The bin-side scans of one process, written together: concurrent scans share one statement.

At the morning and evening rush a process holds a dozen scans at once, each waiting for PostgreSQL.
Written one statement each, every scan paid for its own round trip, transaction, commit (a WAL flush)
and statement start-up, on the database and in the driver — about half of the CPU a check-in cost
(bench/RESULTS.md). Here a scan that arrives while the process already has `checkin_statements` (a setting, 1) statements
running waits for the next one, which takes every scan waiting then (up to `MAX_ROWS`): under load
the scans coalesce, alone a scan goes at once, and no scan waits on a timer.

Each scan is still answered only after the transaction holding it committed, and gets exactly the
outcome it would have had alone (the statement is app.checkins.scan's, the one that decides every
scan), because a statement never holds two scans of one household or two scans with one client id (a
scan that would be the second waits for the next statement), and a statement that cannot write every
one of its scans (a slot taken or a client id written meanwhile by a concurrent statement, a deadlock,
a lock held past the pool's lock_timeout) leaves nothing: its scans are then written one by one,
patiently (`write_patiently`, which offline uploads use too).

One writer per event loop (each app worker process has its own).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import psycopg
from prometheus_client import Histogram
from psycopg import errors

from app.checkins import scan
from app.checkins.scan import Row
from app.core.config import get_settings
from app.core.db import async_connection, connection_failed
from app.kit.errors import Conflict
from app.kit.observability import REGISTRY

MAX_ROWS = 64  # scans per statement
SCANS = Histogram(
    "checkin_statement_scans", "Bin-side scans written per statement", registry=REGISTRY,
    buckets=(1, 2, 4, 8, 16, 32, 64, 256, 1000),
)


async def _execute(plans: Sequence[dict[str, Any]], patient: bool = False) -> list[Row] | None:
    """The rows of the plans' check-ins (scan.SQL), in the plans' order; None when the statement wrote
    nothing: it lost a race, or waited on a row past the hot pool's lock_timeout (patient: waits up to
    30 s instead, in a transaction of its own), or one of several scans failed by itself."""
    async with async_connection() as conn:
        SCANS.observe(len(plans))
        cur = psycopg.AsyncRawCursor(conn)
        try:
            if patient:
                async with conn.transaction():
                    await conn.execute("SET LOCAL lock_timeout = '30s'")
                    await cur.execute(scan.RAW_SQL, scan.raw_parameters(plans))
            else:
                await cur.execute(scan.RAW_SQL, scan.raw_parameters(plans))
            rows = await cur.fetchall()
        except errors.DivisionByZero:
            return None  # a concurrent statement wrote a client id or took a slot after this snapshot
        except (errors.DeadlockDetected, errors.SerializationFailure, errors.LockNotAvailable):
            # Two scans of one household at the same instant, or a row held by a longer write (an
            # upload, a reversal) past the pool's lock_timeout: run again, patiently.
            return None
        except psycopg.DatabaseError as exc:
            if len(plans) > 1 and not connection_failed(exc):
                return None  # one scan's own problem: alone, it fails by itself
            raise  # a lost connection is every scan's: async_connection answers it (503)
    return [tuple(r[1:]) for r in rows]  # type: ignore[misc]


async def write_patiently(plans: Sequence[dict[str, Any]]) -> list[Row]:
    """Scans written in statements of their own (an offline upload; a coalesced statement's scans after
    it failed), composed by `scan.statements`, each run again while it loses races; rows in the plans'
    order."""
    out: list[Row | None] = [None] * len(plans)
    for statement in scan.statements(plans):
        for _ in range(scan.ATTEMPTS):
            rows = await _execute([plans[i] for i in statement], patient=True)
            if rows is not None:
                break
        else:
            raise Conflict("scan_conflict", "扫码记录冲突，请重试", "Scan conflicts with another one, retry")
        for i, row in zip(statement, rows, strict=True):
            out[i] = row
    return out  # type: ignore[return-value]


class Writer:
    """Coalesces the scans of one event loop into statements (see the module's docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop  # held, so that its id is not reused by another loop while this writer lives
        self.waiting: list[tuple[dict[str, Any], asyncio.Future]] = []
        self.running = 0
        self.inflight = get_settings().checkin_statements
        self.tasks: set[asyncio.Task] = set()

    async def write(self, plan: dict[str, Any]) -> Row:
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((plan, future))
        if self.running < self.inflight:
            self._start()
        return await future

    def _take(self) -> list[tuple[dict[str, Any], asyncio.Future]]:
        """The next statement's scans: the oldest waiting first, at most one per household code and
        per client id, all that earn under the daily cap of the first that earns; the others keep their
        place in the queue."""
        taken, left, seen = [], [], set()
        cap = next((plan["cap"] for plan, _ in self.waiting if plan["points"] > 0), None)
        for item in self.waiting:
            if item[1].done():
                continue  # its client went away: nothing waits for the answer (a re-send is a replay)
            plan = item[0]
            keys = (("code", plan["community_id"], plan["code"]), ("client", plan["community_id"], plan["client_id"]))
            if len(taken) < MAX_ROWS and seen.isdisjoint(keys) and (plan["points"] <= 0 or plan["cap"] == cap):
                taken.append(item)
                seen.update(keys)
            else:
                left.append(item)
        self.waiting = left
        return taken

    def _start(self) -> None:
        batch = self._take()
        if batch:
            self.running += 1
            task = asyncio.ensure_future(self._run(batch))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _run(self, batch: list[tuple[dict[str, Any], asyncio.Future]]) -> None:
        try:
            rows = await _execute([plan for plan, _ in batch])
        except BaseException as exc:  # the connection failed: every scan of the statement hears it
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        finally:
            # The next statement starts now, before any scan of this one is written alone below.
            self.running -= 1
            while self.waiting and self.running < self.inflight:
                self._start()
        if rows is not None:
            for (_, future), row in zip(batch, rows, strict=True):
                if not future.done():
                    future.set_result(row)
            return
        await asyncio.gather(*(_alone(plan, future) for plan, future in batch))


async def _alone(plan: dict[str, Any], future: asyncio.Future) -> None:
    """One scan of a statement that could not write them all, in statements of its own (on a pool
    connection of its own, beside the writer's), answered as soon as it is written."""
    try:
        rows = await write_patiently([plan])
    except Exception as exc:
        if not future.done():
            future.set_exception(exc)
        return
    if not future.done():
        future.set_result(rows[0])


_writers: dict[int, Writer] = {}


async def write(plan: dict[str, Any]) -> Row:
    """Write one planned scan (scan.plan) with whatever other scans this process writes now: its row."""
    loop = asyncio.get_running_loop()
    writer = _writers.get(id(loop))
    if writer is None or writer.loop is not loop:
        writer = _writers[id(loop)] = Writer(loop)
    return await writer.write(plan)


def forget_loop() -> None:
    """Drop the running loop's writer (app shutdown, with the loop's connection pools)."""
    _writers.pop(id(asyncio.get_running_loop()), None)

