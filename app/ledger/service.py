"""The ledger service: the only code that writes journal entries, postings and balances.

Every movement is one journal entry whose postings sum to zero. Household balances are kept on
the account row and changed by one conditional UPDATE, so the database refuses an overdraft even
under concurrency; system balances are derived from postings (a shared hot row would serialise
every writer). Each entry carries a unique idempotency key: posting the same key again returns the
first entry and moves nothing. Nothing is updated or deleted: corrections are reversal entries.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from app.core.db import utcnow
from app.kit.cache import Cache
from app.kit.errors import BadRequest, Conflict, not_found
from app.kit.sql import among, bulk_insert, compact_sql, json_document
from app.ledger.models import HOUSEHOLD, JournalEntry, LedgerAccount, Posting, Source, SystemAccount

ACCOUNT = LedgerAccount.__table__
ENTRY = JournalEntry.__table__
POSTING = Posting.__table__


class InsufficientPoints(Conflict):
    def __init__(self, balance: int | None = None, needed: int | None = None):
        super().__init__(
            "insufficient_points",
            "积分不足",
            "Insufficient points",
            "points",
            **({"balance": balance, "needed": needed} if balance is not None else {}),
        )


@dataclass(frozen=True)
class Credit:
    """Points earned by a household for an act, posted against the community's `issued` account."""

    community_id: int
    household_id: int
    points: int
    source: str
    idempotency_key: str
    memo: str
    occurred_at: datetime
    quantity_g: int | None = None
    category: str | None = None


@dataclass(frozen=True)
class Line:
    """One side of an entry: a household (by id) or a community system account, and what it gains."""

    amount: int
    household_id: int | None = None
    system: SystemAccount | None = None


@dataclass(frozen=True)
class Posted:
    entry_id: int
    replayed: bool
    balance_after: int | None = None




# --- accounts ----------------------------------------------------------------------------------

def _read_system_account(session: Session, key: tuple[int, str]) -> int:
    community_id, kind = key
    row = {"community_id": community_id, "kind": kind, "balance": 0, "version": 0, "household_id": None}
    session.execute(
        pg_insert(ACCOUNT)
        .values(row)
        .on_conflict_do_nothing(index_elements=["community_id", "kind"], index_where=text("household_id IS NULL"))
    )
    return session.execute(
        select(ACCOUNT.c.id).where(
            ACCOUNT.c.community_id == community_id, ACCOUNT.c.kind == kind, ACCOUNT.c.household_id.is_(None)
        )
    ).scalar_one()


# By (community id, kind). Kept once the transaction that saw or created the account has committed.
SYSTEM_ACCOUNTS: Cache[tuple[int, str], int] = Cache(
    "system accounts", _read_system_account, seconds=None, until_commit=True
)


def cached_system_account_id(engine_url: str, community_id: int, kind: SystemAccount) -> int | None:
    """The id if this process has seen the account committed (no database at hand), else None."""
    return SYSTEM_ACCOUNTS.peek(engine_url, (community_id, kind.value))


def system_account_id(session: Session, community_id: int, kind: SystemAccount) -> int:
    """Id of a community's system account, created on first use inside the caller's transaction."""
    return SYSTEM_ACCOUNTS.get(session, (community_id, kind.value))


def _apply_household_deltas(session: Session, community_of: dict[int, int], deltas: dict[int, tuple[int, int]]) -> dict[int, tuple[int, int, int]]:
    """Add credits (positive deltas) to household accounts, creating them as needed, in one statement.

    deltas: household_id → (points, number of postings). Returns household_id → (account_id, balance, version).
    Rows are written in household order so concurrent batches lock in the same order (no deadlock).
    """
    rows = [
        {"community_id": community_of[h], "household_id": h, "kind": HOUSEHOLD, "balance": d, "version": n}
        for h, (d, n) in sorted(deltas.items())
    ]
    if len(rows) > 1:
        returned = bulk_insert(
            session,
            ACCOUNT,
            rows,
            "ON CONFLICT (household_id) DO UPDATE SET balance = ledger_account.balance + excluded.balance, "
            "version = ledger_account.version + excluded.version "
            "RETURNING household_id, id, balance, version",
        )
        return {h: (a, b, v) for h, a, b, v in returned}
    stmt = pg_insert(ACCOUNT).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=["household_id"],
        set_={"balance": ACCOUNT.c.balance + stmt.excluded.balance, "version": ACCOUNT.c.version + stmt.excluded.version},
    ).returning(ACCOUNT.c.household_id, ACCOUNT.c.id, ACCOUNT.c.balance, ACCOUNT.c.version)
    return {h: (a, b, v) for h, a, b, v in session.execute(stmt).all()}


