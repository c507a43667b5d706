"""The per-process caches: one registry drops them all, a read racing an invalidation is not kept, and
a value read in a transaction is kept only once that transaction commits."""

from __future__ import annotations

import uuid

from sqlmodel import Session

from app.core.db import engine_key
from app.kit import cache
from tests.field import payload, scan


def test_invalidate_all_drops_every_cache_the_scan_path_reads(client, world, engine):
    from app.checkins import setup
    from app.ledger import service as ledger
    from app.ledger.models import SystemAccount
    from app.rules import service as rules
    from tests.checkins.test_checkins import _all_day_with_cap

    assert {"community setup", "points rules", "system accounts", "verified tokens"} <= set(cache.registered())
    f = _all_day_with_cap(client, world, 100)
    c, url = world.community.id, engine_key(engine)
    scans = f"/api/v1/communities/{c}/checkins"
    assert client.post(scans, json=scan(f["station_id"], payload(world, 0)), headers=world.h("volunteer")).status_code == 201
    assert setup.cached_context(url, c) is not None  # the scan filled them

    cache.invalidate_all()
    assert setup.SETUPS.peek(url, c) is None
    assert rules.cached_resolver(url, c) is None
    assert ledger.cached_system_account_id(url, c, SystemAccount.issued) is None
    # And everything is read again as needed.
    assert client.post(scans, json=scan(f["station_id"], payload(world, 1)), headers=world.h("volunteer")).status_code == 201
    assert setup.cached_context(url, c) is not None


def test_a_read_racing_an_invalidation_is_not_kept(engine):
    changes = []

    def read(session: Session, key: int) -> str:
        if changes:
            changes.pop()()  # the invalidation lands while the value is being read
        return f"value {key}"

    values: cache.Cache[int, str] = cache.Cache(f"test {uuid.uuid4()}", read, seconds=60.0)
    url = engine_key(engine)
    with Session(engine) as session:
        changes.append(lambda: values.invalidate(1))
        assert values.get(session, 1) == "value 1"
        assert values.peek(url, 1) is None
        changes.append(cache.invalidate_all)
        assert values.get(session, 1) == "value 1"
        assert values.peek(url, 1) is None
        assert values.get(session, 1) == "value 1"  # no change this time: kept
        assert values.peek(url, 1) == "value 1" and values.expires_at(url, 1) > 0
        values.invalidate(1)
        assert values.peek(url, 1) is None and values.expires_at(url, 1) == 0.0


def test_a_system_account_is_cached_once_its_transaction_commits(world, engine):
    from app.ledger import service as ledger
    from app.ledger.models import SystemAccount

    c, url = world.community.id, engine_key(engine)
    kind = SystemAccount.adjustments
    ledger.SYSTEM_ACCOUNTS.invalidate((c, kind.value))
    with Session(engine) as session:
        first = ledger.system_account_id(session, c, kind)
        assert ledger.system_account_id(session, c, kind) == first  # the same transaction sees it
        assert ledger.cached_system_account_id(url, c, kind) is None
        session.rollback()
    assert ledger.cached_system_account_id(url, c, kind) is None  # rolled back: perhaps never created
    with Session(engine) as session:
        account_id = ledger.system_account_id(session, c, kind)
        session.commit()
    assert ledger.cached_system_account_id(url, c, kind) == account_id
