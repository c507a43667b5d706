"""The catalogue and redemptions (积分兑换): reserve like a card hold, fulfil, cancel, lapse.

A reservation holds points (ledger: household −N, held +N; the household row counts them as held) and stock (conditional UPDATE on the
item row) and counts against the household's period limit (conditional UPDATE on a counter row), all
in the caller's transaction: any refusal rolls every part back. Fulfilling moves held → redeemed;
cancelling or lapsing reverses the hold entry and gives the stock and the limit back.
Row locks are always taken in the order redemption → limit counter → household account → item, so
concurrent reservations, cancellations and lapses cannot deadlock; the item row, shared by every
household reserving it, is taken last and held only until commit. A catalogue item with unlimited
stock (services) is never locked by a reservation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import Session, select

from app.audit import service as audit
from app.core.db import utcnow
from app.identity.auth import MANAGERS, Principal, authorize
from app.kit.errors import BadRequest, Conflict, DomainError, not_found
from app.kit.pagination import page_by_id
from app.kit.sql import among, bulk_insert, json_document
from app.ledger import service as ledger
from app.ledger.models import Source, SystemAccount
from app.places.models import Household, HouseholdStatus
from app.places.service import get_community
from app.rewards.models import (
    LimitPeriod,
    Redemption,
    RedemptionPublic,
    RedemptionStatus,
    RedemptionUsage,
    RewardItem,
    RewardItemCreate,
    RewardItemPublic,
    RewardItemUpdate,
)

ITEM = RewardItem.__table__
REDEMPTION = Redemption.__table__
USAGE = RedemptionUsage.__table__


def _tz(session: Session, community_id: int) -> ZoneInfo:
    return ZoneInfo(get_community(session, community_id).timezone)


def _audit(session: Session, principal: Principal, action: str, object_type: str, object_id, community_id: int, **detail) -> None:
    audit.record(
        session,
        actor_user_id=principal.user_id,
        action=action,
        object_type=object_type,
        object_id=object_id,
        community_id=community_id,
        request_id=principal.request_id,
        detail=detail,
    )


def is_resident_of(session: Session, principal: Principal, community_id: int) -> bool:
    return any(
        (h := session.get(Household, hid)) is not None and h.community_id == community_id and h.status == HouseholdStatus.active
        for hid in principal.household_ids
    )


# --- catalogue ---------------------------------------------------------------------------------

def _available(item: RewardItem, now: datetime) -> bool:
    return (
        item.active
        and (item.available_from is None or item.available_from <= now)
        and (item.available_until is None or item.available_until > now)
        and (item.stock is None or item.stock > 0)
    )


def item_public(item: RewardItem, now: datetime | None = None) -> RewardItemPublic:
    return RewardItemPublic.model_validate(item, from_attributes=True, update={"available_now": _available(item, now or utcnow())})


def get_item(session: Session, item_id: int) -> RewardItem:
    item = session.get(RewardItem, item_id)
    if item is None:
        raise not_found("兑换物品", "Reward item", "item_id")
    return item


def create_item(session: Session, principal: Principal, community_id: int, data: RewardItemCreate) -> RewardItemPublic:
    item = RewardItem.model_validate(data, update={"community_id": community_id})
    session.add(item)
    session.flush()
    _audit(session, principal, "rewards.item_create", "reward_item", item.id, community_id, name=item.name, price=item.price_points, stock=item.stock)
    session.commit()
    return item_public(item)


def update_item(session: Session, principal: Principal, item_id: int, data: RewardItemUpdate) -> RewardItemPublic:
    item = get_item(session, item_id)
    changes = data.model_dump(exclude_unset=True)
    unlimited = changes.pop("unlimited_stock", None)
    no_limit = changes.pop("no_limit", None)
    for key in ("name", "price_points", "limit_period", "hold_hours", "active", "description"):
        if key in changes and changes[key] is None:
            raise BadRequest("invalid_value", f"{key} 不能为空", f"{key} cannot be null", key)
    values = dict(changes)
    if unlimited:
        values["stock"] = None
    elif "stock" in values and values["stock"] is None:
        values.pop("stock")
    if no_limit:
        values["limit_per_household"] = None
    start = values.get("available_from", item.available_from)
    end = values.get("available_until", item.available_until)
    if start and end and end <= start:
        raise BadRequest("invalid_period", "截止时间应晚于开始时间", "available_until must be after available_from", "available_until")
    values["updated_at"] = utcnow()
    # One UPDATE statement: a stock set here is absolute (a stocktake), applied under the row lock.
    session.execute(update(ITEM).where(ITEM.c.id == item.id).values(values))
    _audit(session, principal, "rewards.item_update", "reward_item", item.id, item.community_id, **{k: v for k, v in data.model_dump(mode="json", exclude_unset=True).items()})
    session.commit()
    session.refresh(item)
    return item_public(item)


def withdraw_item(session: Session, principal: Principal, item_id: int) -> None:
    """Take an item off the catalogue (it stays for the redemptions that name it)."""
    item = get_item(session, item_id)
    session.execute(update(ITEM).where(ITEM.c.id == item.id).values(active=False, updated_at=utcnow()))
    _audit(session, principal, "rewards.item_withdraw", "reward_item", item.id, item.community_id, name=item.name)
    session.commit()


def read_item(session: Session, item_id: int) -> RewardItemPublic:
    return item_public(get_item(session, item_id))


def list_items(session: Session, principal: Principal, community_id: int, include_unavailable: bool, cursor: str | None, limit: int):
    if include_unavailable:  # withdrawn and future items: the catalogue's keepers only
        authorize(session, principal, community_id, MANAGERS)
    now = utcnow()
    stmt = select(RewardItem).where(RewardItem.community_id == community_id)
    if not include_unavailable:
        stmt = stmt.where(
            RewardItem.active.is_(True),
            (RewardItem.available_from.is_(None)) | (RewardItem.available_from <= now),
            (RewardItem.available_until.is_(None)) | (RewardItem.available_until > now),
            (RewardItem.stock.is_(None)) | (RewardItem.stock > 0),
        )
    rows, next_cursor = page_by_id(session, stmt, RewardItem.id, cursor, limit)
    return [item_public(r, now) for r in rows], next_cursor


# --- redemption core (no permission checks; callers check who and consent) --------------------

def period_key(period: str, when: datetime, tz: ZoneInfo) -> str:
    local = when.astimezone(tz)
    if period == LimitPeriod.day:
        return local.date().isoformat()
    if period == LimitPeriod.week:
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    if period == LimitPeriod.month:
        return f"{local.year}-{local.month:02d}"
    if period == LimitPeriod.year:
        return str(local.year)
    return "ever"


def _out_of_stock() -> Conflict:
    return Conflict("out_of_stock", "库存不足", "Out of stock", "quantity")


def _limit_reached(item: RewardItem) -> Conflict:
    names = {"day": "每天", "week": "每周", "month": "每月", "year": "每年", "ever": "每户"}
    return Conflict(
        "limit_reached",
        f"已达兑换上限（{names.get(item.limit_period, '')}限{item.limit_per_household}件）",
        f"Household limit reached ({item.limit_per_household} per {item.limit_period})",
        "quantity",
    )


def redemption_by_key(session: Session, household_id: int, key: str) -> Redemption | None:
    return session.exec(select(Redemption).where(Redemption.household_id == household_id, Redemption.idempotency_key == key)).first()


def reserve(
    session: Session,
    household: Household,
    item_id: int,
    quantity: int,
    key: str,
    *,
    actor_user_id: int | None,
    now: datetime | None = None,
) -> tuple[Redemption, bool, int | None]:
    """Hold points, stock and the period limit for one item. Does not commit.

    Returns (redemption, replayed, balance after). A key seen before returns the first redemption.
    """
    existing = redemption_by_key(session, household.id, key)
    if existing is not None:
        return existing, True, _hold_balance(session, existing)
    now = now or utcnow()
    item = get_item(session, item_id)
    if item.community_id != household.community_id:
        raise not_found("兑换物品", "Reward item", "item_id")
    if household.status != HouseholdStatus.active:
        raise Conflict("household_inactive", "该住户已迁出，不能兑换", "This household has moved out", "household_id")
    if not item.active or (item.available_from and item.available_from > now) or (item.available_until and item.available_until <= now):
        raise Conflict("not_available", "该物品当前不可兑换", "This item is not available now", "item_id")
    if item.stock is not None and item.stock < quantity:
        raise _out_of_stock()  # sold out as last read: refuse before locking anything (the UPDATE below decides)
    points = item.price_points * quantity
    pkey = period_key(item.limit_period, now, _tz(session, household.community_id)) if item.limit_per_household else None
    row = {
        "community_id": household.community_id,
        "household_id": household.id,
        "item_id": item.id,
        "item_name": item.name,
        "quantity": quantity,
        "points": points,
        "status": RedemptionStatus.held.value,
        "idempotency_key": key,
        "period_key": pkey,
        "reserved_by_user_id": actor_user_id,
        "created_at": now,
        "expires_at": now + timedelta(hours=item.hold_hours),
    }
    # The key's unique index decides between concurrent retries: the others wait, then find the row.
    redemption_id = session.execute(
        pg_insert(REDEMPTION)
        .values(row)
        .on_conflict_do_nothing(index_elements=["household_id", "idempotency_key"])
        .returning(REDEMPTION.c.id)
    ).scalar()
    if redemption_id is None:
        existing = redemption_by_key(session, household.id, key)
        return existing, True, _hold_balance(session, existing)
    if pkey is not None:
        session.execute(
            pg_insert(USAGE)
            .values(household_id=household.id, item_id=item.id, period_key=pkey, used=0)
            .on_conflict_do_nothing(index_elements=["household_id", "item_id", "period_key"])
        )
        counted = session.execute(
            update(USAGE)
            .where(
                USAGE.c.household_id == household.id,
                USAGE.c.item_id == item.id,
                USAGE.c.period_key == pkey,
                USAGE.c.used + quantity <= item.limit_per_household,
            )
            .values(used=USAGE.c.used + quantity)
            .returning(USAGE.c.used)
        ).scalar()
        if counted is None:
            raise _limit_reached(item)
    posted = ledger.post(
        session,
        community_id=household.community_id,
        idempotency_key=f"redemption:{redemption_id}:hold",
        source=Source.redemption,
        memo=f"预约冻结 {item.name} ×{quantity}（兑付时扣除）"[:200],
        lines=[ledger.Line(-points, household_id=household.id), ledger.Line(points, system=SystemAccount.held)],
        household_id=household.id,
        occurred_at=now,
        actor_user_id=actor_user_id,
    )
    if item.stock is not None:
        # Last, so the item row (shared by every household reserving it) stays locked only until commit.
        taken = session.execute(
            update(ITEM).where(ITEM.c.id == item.id, ITEM.c.stock >= quantity).values(stock=ITEM.c.stock - quantity).returning(ITEM.c.stock)
        ).first()
        if taken is None:
            raise _out_of_stock()
    session.execute(update(REDEMPTION).where(REDEMPTION.c.id == redemption_id).values(hold_entry_id=posted.entry_id))
    return session.get(Redemption, redemption_id), False, posted.balance_after


def _hold_balance(session: Session, redemption: Redemption) -> int | None:
    return ledger.household_balance_after(session, redemption.hold_entry_id) if redemption.hold_entry_id else None


def _not_held(redemption: Redemption) -> Conflict:
    names = {"fulfilled": "已兑付", "cancelled": "已取消", "lapsed": "已过期释放", "held": "已过保留时间"}
    return Conflict(
        "redemption_not_held",
        f"该兑换{names.get(redemption.status, redemption.status)}，不能再操作",
        f"This redemption is {redemption.status}",
        "redemption_id",
        redemption_status=redemption.status,
    )


def fulfil(session: Session, redemption: Redemption, *, actor_user_id: int | None, consent: str | None, now: datetime | None = None) -> bool:
    """Hand over a held redemption: points move held → redeemed. Does not commit.

    Returns False when it was already fulfilled (a retry), True when fulfilled now.
    """
    now = now or utcnow()
    won = session.execute(
        update(REDEMPTION)
        .where(REDEMPTION.c.id == redemption.id, REDEMPTION.c.status == RedemptionStatus.held, REDEMPTION.c.expires_at > now)
        .values(status=RedemptionStatus.fulfilled.value, resolved_at=now, resolved_by_user_id=actor_user_id, consent=consent)
        .returning(REDEMPTION.c.id)
    ).scalar()
    if won is None:
        session.refresh(redemption)
        if redemption.status == RedemptionStatus.fulfilled:
            return False
        raise _not_held(redemption)
    posted = ledger.post(
        session,
        community_id=redemption.community_id,
        idempotency_key=f"redemption:{redemption.id}:fulfil",
        source=Source.redemption,
        memo=f"兑付 {redemption.item_name} ×{redemption.quantity}"[:200],
        lines=[ledger.Line(-redemption.points, system=SystemAccount.held), ledger.Line(redemption.points, system=SystemAccount.redeemed)],
        household_id=redemption.household_id,
        occurred_at=now,
        actor_user_id=actor_user_id,
    )
    session.execute(update(REDEMPTION).where(REDEMPTION.c.id == redemption.id).values(settle_entry_id=posted.entry_id))
    session.refresh(redemption)
    return True


def release(
    session: Session,
    redemption_id: int,
    status: RedemptionStatus,
    *,
    actor_user_id: int | None,
    reason: str,
    now: datetime | None = None,
) -> bool:
    """Cancel or lapse a held redemption: reverse the hold, give back stock and the limit. Does not commit.

    Returns False when another caller released or fulfilled it first (nothing is done twice).
    """
    now = now or utcnow()
    cond = [REDEMPTION.c.id == redemption_id, REDEMPTION.c.status == RedemptionStatus.held]
    if status == RedemptionStatus.lapsed:
        cond.append(REDEMPTION.c.expires_at <= now)
    row = session.execute(
        update(REDEMPTION)
        .where(*cond)
        .values(status=status.value, resolved_at=now, resolved_by_user_id=actor_user_id, reason=reason[:200])
        .returning(REDEMPTION.c.household_id, REDEMPTION.c.item_id, REDEMPTION.c.quantity, REDEMPTION.c.period_key, REDEMPTION.c.hold_entry_id)
    ).first()
    if row is None:
        return False
    household_id, item_id, quantity, pkey, hold_entry_id = row
    if pkey is not None:
        session.execute(
            update(USAGE)
            .where(USAGE.c.household_id == household_id, USAGE.c.item_id == item_id, USAGE.c.period_key == pkey, USAGE.c.used >= quantity)
            .values(used=USAGE.c.used - quantity)
        )
    release_entry = ledger.reverse(
        session, hold_entry_id, reason=reason[:200], actor_user_id=actor_user_id, idempotency_key=f"redemption:{redemption_id}:release"
    )
    session.execute(update(ITEM).where(ITEM.c.id == item_id, ITEM.c.stock.is_not(None)).values(stock=ITEM.c.stock + quantity))
    session.execute(update(REDEMPTION).where(REDEMPTION.c.id == redemption_id).values(settle_entry_id=release_entry))
    return True


def lapse_due(session: Session, community_id: int | None = None, *, now: datetime | None = None, batch: int = 200) -> tuple[int, int]:
    """Release every held redemption past its time. One short transaction per redemption; the
    conditional status UPDATE makes a second instance running at once skip what the first took.
    Returns (redemptions lapsed, points released)."""
    now = now or utcnow()
    lapsed = points = 0
    last_id = 0
    while True:
        stmt = select(REDEMPTION.c.id, REDEMPTION.c.points).where(
            REDEMPTION.c.status == RedemptionStatus.held, REDEMPTION.c.expires_at <= now, REDEMPTION.c.id > last_id
        )
        if community_id is not None:
            stmt = stmt.where(REDEMPTION.c.community_id == community_id)
        due = session.execute(stmt.order_by(REDEMPTION.c.id).limit(batch)).all()
        session.commit()
        if not due:
            break
        for rid, pts in due:
            last_id = rid
            if release(session, rid, RedemptionStatus.lapsed, actor_user_id=None, reason="超时未领取，自动释放", now=now):
                lapsed += 1
                points += pts
            session.commit()
    return lapsed, points


def redemption_public(session: Session, redemption: Redemption, *, replayed: bool = False, balance_after: int | None = None) -> RedemptionPublic:
    return RedemptionPublic.model_validate(redemption, from_attributes=True, update={"replayed": replayed, "balance_after": balance_after})


def get_redemption(session: Session, redemption_id: int) -> Redemption:
    redemption = session.get(Redemption, redemption_id)
    if redemption is None:
        raise not_found("兑换记录", "Redemption", "redemption_id")
    return redemption


def list_for_household(session: Session, household_id: int, status: RedemptionStatus | None, cursor: str | None, limit: int):
    stmt = select(Redemption).where(Redemption.household_id == household_id)
    if status:
        stmt = stmt.where(Redemption.status == status)
    return page_by_id(session, stmt, Redemption.id, cursor, limit)


def list_for_community(session: Session, community_id: int, status: RedemptionStatus | None, household_id: int | None, cursor: str | None, limit: int):
    stmt = select(Redemption).where(Redemption.community_id == community_id)
    if status:
        stmt = stmt.where(Redemption.status == status)
    if household_id is not None:
        stmt = stmt.where(Redemption.household_id == household_id)
    return page_by_id(session, stmt, Redemption.id, cursor, limit)


# --- many residents at the counter at once (an exchange day's queue) ---------------------------

@dataclass
class CounterSpend:
    """One resident's turn at the counter for `spend_many`: their household, the lines (item id,
    quantity), the request's idempotency key and how they consented."""

    household: Household
    lines: list[tuple[int, int]]
    key: str
    consent: str


