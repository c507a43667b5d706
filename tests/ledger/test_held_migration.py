"""Migration m16points_1: existing reservations' holds become the households' held points (up), and
the column goes again (down)."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from app.core.db import make_engine
from app.core.migrate import downgrade, upgrade
from tests.conftest import drop_pg_database, fresh_pg_database

_PLACES = """
INSERT INTO street (id, city, district, name, created_at) VALUES (1, '苏州市', '昆山市', '街道', now());
INSERT INTO community (id, name, timezone, street_id, created_at) VALUES (1, '社区', 'Asia/Shanghai', 1, now());
INSERT INTO compound (id, name, community_id, created_at) VALUES (1, '一期', 1, now());
INSERT INTO building (id, name, compound_id, community_id, created_at) VALUES (1, '1号楼', 1, 1, now());
INSERT INTO household (id, unit, door_plate, members, community_id, building_id, status, public_code, created_at, updated_at)
VALUES (1, '1', '101', 2, 1, 1, 'active', 'AAAA1', now(), now()), (2, '1', '201', 2, 1, 1, 'active', 'AAAA2', now(), now());
"""
# Household 1 earned 100, reserved 30 (open), reserved 20 (handed over) and 10 (released);
# household 2 earned 50 and reserved nothing.
_LEDGER = """
INSERT INTO ledger_account (id, community_id, household_id, kind, balance, version) VALUES
  (1, 1, 1, 'household', 40, 4), (2, 1, 2, 'household', 50, 1),
  (10, 1, NULL, 'issued', -150, 0), (11, 1, NULL, 'held', 30, 0), (12, 1, NULL, 'redeemed', 20, 0);
INSERT INTO journal_entry (id, community_id, household_id, source, idempotency_key, occurred_at, posted_at, reverses_entry_id) VALUES
  (1, 1, 1, 'checkin', 'k1', now(), now(), NULL), (2, 1, 2, 'checkin', 'k2', now(), now(), NULL),
  (3, 1, 1, 'redemption', 'redemption:1:hold', now(), now(), NULL),
  (4, 1, 1, 'redemption', 'redemption:2:hold', now(), now(), NULL),
  (5, 1, 1, 'redemption', 'redemption:2:fulfil', now(), now(), NULL),
  (6, 1, 1, 'redemption', 'redemption:3:hold', now(), now(), NULL),
  (7, 1, 1, 'correction', 'redemption:3:release', now(), now(), 6);
INSERT INTO posting (entry_id, account_id, amount, seq, balance_after) VALUES
  (1, 1, 100, 1, 100), (1, 10, -100, NULL, NULL), (2, 2, 50, 1, 50), (2, 10, -50, NULL, NULL),
  (3, 1, -30, 2, 70), (3, 11, 30, NULL, NULL),
  (4, 1, -20, 3, 50), (4, 11, 20, NULL, NULL), (5, 11, -20, NULL, NULL), (5, 12, 20, NULL, NULL),
  (6, 1, -10, 4, 40), (6, 11, 10, NULL, NULL), (7, 1, 10, 5, 50), (7, 11, -10, NULL, NULL);
UPDATE ledger_account SET balance = 70, version = 5 WHERE id = 1;
"""


def test_open_reservations_become_held_points_and_the_migration_goes_down_again():
    url = fresh_pg_database("held")
    engine = make_engine(url)
    try:
        upgrade(url, "0016")
        with engine.begin() as conn:
            conn.execute(text(_PLACES))
            conn.execute(text(_LEDGER))
        upgrade(url, "m16points_1")
        with engine.connect() as conn:
            held = dict(conn.execute(text("SELECT household_id, held FROM ledger_account WHERE household_id IS NOT NULL")).all())
            balances = dict(conn.execute(text("SELECT household_id, balance FROM ledger_account WHERE household_id IS NOT NULL")).all())
        assert held == {1: 30, 2: 0} and balances == {1: 70, 2: 50}
        with pytest.raises(IntegrityError, match="ck_ledger_account_held_not_negative"), engine.begin() as conn:
            conn.execute(text("UPDATE ledger_account SET held = held - 31 WHERE household_id = 1"))  # more than is held
        downgrade(url, "0016")
        assert "held" not in {c["name"] for c in inspect(engine).get_columns("ledger_account")}
        assert "held_net" not in {c["name"] for c in inspect(engine).get_columns("household_month_points")}
        upgrade(url, "m16points_1")  # and up again
        with engine.connect() as conn:
            assert conn.execute(text("SELECT held FROM ledger_account WHERE household_id = 1")).scalar_one() == 30
    finally:
        engine.dispose()
        drop_pg_database(url)
