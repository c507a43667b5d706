"""SQL the ledger lends to a hot path that wants its whole act in one PostgreSQL statement.

The ledger stays the only code that writes journal entries, postings and balances: a caller that
needs an act *and* its points in a single round trip (a bin-side check-in) composes its own CTEs
with `credit_ctes()`, and the ledger's rules travel with the text — one entry per idempotency key,
the household's balance changed by one upsert that bumps its posting sequence, a household posting
carrying its running balance and a mirror posting on the community's `issued` account.

PostgreSQL only (data-modifying CTEs). Parameters use psycopg's named style.
"""

from __future__ import annotations

from app.ledger.models import HOUSEHOLD


def _entries(source: str, order: str = "", per_row: bool = False) -> str:
    """The CTE `ledger_entry`: one journal entry per credit in `source` whose key is new. With per_row,
    the community and the posting time are the source's columns community_id and posted_at."""
    community, posted = ("s.community_id", "s.posted_at") if per_row else ("%(community_id)s::bigint", "%(posted_at)s::timestamptz")
    return f"""ledger_entry AS (
    INSERT INTO journal_entry (community_id, household_id, source, idempotency_key, memo, occurred_at, posted_at, quantity_g, category)
    SELECT {community}, s.household_id, %(ledger_source)s::varchar, s.idempotency_key, s.memo, s.occurred_at,
           {posted}, s.quantity_g, s.category
    FROM {source} AS s
    {order}
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, household_id, idempotency_key
)"""


def credit_ctes(source: str) -> str:
    """CTEs `ledger_entry`, `ledger_account_row`, `ledger_posting` that post the credits in `source`:
    a CTE with the columns household_id, points, idempotency_key, memo, occurred_at, quantity_g,
    category, community_id, issued_account_id (that community's issued account, from
    `system_account_id`) and posted_at; one row per credit and at most one row per household, of any
    communities (the bin-side scans of a process, written together).

    Needs the parameter %(ledger_source)s. Points must be positive (the source filters). A key already
    posted yields no entry and moves nothing. The caller's final SELECT can read `ledger_entry`
    (id, household_id) and `ledger_account_row` (balance after the credit).
    """
    return f"""
{_entries(source, "ORDER BY s.household_id", per_row=True)},
ledger_account_row AS (
    INSERT INTO ledger_account AS acc (community_id, household_id, kind, balance, version)
    SELECT s.community_id, s.household_id, '{HOUSEHOLD}', s.points, 1
    FROM ledger_entry AS e JOIN {source} AS s ON s.idempotency_key = e.idempotency_key
    ORDER BY s.household_id
    ON CONFLICT (household_id) DO UPDATE SET balance = acc.balance + excluded.balance, version = acc.version + 1
    RETURNING id, household_id, balance, version
),
ledger_posting AS (
    INSERT INTO posting (entry_id, account_id, amount, seq, balance_after)
    SELECT e.id, a.id, s.points, a.version, a.balance
    FROM ledger_entry AS e JOIN {source} AS s ON s.idempotency_key = e.idempotency_key
    JOIN ledger_account_row AS a ON a.household_id = e.household_id
    UNION ALL
    SELECT e.id, s.issued_account_id, -s.points, NULL, NULL
    FROM ledger_entry AS e JOIN {source} AS s ON s.idempotency_key = e.idempotency_key
    RETURNING entry_id
)"""


def credits_ctes(source: str) -> str:
    """`credit_ctes` for any number of credits per household (an offline batch): the same CTEs
    `ledger_entry`, `ledger_account_row`, `ledger_posting`, plus `ledger_credit` (a new entry's credit
    with its place among the household's).

    `source` also has a column `position` that orders a household's credits: entries are numbered in
    that order, and each household posting gets the sequence number and running balance it would have
    had posted one at a time (as `service.post_credits` gives them). Each household's balance moves
    once, by the sum of its new credits. One community: needs the parameters %(community_id)s,
    %(issued_account_id)s (its issued account), %(posted_at)s and %(ledger_source)s.
    """
    return f"""
{_entries(source, "ORDER BY s.household_id, s.position")},
ledger_credit AS (
    SELECT e.id AS entry_id, e.household_id, s.points,
           sum(s.points) OVER (PARTITION BY e.household_id) - sum(s.points) OVER (PARTITION BY e.household_id ORDER BY e.id) AS points_after,
           count(*) OVER (PARTITION BY e.household_id) - count(*) OVER (PARTITION BY e.household_id ORDER BY e.id) AS credits_after
    FROM ledger_entry AS e JOIN {source} AS s ON s.idempotency_key = e.idempotency_key
),
ledger_account_row AS (
    INSERT INTO ledger_account AS acc (community_id, household_id, kind, balance, version)
    SELECT %(community_id)s::bigint, c.household_id, '{HOUSEHOLD}', sum(c.points), count(*)
    FROM ledger_credit AS c
    GROUP BY c.household_id
    ORDER BY c.household_id
    ON CONFLICT (household_id) DO UPDATE SET balance = acc.balance + excluded.balance, version = acc.version + excluded.version
    RETURNING id, household_id, balance, version
),
ledger_posting AS (
    INSERT INTO posting (entry_id, account_id, amount, seq, balance_after)
    SELECT c.entry_id, a.id, c.points, a.version - c.credits_after, a.balance - c.points_after
    FROM ledger_credit AS c JOIN ledger_account_row AS a ON a.household_id = c.household_id
    UNION ALL
    SELECT c.entry_id, %(issued_account_id)s::bigint, -c.points, NULL, NULL
    FROM ledger_credit AS c
    RETURNING entry_id
)"""
