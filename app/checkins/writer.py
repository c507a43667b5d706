"""The bin-side scans of one process, written together: concurrent scans share one statement.

At the morning and evening rush a process holds a dozen scans at once, each waiting for PostgreSQL.
Written one statement each, every scan paid for its own round trip, transaction, commit (a WAL flush)
and statement start-up, on the database and in the driver — about half of the CPU a check-in cost
(bench/RESULTS.md). Here a scan that arrives while the process already has `checkin_statements` (a setting, 1) statements
running waits for the next one, which takes every scan waiting then (up to `MAX_ROWS`): under load
the scans coalesce, alone a scan goes at once, and no scan waits on a timer.

Each scan is still answered only after the transaction holding it committed, and gets exactly the
outcome it would have had alone, because a statement never holds two scans of one household or two
scans with one client id (a scan that would be the second waits for the next statement), and a
statement that cannot write every one of its scans (a replay, an unknown household, a slot credited
meanwhile by a concurrent scan, a deadlock) leaves nothing: its scans are then written one by one,
and a scan that still cannot be written goes to the general path (None).

PostgreSQL only. One writer per event loop (each app worker process has its own).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import psycopg
from prometheus_client import Histogram
from psycopg import errors

from app.core.config import get_settings
from app.core.db import async_connection
from app.kit.observability import REGISTRY
from app.kit.sql import compact_sql, json_document
from app.rules import service as rules

MAX_ROWS = 64  # scans per statement
Row = tuple[int, int, int, str]  # check-in id, household id, points, status
SCANS = Histogram(
    "checkin_statement_scans", "Bin-side scans written per statement", registry=REGISTRY,
    buckets=(1, 2, 4, 8, 16, 32, 64),
)

# The per-scan values the statement reads (json_to_recordset's column list): each scan is one object
# of the one JSON document the statement takes — one parameter, however many scans.
COLUMNS = """n integer, code text, community_id bigint, own bigint[], day date, points integer,
client_id text, station_id bigint, window_id bigint, category text, result text, reasons json,
weight_g integer, photo_ref text, credited boolean, scanned_at timestamptz, posted_at timestamptz,
user_id bigint, memo text, issued_account_id bigint"""


def _sql() -> str:
    from app.ledger.fragments import credit_ctes

    return compact_sql(f"""WITH s AS (SELECT * FROM json_to_recordset(%(scans)s::json) AS s({COLUMNS})),
-- Each scan's household (of the scan's community, active, not one of the scanner's own) and whether
-- its window slot is credited already (then a correct scan is a duplicate: recorded, no points, no cap).
-- Both looked up by index for each scan: LATERAL … LIMIT keeps the planner, which guesses 100 scans and
-- plans once per connection, from hashing the whole table instead (it did, on a young database).
slot AS (
    SELECT s.*, hh.id AS household_id, s.credited AND k.x IS NOT NULL AS taken FROM s
    CROSS JOIN LATERAL (SELECT id FROM household WHERE public_code = s.code AND community_id = s.community_id
        AND status = 'active' AND id <> ALL(s.own) LIMIT 1) AS hh
    LEFT JOIN LATERAL (SELECT 1 AS x FROM checkin WHERE household_id = hh.id AND window_id = s.window_id
        AND window_date = s.day AND credited LIMIT 1) AS k ON true
),
-- The daily cap (one value for the whole statement) counts what the credited scans ask.
free AS (SELECT household_id AS id, day, points FROM slot WHERE NOT taken AND points > 0),
{rules.daily_cap_sql("free")},
c AS (
    INSERT INTO checkin (community_id, client_id, household_id, station_id, window_id, window_date, category, result,
                         reasons, weight_g, photo_ref, status, credited, points, scanned_at, recorded_at,
                         recorded_by)
    SELECT t.community_id, t.client_id, t.household_id, t.station_id, t.window_id, t.day, t.category, t.result,
           t.reasons, t.weight_g, t.photo_ref, CASE WHEN t.taken THEN 'duplicate' ELSE 'accepted' END,
           t.credited AND NOT t.taken,
           CASE WHEN t.taken OR t.points <= 0 THEN 0 WHEN %(cap)s::integer IS NULL THEN t.points ELSE d.last_grant END,
           t.scanned_at, t.posted_at, t.user_id
    FROM slot AS t LEFT JOIN day_counter AS d ON d.household_id = t.household_id
    ORDER BY t.household_id
    ON CONFLICT DO NOTHING
    RETURNING id, household_id, points, status, community_id, client_id
),
credit AS (
    SELECT c.household_id, c.points, 'checkin:' || c.id AS idempotency_key, s.memo, s.scanned_at AS occurred_at,
           s.weight_g::bigint AS quantity_g, s.category, s.community_id, s.issued_account_id, s.posted_at
    FROM c JOIN s ON s.community_id = c.community_id AND s.client_id = c.client_id
    WHERE c.points > 0
),
{credit_ctes("credit")}
-- A scan not written (unknown or foreign household, a replay, a slot credited meanwhile by a
-- concurrent scan) fails the whole statement, so that nothing of it stays (the cap counters above):
-- division by zero unless every scan was written.
SELECT s.n, c.id, c.household_id, c.points, c.status
FROM c JOIN s ON s.community_id = c.community_id AND s.client_id = c.client_id
WHERE 1 / ((SELECT count(*) FROM c) = %(count)s::integer)::integer = 1""")


_SQL: str | None = None


def scans_sql() -> str:
    global _SQL
    if _SQL is None:
        _SQL = _sql()
    return _SQL


def parameters(plans: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The statement's parameters for the plans (service._plan_one): the scans as one JSON document
    (numbered from 1), and the one daily cap of the scans that earn."""
    return {
        "scans": json_document([plan | {"n": n} for n, plan in enumerate(plans, 1)]),
        "count": len(plans),
        "cap": next((p["cap"] for p in plans if p["points"] > 0), None),
        "ledger_source": plans[0]["ledger_source"],
    }