def _change_household(session: Session, community_id: int, household_id: int, delta: int) -> tuple[int, int, int]:
    """Apply one delta to a household; a debit succeeds only if the balance covers it (one conditional UPDATE)."""
    if delta >= 0:
        return _apply_household_deltas(session, {household_id: community_id}, {household_id: (delta, 1)})[household_id]
    result = session.execute(
        update(ACCOUNT)
        .where(ACCOUNT.c.household_id == household_id, ACCOUNT.c.balance + delta >= 0)
        .values(balance=ACCOUNT.c.balance + delta, version=ACCOUNT.c.version + 1)
        .returning(ACCOUNT.c.id, ACCOUNT.c.balance, ACCOUNT.c.version)
    ).first()
    if result is None:
        raise InsufficientPoints(balance_of(session, household_id), -delta)
    return result[0], result[1], result[2]


def balance_of(session: Session, household_id: int) -> int:
    value = session.execute(select(ACCOUNT.c.balance).where(ACCOUNT.c.household_id == household_id)).scalar()
    return int(value or 0)


def balances_of(session: Session, household_ids: Iterable[int], *, lock: bool = False) -> dict[int, int]:
    """Balances of many households in one query (0 for a household without an account).

    lock=True locks their account rows, in household order, until the caller's transaction ends
    (PostgreSQL): a batch that decides on these balances and then posts sees them unchanged."""
    ids = sorted(set(household_ids))
    if not ids:
        return {}
    stmt = select(ACCOUNT.c.household_id, ACCOUNT.c.balance).where(among(session, ACCOUNT.c.household_id, ids))
    if lock:
        stmt = stmt.order_by(ACCOUNT.c.household_id).with_for_update(key_share=True)
    found = dict(session.execute(stmt).all())
    return {h: int(found.get(h) or 0) for h in ids}


# --- posting -----------------------------------------------------------------------------------

def post_credits(session: Session, credits: Sequence[Credit]) -> list[int]:
    """Post many earned credits at once: one statement (fragments.credits_ctes) whatever the batch size.

    Returns the journal entry id of each credit, in order. A key seen before (in an earlier batch,
    a concurrent one, or twice in this one) yields the existing entry and moves nothing.
    Does not commit: the caller commits its own rows and the points in one transaction.
    """
    if not credits:
        return []
    for c in credits:
        if c.points <= 0:
            raise BadRequest("invalid_points", "积分必须为正数", "Points must be positive", "points")
    first: dict[str, Credit] = {}
    for c in credits:
        first.setdefault(c.idempotency_key, c)
    now = utcnow()
    issued = {cid: system_account_id(session, cid, SystemAccount.issued) for cid in sorted({c.community_id for c in first.values()})}
    rows = [
        {
            "household_id": c.household_id, "community_id": c.community_id, "issued_account_id": issued[c.community_id],
            "points": c.points, "idempotency_key": c.idempotency_key, "ledger_source": c.source, "memo": c.memo,
            "occurred_at": c.occurred_at, "posted_at": now, "quantity_g": c.quantity_g, "category": c.category, "position": n,
        }
        for n, c in enumerate(first.values())
    ]
    ids = dict(session.connection().exec_driver_sql(_credits_sql(), {"credits": json_document(rows)}).all())
    missing = [k for k in first if k not in ids]
    if missing:
        ids.update(
            (k, i)
            for i, k in session.execute(select(ENTRY.c.id, ENTRY.c.idempotency_key).where(among(session, ENTRY.c.idempotency_key, missing))).all()
        )
    return [ids[c.idempotency_key] for c in credits]