def counter_keys(key: str, lines: int) -> list[str]:
    """The redemptions' idempotency keys of a counter request (one per line)."""
    return [f"counter:{key}:{i}" for i in range(lines)]


def redemptions_by_keys(session: Session, pairs: list[tuple[int, str]]) -> dict[tuple[int, str], Redemption]:
    """(household id, key) → redemption, for many pairs in one query."""
    if not pairs:
        return {}
    wanted = set(pairs)
    rows = session.exec(
        select(Redemption).where(
            among(session, REDEMPTION.c.household_id, {h for h, _ in pairs}), among(session, REDEMPTION.c.idempotency_key, {k for _, k in pairs})
        )
    ).all()
    return {(r.household_id, r.idempotency_key): r for r in rows if (r.household_id, r.idempotency_key) in wanted}


def _update_rows(session: Session, table, keys: tuple[str, ...], rows: list[dict[str, Any]], *, add: bool = False) -> int:
    """UPDATE `table` from rows, matched on `keys`, setting (or with add=True increasing) the other
    columns given; one statement. Returns the number of rows changed."""
    if not rows:
        return 0
    columns = [c for c in rows[0] if c not in keys]
    types = ", ".join(f"{c} {table.c[c].type.compile(dialect=session.get_bind().dialect)}" for c in rows[0])
    sets = ", ".join(f"{c} = t.{c} + r.{c}" if add else f"{c} = r.{c}" for c in columns)
    match = " AND ".join(f"t.{c} = r.{c}" for c in keys)
    sql = f"UPDATE {table.name} AS t SET {sets} FROM json_to_recordset(CAST(:rows AS json)) AS r({types}) WHERE {match} RETURNING 1"
    return len(session.execute(text(sql), {"rows": json_document(rows)}).all())


