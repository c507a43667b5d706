"""The ledger's credit, as SQL: the one definition of how earned points are posted.

`service.post_credits` runs it over a JSON document of credits; a hot path that wants its act *and*
its points in one statement (a bin-side check-in) composes its own CTEs with `credits_ctes()`. Either
way the ledger's rules travel with this text — one entry per idempotency key, each household's balance
moved by one upsert that bumps its posting sequence, a household posting carrying its running balance
and a mirror posting on the community's `issued` account.

Parameters use psycopg's named style.
"""

from __future__ import annotations

from app.ledger.models import HOUSEHOLD

# The columns of a credit (json_to_recordset's column list, for callers that read credits from JSON).
CREDIT_COLUMNS = """household_id bigint, community_id bigint, issued_account_id bigint, points integer,
idempotency_key text, ledger_source text, memo text, occurred_at timestamptz, posted_at timestamptz,
quantity_g bigint, category text, position bigint"""


def credits_ctes(source: str) -> str:
    """CTEs `ledger_entry`, `ledger_credit`, `ledger_account_row` and `ledger_posting` that post the
    credits in `source`: a CTE with the columns of CREDIT_COLUMNS — points positive (the source
    filters), issued_account_id the community's issued account (`service.system_account_id`), position
    ordering a household's credits — of any communities and any number per household.

    A key already posted yields no entry and moves nothing. Entries are inserted in key order (two
    statements sharing keys meet on them in the same order); each household posting gets the sequence
    number and running balance it would have had posted one at a time, in position order, and each
    household's balance moves once, by the sum of its new credits. The caller's final SELECT can read
    `ledger_entry` (id, household_id, idempotency_key) and `ledger_account_row` (balance after).
    """
    return f"""
ledger_entry AS (
    INSERT INTO journal_entry (community_id, household_id, source, idempotency_key, memo, occurred_at, posted_at, quantity_g, category)
    SELECT s.community_id, s.household_id, s.ledger_source, s.idempotency_key, s.memo, s.occurred_at, s.posted_at,
           s.quantity_g, s.category
    FROM {source} AS s
    ORDER BY s.idempotency_key
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, household_id, idempotency_key
),
ledger_credit AS (
    SELECT e.id AS entry_id, e.household_id, s.community_id, s.issued_account_id, s.points,
           sum(s.points) OVER later AS points_after, count(*) OVER later AS credits_after
    FROM ledger_entry AS e JOIN {source} AS s ON s.idempotency_key = e.idempotency_key
    WINDOW later AS (PARTITION BY e.household_id ORDER BY s.position DESC, e.id DESC
                     ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
),
ledger_account_row AS (
    INSERT INTO ledger_account AS acc (community_id, household_id, kind, balance, version)
    SELECT min(c.community_id), c.household_id, '{HOUSEHOLD}', sum(c.points), count(*)
    FROM ledger_credit AS c
    GROUP BY c.household_id
    ORDER BY c.household_id
    ON CONFLICT (household_id) DO UPDATE SET balance = acc.balance + excluded.balance, version = acc.version + excluded.version
    RETURNING id, household_id, balance, version
),
ledger_posting AS (
    INSERT INTO posting (entry_id, account_id, amount, seq, balance_after)
    SELECT c.entry_id, a.id, c.points, a.version - COALESCE(c.credits_after, 0), a.balance - COALESCE(c.points_after, 0)
    FROM ledger_credit AS c JOIN ledger_account_row AS a ON a.household_id = c.household_id
    UNION ALL
    SELECT c.entry_id, c.issued_account_id, -c.points, NULL, NULL
    FROM ledger_credit AS c
    RETURNING entry_id
)"""