@cache
def _credits_sql() -> str:
    from app.ledger.fragments import CREDIT_COLUMNS, credits_ctes

    return compact_sql(f"""WITH credit AS (SELECT * FROM json_to_recordset(%(credits)s::json) AS s({CREDIT_COLUMNS})),
{credits_ctes("credit")}
SELECT idempotency_key, id FROM ledger_entry""")


def post(
    session: Session,
    *,
    community_id: int,
    idempotency_key: str,
    source: str,
    memo: str,
    lines: Iterable[Line],
    household_id: int | None = None,
    occurred_at: datetime | None = None,
    quantity_g: int | None = None,
    category: str | None = None,
    actor_user_id: int | None = None,
    reverses_entry_id: int | None = None,
    reason: str | None = None,
) -> Posted:
    """Post one balanced entry. Household debits are refused by the database when not covered.

    Does not commit. A replayed key returns the first entry (replayed=True) and moves nothing.
    """
    lines = [ln for ln in lines if ln.amount != 0]
    if not lines or sum(ln.amount for ln in lines) != 0:
        raise BadRequest("unbalanced_entry", "记账分录不平衡", "Entry does not balance")
    now = utcnow()
    row = {
        "community_id": community_id,
        "household_id": household_id,
        "source": source,
        "idempotency_key": idempotency_key,
        "memo": memo,
        "occurred_at": occurred_at or now,
        "posted_at": now,
        "quantity_g": quantity_g,
        "category": category,
        "actor_user_id": actor_user_id,
        "reverses_entry_id": reverses_entry_id,
        "reason": reason,
    }
    try:
        entry_id = session.execute(
            pg_insert(ENTRY)
            .values(row)
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
            .returning(ENTRY.c.id)
        ).scalar()
    except IntegrityError as e:
        if reverses_entry_id is not None and "reverses_entry_id" in str(e.orig):
            raise _already_reversed() from None
        raise
    if entry_id is None:
        return _replay(session, idempotency_key)
    postings = []
    balance_after = None
    # Debits first in household order: a refusal happens before anything else is touched.
    for ln in sorted(lines, key=lambda x: (x.household_id is None, x.amount >= 0, x.household_id or 0)):
        if ln.household_id is not None:
            account_id, balance, version = _change_household(session, community_id, ln.household_id, ln.amount)
            postings.append({"entry_id": entry_id, "account_id": account_id, "amount": ln.amount, "seq": version, "balance_after": balance})
            if ln.household_id == household_id:
                balance_after = balance
        else:
            postings.append(
                {"entry_id": entry_id, "account_id": system_account_id(session, community_id, ln.system), "amount": ln.amount, "seq": None, "balance_after": None}
            )
    session.execute(POSTING.insert(), postings)
    _move_held(session, household_id, sum(ln.amount for ln in lines if ln.system == SystemAccount.held))
    return Posted(entry_id, False, balance_after)


def _held_without_household() -> BadRequest:
    return BadRequest("held_without_household", "冻结积分必须属于住户", "Held points must belong to a household")


def _move_held(session: Session, household_id: int | None, delta: int) -> None:
    """Add `delta` to the household's held points (a hold placed: +; handed over or released: −),
    conditionally: the database never settles or releases more than is held."""
    if delta == 0:
        return
    if household_id is None:
        raise _held_without_household()
    moved = session.execute(
        update(ACCOUNT)
        .where(ACCOUNT.c.household_id == household_id, ACCOUNT.c.held + delta >= 0)
        .values(held=ACCOUNT.c.held + delta)
        .returning(ACCOUNT.c.id)
    ).first()
    if moved is None:
        raise Conflict("not_held", "没有可兑付或释放的冻结积分", "No held points to settle or release", "points")


def held_of(session: Session, household_id: int) -> int:
    """Points the household has reserved and not yet received or released."""
    value = session.execute(select(ACCOUNT.c.held).where(ACCOUNT.c.household_id == household_id)).scalar()
    return int(value or 0)


@dataclass(frozen=True)
class Entry:
    """One balanced entry for `post_many`: the arguments `post` takes, as a value."""

    community_id: int
    idempotency_key: str
    source: str
    memo: str
    lines: tuple[Line, ...]
    household_id: int | None = None
    occurred_at: datetime | None = None
    actor_user_id: int | None = None