def spend_many(
    session: Session, community_id: int, spends: list[CounterSpend], *, actor_user_id: int | None, now: datetime | None = None
) -> list[list[RedemptionPublic] | DomainError | None]:
    """Reserve and hand over at once (柜台兑换) for many residents, set-based: a few statements for
    the whole queue instead of some twenty per resident. Does not commit.

    Each spend is all or nothing and is decided in the order given, with the same rules as
    `reserve` + `fulfil`: the household's limit counters, account and the items' stock are locked
    (in the order redemption → limit counter → household account → item, as everywhere), every
    spend is checked against what the spends before it took, and only then is anything counted,
    posted or taken — so stock is never oversold and points never go negative (the conditional
    UPDATEs and the database's check constraints stand behind the decision). A refused spend gets
    its error and leaves nothing behind. A spend whose keys another caller stored meanwhile gets
    None (read it back: it was done once). Each line's ledger entries are those of `reserve` and
    `fulfil` (household → held → redeemed), keyed by the redemption.
    """
    now = now or utcnow()
    tz = _tz(session, community_id)
    out: list[list[RedemptionPublic] | DomainError | None] = [[] for _ in spends]
    item_ids = {i for s in spends for i, _ in s.lines}
    items = {i.id: i for i in session.exec(select(RewardItem).where(among(session, ITEM.c.id, item_ids)))} if item_ids else {}

    rows: list[dict[str, Any]] = []
    owner: list[int] = []  # row → spend
    for n, s in enumerate(spends):
        try:
            if s.household.community_id != community_id:
                raise not_found("住户", "Household", "household_id")
            if s.household.status != HouseholdStatus.active:
                raise Conflict("household_inactive", "该住户已迁出，不能兑换", "This household has moved out", "household_id")
            lines = []
            for (item_id, quantity), key in zip(s.lines, counter_keys(s.key, len(s.lines)), strict=True):
                item = items.get(item_id)
                if item is None or item.community_id != community_id:
                    raise not_found("兑换物品", "Reward item", "item_id")
                if not item.active or (item.available_from and item.available_from > now) or (item.available_until and item.available_until <= now):
                    raise Conflict("not_available", "该物品当前不可兑换", "This item is not available now", "item_id")
                lines.append({
                    "community_id": community_id, "household_id": s.household.id, "item_id": item.id, "item_name": item.name,
                    "quantity": quantity, "points": item.price_points * quantity, "status": RedemptionStatus.held.value,
                    "idempotency_key": key,
                    "period_key": period_key(item.limit_period, now, tz) if item.limit_per_household else None,
                    "reserved_by_user_id": actor_user_id, "created_at": now, "expires_at": now + timedelta(hours=item.hold_hours),
                })
        except DomainError as e:
            out[n] = e
            continue
        rows += lines
        owner += [n] * len(lines)
    if not rows:
        return out

    # The keys' unique index referees concurrent retries, as in `reserve`.
    inserted = bulk_insert(session, REDEMPTION, rows, "ON CONFLICT (household_id, idempotency_key) DO NOTHING RETURNING id, household_id, idempotency_key")
    ids = {(h, k): i for i, h, k in inserted}
    for r, n in zip(rows, owner, strict=True):
        # The first row of a key got it; a repeat of the key later in the queue is a replay.
        r["id"] = ids.pop((r["household_id"], r["idempotency_key"]), None)
        r["consent"] = spends[n].consent
        if r["id"] is None and not isinstance(out[n], DomainError):
            out[n] = None

    # Lock what the decision reads: limit counters, household accounts, stocked items. FOR NO KEY
    # UPDATE, as the UPDATEs in `reserve` take: it leaves alone the key-share locks that inserting
    # rows referring to them (redemptions, postings) takes, so concurrent queues cannot deadlock.
    usage_keys = sorted({(r["household_id"], r["item_id"], r["period_key"]) for r in rows if r["period_key"] is not None})
    used: dict[tuple[int, int, str], int] = {}
    if usage_keys:
        fresh = [{"household_id": h, "item_id": i, "period_key": p, "used": 0} for h, i, p in usage_keys]
        bulk_insert(session, USAGE, fresh, "ON CONFLICT DO NOTHING")
        locked = session.execute(
            text(
                "SELECT u.household_id, u.item_id, u.period_key, u.used FROM redemption_usage AS u "
                "JOIN json_to_recordset(CAST(:keys AS json)) AS k(household_id bigint, item_id bigint, period_key varchar) "
                "USING (household_id, item_id, period_key) ORDER BY 1, 2, 3 FOR NO KEY UPDATE OF u"
            ),
            {"keys": json_document(fresh)},
        ).all()
        used = {(h, i, p): u for h, i, p, u in locked}
    balance = ledger.balances_of(session, {r["household_id"] for r in rows}, lock=True)
    stocked = sorted(i for i in {r["item_id"] for r in rows} if items[i].stock is not None)
    stock: dict[int, int] = {}
    if stocked:
        stmt = select(ITEM.c.id, ITEM.c.stock).where(among(session, ITEM.c.id, stocked)).order_by(ITEM.c.id)
        stock = dict(session.execute(stmt.with_for_update(key_share=True)).all())

    # Decide, spend by spend, against what the spends before took.
    by_spend: dict[int, list[dict[str, Any]]] = {}
    for r, n in zip(rows, owner, strict=True):
        by_spend.setdefault(n, []).append(r)
    taken: list[dict[str, Any]] = []
    refused_ids: list[int] = []
    for n, lines in by_spend.items():
        if out[n] is None or isinstance(out[n], DomainError):
            refused_ids += [r["id"] for r in lines if r["id"] is not None]
            continue
        want_stock: dict[int, int] = {}
        want_used: dict[tuple[int, int, str], int] = {}
        for r in lines:
            want_stock[r["item_id"]] = want_stock.get(r["item_id"], 0) + r["quantity"]
            if r["period_key"] is not None:
                k = (r["household_id"], r["item_id"], r["period_key"])
                want_used[k] = want_used.get(k, 0) + r["quantity"]
        household_id = lines[0]["household_id"]
        points = sum(r["points"] for r in lines)
        error: DomainError | None = None
        if any(i in stock and stock[i] < q for i, q in want_stock.items()):
            error = _out_of_stock()
        elif any(used[k] + q > items[k[1]].limit_per_household for k, q in want_used.items()):
            error = _limit_reached(next(items[k[1]] for k, q in want_used.items() if used[k] + q > items[k[1]].limit_per_household))
        elif balance[household_id] < points:
            error = ledger.InsufficientPoints(balance[household_id], points)
        if error is not None:
            out[n] = error
            refused_ids += [r["id"] for r in lines]
            continue
        for i, q in want_stock.items():
            if i in stock:
                stock[i] -= q
        for k, q in want_used.items():
            used[k] += q
        balance[household_id] -= points
        taken += lines

    if refused_ids:  # rows this transaction inserted and nobody else has seen: as if never written
        session.execute(REDEMPTION.delete().where(among(session, REDEMPTION.c.id, refused_ids)))
    if not taken:
        return out

    counted: dict[tuple[int, int, str], int] = {}
    for r in taken:
        if r["period_key"] is not None:
            k = (r["household_id"], r["item_id"], r["period_key"])
            counted[k] = counted.get(k, 0) + r["quantity"]
    # Conditional, as in `reserve`: a counter never passes its limit.
    for h, i, p in sorted(counted):
        if used[(h, i, p)] > items[i].limit_per_household:
            raise _limit_reached(items[i])
    counter_rows = [{"household_id": h, "item_id": i, "period_key": p, "used": q} for (h, i, p), q in sorted(counted.items())]
    if _update_rows(session, USAGE, ("household_id", "item_id", "period_key"), counter_rows, add=True) != len(counter_rows):
        raise Conflict("limit_reached", "已达兑换上限", "Household limit reached", "quantity")

    holds = ledger.post_many(session, [
        ledger.Entry(
            community_id=community_id, idempotency_key=f"redemption:{r['id']}:hold", source=Source.redemption,
            memo=f"兑换 {r['item_name']} ×{r['quantity']}"[:200],
            lines=(ledger.Line(-r["points"], household_id=r["household_id"]), ledger.Line(r["points"], system=SystemAccount.held)),
            household_id=r["household_id"], occurred_at=now, actor_user_id=actor_user_id,
        )
        for r in taken
    ])
    settles = ledger.post_many(session, [
        ledger.Entry(
            community_id=community_id, idempotency_key=f"redemption:{r['id']}:fulfil", source=Source.redemption,
            memo=f"兑付 {r['item_name']} ×{r['quantity']}"[:200],
            lines=(ledger.Line(-r["points"], system=SystemAccount.held), ledger.Line(r["points"], system=SystemAccount.redeemed)),
            household_id=r["household_id"], occurred_at=now, actor_user_id=actor_user_id,
        )
        for r in taken
    ])
    taken_stock: dict[int, int] = {}
    for r in taken:
        if items[r["item_id"]].stock is not None:
            taken_stock[r["item_id"]] = taken_stock.get(r["item_id"], 0) + r["quantity"]
    for item_id, q in sorted(taken_stock.items()):
        left = session.execute(
            update(ITEM).where(ITEM.c.id == item_id, ITEM.c.stock >= q).values(stock=ITEM.c.stock - q).returning(ITEM.c.stock)
        ).first()
        if left is None:
            raise _out_of_stock()
    for r, hold, settle in zip(taken, holds, settles, strict=True):
        r.update(status=RedemptionStatus.fulfilled.value, hold_entry_id=hold.entry_id, settle_entry_id=settle.entry_id,
                 resolved_at=now, resolved_by_user_id=actor_user_id, balance_after=hold.balance_after)
    _update_rows(session, REDEMPTION, ("id",), [
        {k: r[k] for k in ("id", "status", "hold_entry_id", "settle_entry_id", "resolved_at", "resolved_by_user_id", "consent")} for r in taken
    ])
    for r, n in zip(rows, owner, strict=True):
        if r.get("status") == RedemptionStatus.fulfilled.value:
            out[n].append(RedemptionPublic.model_validate({**r, "replayed": False}))
    return out