async def _execute(plans: Sequence[dict[str, Any]]) -> list[Row] | None:
    """The rows of the plans' check-ins, in the plans' order; None when the statement wrote nothing
    (then each scan of several is written alone, each of one goes to the general path)."""
    async with async_connection() as conn:
        SCANS.observe(len(plans))
        try:
            cur = await conn.execute(scans_sql(), parameters(plans))
            found = {n: row for n, *row in await cur.fetchall()}
        except errors.DivisionByZero:
            return None  # one scan could not be written: the statement left nothing
        except (errors.DeadlockDetected, errors.SerializationFailure, errors.LockNotAvailable):
            # Two scans of one household at the same instant, or a row held by a longer write (an
            # upload, a reversal) past the pool's lock_timeout: the general path waits for it.
            return None
        except psycopg.DatabaseError:
            if len(plans) > 1:
                return None  # one scan's own problem: alone, it fails by itself
            raise
    return [tuple(found[n]) for n in range(1, len(plans) + 1)]  # type: ignore[misc]


class Writer:
    """Coalesces the scans of one event loop into statements (see the module's docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop  # held, so that its id is not reused by another loop while this writer lives
        self.waiting: list[tuple[dict[str, Any], asyncio.Future]] = []
        self.running = 0
        self.inflight = get_settings().checkin_statements
        self.tasks: set[asyncio.Task] = set()

    async def write(self, plan: dict[str, Any]) -> Row | None:
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
        if rows is not None or len(batch) == 1:
            for (_, future), row in zip(batch, rows or [None], strict=True):
                if not future.done():
                    future.set_result(row)
            return
        await asyncio.gather(*(_alone(plan, future) for plan, future in batch))


async def _alone(plan: dict[str, Any], future: asyncio.Future) -> None:
    """One scan of a statement that could not write them all, in a statement of its own (on a pool
    connection of its own, beside the writer's), answered as soon as that one returns."""
    try:
        rows = await _execute([plan])
    except Exception as exc:
        if not future.done():
            future.set_exception(exc)
        return
    if not future.done():
        future.set_result(rows[0] if rows else None)


_writers: dict[int, Writer] = {}


async def write(plan: dict[str, Any]) -> Row | None:
    """Write one planned scan (service._plan_one) with whatever other scans this process writes now:
    its check-in row, or None when it must take the general path."""
    loop = asyncio.get_running_loop()
    writer = _writers.get(id(loop))
    if writer is None or writer.loop is not loop:
        writer = _writers[id(loop)] = Writer(loop)
    return await writer.write(plan)


def forget_loop() -> None:
    """Drop the running loop's writer (app shutdown, with the loop's connection pools)."""
    _writers.pop(id(asyncio.get_running_loop()), None)

