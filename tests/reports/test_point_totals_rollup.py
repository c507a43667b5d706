"""The point totals roll-up (reports.rollup) gives the export exactly the live statement's figures,
whatever arrives after it was filled: back-dated entries, reversals of rolled-up entries, entries of
later months."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session

from app.core.db import utcnow
from app.ledger import service as ledger
from app.reports import rollup
from app.reports.scope import Period, month_period
from app.reports.totals import report_query, totals_query
from tests.ledger.helpers import earn, expire, spend
from tests.support import race

TZ = "Asia/Shanghai"
SEP = datetime(2026, 9, 15, 4, tzinfo=UTC)
EDGE = datetime(2026, 9, 30, 17, tzinfo=UTC)  # 01:00 on 1 October, local
OCT = datetime(2026, 10, 10, 4, tzinfo=UTC)
LAST_OCT = datetime(2026, 10, 31, 15, 30, tzinfo=UTC)  # 23:30 on 31 October, local
NOV = datetime(2026, 11, 2, 4, tzinfo=UTC)


def _reverse(engine, entry_id: int) -> None:
    with Session(engine) as s:
        ledger.reverse(s, entry_id, reason="扫错了", actor_user_id=None, idempotency_key=f"rev:{entry_id}")
        s.commit()


def _hold(engine, household, points: int, *, when: datetime, settle: datetime) -> None:
    """Points reserved at `when` (household → held) and handed over at `settle` (held → redeemed)."""
    with Session(engine) as s:
        for key, at, lines in (
            ("hold", when, [ledger.Line(-points, household_id=household.id), ledger.Line(points, system=ledger.SystemAccount.held)]),
            ("fulfil", settle, [ledger.Line(-points, system=ledger.SystemAccount.held), ledger.Line(points, system=ledger.SystemAccount.redeemed)]),
        ):
            ledger.post(s, community_id=household.community_id, idempotency_key=f"test-{key}:{household.id}", source="redemption",
                        memo="兑换 测试", household_id=household.id, occurred_at=at, lines=lines)
        s.commit()


PERIODS = [month_period("2026-09"), month_period("2026-10"), month_period("2026-11"),
           Period(date(2026, 9, 1), date(2026, 10, 31)), month_period(utcnow().astimezone(ZoneInfo(TZ)).strftime("%Y-%m"))]


def _same_figures(engine, ids: tuple[int, ...]) -> int:
    """Every period's rows, read with the roll-up and live, in one REPEATABLE READ snapshot: equal.
    Returns how many periods did read a roll-up."""
    used = 0
    for period in PERIODS:
        lo, hi = period.bounds(ZoneInfo(TZ))
        with Session(engine) as s:
            s.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            rolled = rollup.current(s, TZ, period)
            used += rolled is not None
            for build in (report_query, lambda *a, rollup: report_query(*a, as_csv=True, rollup=rollup), totals_query):
                live = s.execute(build(ids, lo, hi, rollup=None)).all()
                assert s.execute(build(ids, lo, hi, rollup=rolled)).all() == live, (period, rolled)
    return used


def test_an_export_reads_the_rollup_once_refreshed(engine, world):
    # A time zone no other test rolls up: the worker's database is shared, and in any order the other
    # tests (and the jobs') refresh Asia/Shanghai's roll-up before or after this one.
    tz = "Asia/Urumqi"
    earn(engine, world.households[0], 5, when=OCT)
    with Session(engine) as s:
        assert rollup.current(s, tz, month_period("2026-10")) is None
    rollup.refresh(engine, [tz])
    with Session(engine) as s:
        assert rollup.current(s, tz, month_period("2026-10")) is not None


def test_rollup_export_equals_the_live_statement_with_late_entries_and_reversals(engine, world, client):
    ids = (world.community.id,)
    h0, h1, h2, h5 = world.households[0], world.households[1], world.households[2], world.households[5]
    earn(engine, h0, 50, when=SEP)
    earn(engine, h0, 10, when=EDGE, grams=1500, category="kitchen")
    earn(engine, h0, 7, when=OCT, source="recycling", grams=2300, category="paper")
    wrong_early = earn(engine, h0, 4, when=OCT)
    _reverse(engine, wrong_early)  # reversed before the roll-up: both sides rolled up, in October
    rolled_then_reversed = earn(engine, h1, 6, when=LAST_OCT, grams=800, category="kitchen")
    earn(engine, h1, 30, when=SEP, source="compost", grams=3000, category="kitchen")
    expire(engine, h1, 12, OCT)
    earn(engine, h5, 8, when=OCT, source="adjustment")
    spend(engine, h0, 20)  # occurs now
    earn(engine, h2, 40, when=SEP)
    _hold(engine, h2, 15, when=OCT, settle=NOV)  # held at October's end, redeemed in November
    earn(engine, h2, 9, when=NOV, source="volunteer")

    first = rollup.refresh(engine, [TZ])
    assert first[0].watermark > first[0].watermark_before and first[0].transactions == 1
    assert _same_figures(engine, ids) == len(PERIODS)

    # After the roll-up: a scan back-dated into October (by 72 h from 1 November, local), an adjustment
    # dated September, the reversal of a rolled-up October check-in, an entry of November and its reversal.
    earn(engine, h2, 5, when=LAST_OCT - timedelta(hours=1), grams=1200, category="kitchen")
    earn(engine, h5, 3, when=SEP, source="adjustment")
    _reverse(engine, rolled_then_reversed)
    later = earn(engine, h0, 2, when=NOV, source="recycling", grams=500, category="battery")
    _reverse(engine, later)
    earn(engine, h0, 1, when=utcnow())
    assert _same_figures(engine, ids) == len(PERIODS)

    # The reversal lands in its own month: October, closed, keeps the check-in; the API reads the same.
    oct_lo, oct_hi = month_period("2026-10").bounds(ZoneInfo(TZ))
    with Session(engine) as s:
        rows = {r.door_plate: r for r in s.execute(totals_query(ids, oct_lo, oct_hi)).all() if r.building == "1号楼"}
    assert rows["201"].checkin == 6 and rows["201"].opening == 30  # h1: compost in Sept
    # Kilograms are the records' (app.reports.measures.waste), never the ledger's 800 g: no weigh-in here.
    assert rows["201"].g_kitchen == 0
    assert rows["301"].held == 15 and rows["301"].redeemed == 0  # h2: reserved in October, handed over in November
    r = client.get(f"/api/v1/communities/{world.community.id}/reports/point-totals", params={"month": "2026-10"},
                   headers=world.h("committee"))
    assert r.status_code == 200

    # Rolled up again, the late entries now on the roll-up's side: still the same.
    second = rollup.refresh(engine, [TZ])
    assert second[0].watermark_before == first[0].watermark and second[0].watermark > first[0].watermark
    assert _same_figures(engine, ids) == len(PERIODS)
    assert rollup.refresh(engine, [TZ])[0].transactions == 0  # nothing new: nothing written

    # Periods not made of whole months read the journal.
    with Session(engine) as s:
        assert rollup.current(s, TZ, Period(date(2026, 10, 2), date(2026, 10, 31))) is None
        assert rollup.current(s, TZ, Period(date(2026, 10, 1), date(2026, 10, 30))) is None


def test_refresh_in_chunks_equals_one_refresh(engine, world):
    ids = (world.community.id,)
    for i, h in enumerate(world.households[:4]):
        earn(engine, h, 5 + i, when=OCT, grams=600 + i, category="kitchen")
        earn(engine, h, 2, when=SEP + timedelta(days=i), source="recycling", grams=300, category="lamp")
    rollup.refresh(engine, [TZ], chunk=3)  # a transaction per three entry ids
    assert _same_figures(engine, ids) == len(PERIODS)


def test_two_refreshes_at_once_count_every_entry_once(engine, world):
    """Cron on every app instance: refreshes that overlap take turns on the time zone's watermark
    (its row locked), each transaction adding only entries after the watermark it read."""
    ids = (world.community.id,)
    for i, h in enumerate(world.households[:5]):
        earn(engine, h, 3 + i, when=OCT, grams=400 + i, category="kitchen")
        earn(engine, h, 1, when=SEP + timedelta(days=i))
    done = race(lambda: rollup.refresh(engine, [TZ], chunk=2), lambda: rollup.refresh(engine, [TZ], chunk=2))
    assert sum(r[0].transactions for r in done) >= 1
    assert _same_figures(engine, ids) == len(PERIODS)


def test_exports_read_from_the_reports_replica_when_one_is_set(engine, world, client, monkeypatch):
    """REPORTS_DATABASE_URL sends the export's reads to a replica. A hot standby takes no writes: the
    stand-in here is the same database through connections that are read-only from their first
    statement, so an export that wrote anything there would fail. The export's audit row still goes
    to the primary with the request."""
    from sqlalchemy import func, select, text

    from app.audit.models import AuditLog
    from app.core import db
    from app.core.config import get_settings

    earn(engine, world.households[0], 5, when=OCT)
    earn(engine, world.households[1], 3, when=OCT, source="recycling", grams=900, category="paper")
    rollup.refresh(engine, [TZ])
    export = f"/api/v1/communities/{world.community.id}/reports/point-totals"
    params = {"month": "2026-10", "format": "csv"}
    from_primary = client.get(export, params=params, headers=world.h("committee"))
    assert from_primary.status_code == 200, from_primary.text
    assert db.get_reports_engine() is engine  # none set: the primary

    replica = engine.url.set(query={"options": "-c default_transaction_read_only=on"})
    monkeypatch.setenv("REPORTS_DATABASE_URL", replica.render_as_string(hide_password=False))
    get_settings.cache_clear()
    try:
        reports = db.get_reports_engine()
        assert reports is not engine
        with reports.connect() as conn, pytest.raises(Exception, match="read-only transaction"):
            conn.execute(text("UPDATE community SET name = name"))
        reports.dispose()  # an empty pool: a connection in it after the export is the export's
        with Session(engine) as s:
            audited = s.scalar(select(func.count()).select_from(AuditLog))
        from_replica = client.get(export, params=params, headers=world.h("committee"))
        assert from_replica.status_code == 200, from_replica.text
        assert from_replica.content == from_primary.content and "101" in from_replica.text
        assert reports.pool.checkedin() >= 1  # the export's reads went there
        with Session(engine) as s:
            assert s.scalar(select(func.count()).select_from(AuditLog)) == audited + 1
    finally:
        monkeypatch.delenv("REPORTS_DATABASE_URL")
        get_settings.cache_clear()
        if db._reports_engine is not None:
            db._reports_engine[1].dispose()
            db._reports_engine = None
