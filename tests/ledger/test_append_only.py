"""The database itself refuses edits and deletes of journal entries and postings, and negative balances."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from tests.ledger.helpers import earn


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE posting SET amount = amount + 100",
        "DELETE FROM posting",
        "UPDATE journal_entry SET memo = 'edited'",
        "DELETE FROM journal_entry",
    ],
)
def test_ledger_rows_cannot_be_edited(world, engine, sql):
    earn(engine, world.households[0], 5)
    with engine.connect() as conn, pytest.raises(DBAPIError):
        conn.execute(text(sql))
        conn.commit()


def test_household_balance_cannot_go_negative_even_by_hand(world, engine):
    earn(engine, world.households[0], 5)
    with engine.connect() as conn, pytest.raises(IntegrityError):
        conn.execute(text("UPDATE ledger_account SET balance = -1 WHERE household_id = :h"), {"h": world.households[0].id})
        conn.commit()