def post_many(session: Session, entries: Sequence[Entry]) -> list[Posted]:
    """Post many balanced entries at once, set-based: what `post` does for each, in a few statements.

    Entries apply in the order given; a household's balance may not go below zero at any posting
    (the household rows are locked in household order, every posting's running balance is checked,
    and the database's check constraint stands behind it): one refusal raises `InsufficientPoints`
    and the caller rolls back. A key seen before returns its first entry (replayed) and moves nothing.
    Does not commit.
    """
    if not entries:
        return []
    for e in entries:
        if not any(ln.amount for ln in e.lines) or sum(ln.amount for ln in e.lines) != 0:
            raise BadRequest("unbalanced_entry", "记账分录不平衡", "Entry does not balance")
    first: dict[str, Entry] = {}
    for e in entries:
        first.setdefault(e.idempotency_key, e)
    now = utcnow()
    rows = [
        {
            "community_id": e.community_id, "household_id": e.household_id, "source": e.source,
            "idempotency_key": e.idempotency_key, "memo": e.memo, "occurred_at": e.occurred_at or now, "posted_at": now,
            "actor_user_id": e.actor_user_id,
        }
        for e in first.values()
    ]
    inserted = bulk_insert(session, ENTRY, rows, "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, idempotency_key")
    new_ids = {k: i for i, k in inserted}
    fresh = [e for k, e in first.items() if k in new_ids]
    balances: dict[str, int | None] = {}
    if fresh:
        balances = _post_lines(session, fresh, new_ids)
    out = []
    for e in entries:
        k = e.idempotency_key
        if k in new_ids:
            out.append(Posted(new_ids[k], False, balances.get(k)))
        else:
            out.append(_replay(session, k))
    return out


def _post_lines(session: Session, fresh: list[Entry], entry_ids: dict[str, int]) -> dict[str, int | None]:
    """Postings of new entries: household balances moved once per household, each posting with its
    running balance. Returns key → balance after the entry of its own household."""
    community_of = {ln.household_id: e.community_id for e in fresh for ln in e.lines if ln.household_id is not None}
    for e in fresh:
        if any(ln.system == SystemAccount.held and ln.amount for ln in e.lines):
            if e.household_id is None:
                raise _held_without_household()
            community_of.setdefault(e.household_id, e.community_id)
    households = sorted(community_of)
    accounts: dict[int, list[int]] = {}
    held_now: dict[int, int] = {}
    if households:
        # Every household account exists (created empty where missing) and is locked, in household
        # order, so concurrent batches cannot deadlock and the running balances below stay true.
        empty = [{"community_id": community_of[h], "household_id": h, "kind": HOUSEHOLD, "balance": 0, "version": 0} for h in households]
        bulk_insert(session, ACCOUNT, empty, "ON CONFLICT (household_id) DO NOTHING")
        locked = select(ACCOUNT.c.household_id, ACCOUNT.c.id, ACCOUNT.c.balance, ACCOUNT.c.version, ACCOUNT.c.held).where(
            among(session, ACCOUNT.c.household_id, households)
        ).order_by(ACCOUNT.c.household_id).with_for_update(key_share=True)
        for h, a, b, v, x in session.execute(locked).all():
            accounts[h] = [a, b, v]
            held_now[h] = x
    start = {h: (b, v) for h, (_, b, v) in accounts.items()}
    held_start = dict(held_now)
    postings: list[dict] = []
    balance_after: dict[str, int | None] = {}
    system_ids: dict[tuple[int, str], int] = {}
    for e in fresh:
        eid = entry_ids[e.idempotency_key]
        balance_after[e.idempotency_key] = None
        # Debits first, as `post` does.
        for ln in sorted(e.lines, key=lambda x: (x.household_id is None, x.amount >= 0, x.household_id or 0)):
            if ln.amount == 0:
                continue
            if ln.household_id is not None:
                account = accounts[ln.household_id]
                if account[1] + ln.amount < 0:
                    raise InsufficientPoints(account[1], -ln.amount)
                account[1] += ln.amount
                account[2] += 1
                postings.append({"entry_id": eid, "account_id": account[0], "amount": ln.amount, "seq": account[2], "balance_after": account[1]})
                if ln.household_id == e.household_id:
                    balance_after[e.idempotency_key] = account[1]
            else:
                if ln.system == SystemAccount.held:
                    held_now[e.household_id] += ln.amount
                    if held_now[e.household_id] < 0:
                        raise Conflict("not_held", "没有可兑付或释放的冻结积分", "No held points to settle or release", "points")
                key = (e.community_id, ln.system.value)
                if key not in system_ids:
                    system_ids[key] = system_account_id(session, e.community_id, ln.system)
                postings.append({"entry_id": eid, "account_id": system_ids[key], "amount": ln.amount, "seq": None, "balance_after": None})
    moved = [
        {"id": a, "delta": b - start[h][0], "n": v - start[h][1], "held": held_now[h] - held_start[h]}
        for h, (a, b, v) in sorted(accounts.items())
        if v != start[h][1] or held_now[h] != held_start[h]
    ]
    if moved:
        # Increments, not absolute values, and conditional: under the row locks they equal what was
        # computed above; the condition and the check constraints refuse an overdraft regardless.
        changed = len(session.execute(
            text(
                "UPDATE ledger_account AS a SET balance = a.balance + r.delta, version = a.version + r.n, held = a.held + r.held "
                "FROM json_to_recordset(CAST(:rows AS json)) AS r(id bigint, delta bigint, n bigint, held bigint) "
                "WHERE a.id = r.id AND a.balance + r.delta >= 0 AND a.held + r.held >= 0 RETURNING a.id"
            ),
            {"rows": json_document(moved)},
        ).all())
        if changed != len(moved):
            raise InsufficientPoints()
    bulk_insert(session, POSTING, postings)
    return balance_after


def _replay(session: Session, idempotency_key: str) -> Posted:
    entry_id = entry_by_key(session, idempotency_key)
    return Posted(entry_id, True, household_balance_after(session, entry_id))


def _already_reversed() -> Conflict:
    return Conflict("already_reversed", "该记录已被冲正，不能重复冲正", "This entry has already been reversed")


def get_entry(session: Session, entry_id: int) -> JournalEntry:
    entry = session.get(JournalEntry, entry_id)
    if entry is None:
        raise not_found("记账记录", "Ledger entry", "entry_id")
    return entry


def reverse(session: Session, entry_id: int, *, reason: str, actor_user_id: int | None, idempotency_key: str) -> int:
    """Post the mirror image of an entry, pointing at it. An entry is reversed at most once."""
    entry = get_entry(session, entry_id)
    replay = entry_by_key(session, idempotency_key)
    if replay is not None:
        return replay
    if entry.reverses_entry_id is not None:
        raise Conflict("cannot_reverse_correction", "冲正记录不能再被冲正", "A correction cannot itself be reversed")
    if session.execute(select(ENTRY.c.id).where(ENTRY.c.reverses_entry_id == entry_id)).scalar() is not None:
        raise _already_reversed()
    rows = session.execute(
        select(POSTING.c.amount, ACCOUNT.c.household_id, ACCOUNT.c.kind)
        .join(ACCOUNT, ACCOUNT.c.id == POSTING.c.account_id)
        .where(POSTING.c.entry_id == entry_id)
    ).all()
    lines = [
        Line(-amount, household_id=h) if h is not None else Line(-amount, system=SystemAccount(kind))
        for amount, h, kind in rows
    ]
    return post(
        session,
        community_id=entry.community_id,
        idempotency_key=idempotency_key,
        source=Source.correction,
        memo=f"冲正：{entry.memo}"[:200],
        lines=lines,
        household_id=entry.household_id,
        quantity_g=-entry.quantity_g if entry.quantity_g else None,
        category=entry.category,
        actor_user_id=actor_user_id,
        reverses_entry_id=entry_id,
        reason=reason,
    ).entry_id


def entry_by_key(session: Session, idempotency_key: str) -> int | None:
    return session.execute(select(ENTRY.c.id).where(ENTRY.c.idempotency_key == idempotency_key)).scalar()


def household_balance_after(session: Session, entry_id: int) -> int | None:
    return session.execute(
        select(POSTING.c.balance_after).where(POSTING.c.entry_id == entry_id, POSTING.c.seq.is_not(None)).limit(1)
    ).scalar()
