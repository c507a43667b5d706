"""Compost rules: a bin's life, drops that earn points, readings, and harvests shared as claims.

Who may ask is the routes' business (app/compost/auth.py): the functions here trust their caller, and
check only what depends on the row or the body. Callers outside HTTP (the demo generator) act as the
community's own staff."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from sqlmodel import select as select_rows

from app.audit import service as audit
from app.checkins import service as checkins
from app.checkins import setup as field_setup
from app.checkins.scan import FUTURE_SKEW, MAX_AGE
from app.compost.models import (
    CURING_DAYS,
    BinState,
    CompostBin,
    CompostBinCreate,
    CompostBinPublic,
    CompostClaim,
    CompostClaimPublic,
    CompostDrop,
    CompostDropCreate,
    CompostDropPublic,
    CompostHarvest,
    CompostReading,
    CompostReadingCreate,
    CompostSite,
    CompostSiteCreate,
    HarvestPublic,
)
from app.core.db import utcnow
from app.identity.auth import Principal
from app.kit.errors import BadRequest, Conflict, Unprocessable, not_found
from app.kit.pagination import page_by_id, page_by_keys
from app.kit.sql import among, answered, fresh_and_stored, insert_new, own_replay
from app.rules import service as rules

BIN = CompostBin.__table__
DROP = CompostDrop.__table__
CLAIM = CompostClaim.__table__
STATE_ZH = {"accepting": "接收中", "curing": "腐熟中", "ready": "已腐熟", "harvested": "已开箱"}



def _tz(session: Session, community_id: int) -> ZoneInfo:
    return field_setup.load_setup(session, community_id).tz


# --- sites and bins ----------------------------------------------------------------------------

def get_site(session: Session, site_id: int) -> CompostSite:
    site = session.get(CompostSite, site_id)
    if site is None:
        raise not_found("堆肥点", "Compost site", "site_id")
    return site


def create_site(session: Session, principal: Principal, community_id: int, data: CompostSiteCreate) -> CompostSite:
    site = CompostSite(community_id=community_id, **data.model_dump())
    session.add(site)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict("duplicate", "该堆肥点已存在", "This compost site already exists") from None
    audit.record_act(session, principal, "compost_site.create", site, community_id, name=site.name)
    session.commit()
    return site


def list_sites(session: Session, community_id: int, cursor: str | None, limit: int):
    return page_by_id(session, select_rows(CompostSite).where(CompostSite.community_id == community_id), CompostSite.id, cursor, limit)


def get_bin(session: Session, bin_id: int) -> CompostBin:
    row = session.get(CompostBin, bin_id)
    if row is None:
        raise not_found("堆肥箱", "Compost bin", "bin_id")
    return row


def _fed(session: Session, bins: list[CompostBin]) -> dict[int, int]:
    if not bins:
        return {}
    conds = [(DROP.c.bin_id == b.id) & (DROP.c.cycle == b.cycle) for b in bins]
    from sqlalchemy import or_

    # What the harvest will share out: reversed drops are not in it.
    return dict(
        session.execute(
            select(DROP.c.bin_id, func.coalesce(func.sum(DROP.c.weight_g), 0))
            .where(or_(*conds), rules.not_reversed("compost_drop", DROP.c.id)).group_by(DROP.c.bin_id)
        ).all()
    )


def bin_public(session: Session, bins: list[CompostBin]) -> list[CompostBinPublic]:
    fed = _fed(session, bins)
    return [CompostBinPublic.model_validate(b, update={"fed_g": fed.get(b.id, 0)}) for b in bins]


def create_bin(session: Session, principal: Principal, site_id: int, data: CompostBinCreate) -> CompostBinPublic:
    site = get_site(session, site_id)
    row = CompostBin(community_id=site.community_id, site_id=site.id, **data.model_dump())
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict("duplicate", "该堆肥箱已存在", "This compost bin already exists") from None
    audit.record_act(session, principal, "compost_bin.create", row, site.community_id, name=row.name, method=row.method)
    session.commit()
    return bin_public(session, [row])[0]


def list_bins(session: Session, community_id: int, cursor: str | None, limit: int) -> tuple[list[CompostBinPublic], str | None]:
    bins, next_cursor = page_by_id(session, select_rows(CompostBin).where(CompostBin.community_id == community_id), CompostBin.id, cursor, limit)
    return bin_public(session, list(bins)), next_cursor


def read_bin(session: Session, bin_id: int) -> CompostBinPublic:
    row = get_bin(session, bin_id)
    return bin_public(session, [row])[0]


def _move(session: Session, row: CompostBin, expected: set[str], values: dict[str, Any]) -> None:
    """Change state only if the bin is still where we saw it (a concurrent change loses cleanly)."""
    done = session.execute(
        update(BIN).where(BIN.c.id == row.id, BIN.c.state.in_(expected), BIN.c.cycle == row.cycle).values(**values)
    ).rowcount
    if done != 1:
        session.rollback()
        raise _wrong_state(row.state)
    for k, v in values.items():
        setattr(row, k, v)


def _wrong_state(state: str) -> Conflict:
    return Conflict(
        "bin_state",
        f"堆肥箱当前状态为“{STATE_ZH.get(state, state)}”，不能进行此操作",
        f"The bin is {state}: not possible now",
        "state",
    )


def close_bin(session: Session, principal: Principal, bin_id: int) -> CompostBinPublic:
    """Full: stop accepting and start curing; the expected ready date follows from the method."""
    row = get_bin(session, bin_id)
    now = utcnow()
    days = row.curing_days or CURING_DAYS[row.method]
    ready_on = now.astimezone(_tz(session, row.community_id)).date() + timedelta(days=days)
    _move(session, row, {BinState.accepting}, {"state": BinState.curing.value, "closed_at": now, "ready_on": ready_on})
    audit.record_act(session, principal, "compost_bin.close", row, row.community_id, cycle=row.cycle, ready_on=str(ready_on))
    session.commit()
    return bin_public(session, [row])[0]


def mark_ready(session: Session, principal: Principal, bin_id: int) -> CompostBinPublic:
    row = get_bin(session, bin_id)
    _move(session, row, {BinState.curing}, {"state": BinState.ready.value})
    audit.record_act(session, principal, "compost_bin.ready", row, row.community_id, cycle=row.cycle)
    session.commit()
    return bin_public(session, [row])[0]


def reopen_bin(session: Session, principal: Principal, bin_id: int) -> CompostBinPublic:
    """After a harvest the emptied bin starts a new cycle."""
    row = get_bin(session, bin_id)
    _move(
        session,
        row,
        {BinState.harvested},
        {"state": BinState.accepting.value, "cycle": row.cycle + 1, "closed_at": None, "ready_on": None, "opened_at": None},
    )
    audit.record_act(session, principal, "compost_bin.reopen", row, row.community_id, cycle=row.cycle)
    session.commit()
    return bin_public(session, [row])[0]


# --- drops -------------------------------------------------------------------------------------

def record_drop(session: Session, principal: Principal, bin_id: int, data: CompostDropCreate) -> tuple[CompostDropPublic, bool]:
    """A household's kitchen waste into a bin; earns points. `record_drops` of one: (drop, created),
    or its refusal raised."""
    return record_drops(session, principal, bin_id, [data])[0]


def record_drops(
    session: Session, principal: Principal, bin_id: int, batch: list[CompostDropCreate]
) -> list[tuple[CompostDropPublic, bool]]:
    """Drops into one bin — one at the bin (`record_drop`), a phone's queue, the demo generator's
    day — set-based, one commit: the one implementation of a drop's rules.

    A client id stored before (or sent earlier in the batch) is answered with the stored drop, not
    created. A new drop needs the household behind its code (the scan's definition, checkins), a time
    neither in the future nor older than 72 hours, and the bin accepting; it earns the points of the
    rules in force at its time, cut to the household's daily cap on its local day, credited through
    the ledger keyed by drop. All or nothing: a refusal refuses the batch with its error (the answer
    of a single drop). Each drop's (drop, created), in the order sent.
    """
    row = get_bin(session, bin_id)
    community_id = row.community_id
    fresh, stored = fresh_and_stored(session, CompostDrop, community_id, batch, principal.user_id)
    made: list[CompostDrop] = []
    if fresh:
        households = checkins.households_for_scans(session, principal, community_id, [d.payload for d in fresh])
        now = utcnow()
        for at in (d.dropped_at or now for d in fresh):
            if at > now + FUTURE_SKEW:
                raise Unprocessable("in_future", "投放时间晚于当前时间", "The drop time is in the future", "dropped_at")
            if at < now - MAX_AGE:
                raise Unprocessable("too_old", "投放记录已超过 72 小时，不能补录", "The drop is too old to be recorded", "dropped_at")
        # Lock the bin row against a concurrent close; then it must still be accepting.
        state, cycle = session.execute(select(BIN.c.state, BIN.c.cycle).where(BIN.c.id == bin_id).with_for_update(read=True)).one()
        if state != BinState.accepting:
            session.rollback()
            raise Conflict(
                "bin_not_accepting",
                f"该堆肥箱{STATE_ZH.get(state, state)}，暂不接收投放",
                f"This bin is not accepting drops (it is {state})",
                "bin_id",
            )
        rules_for = rules.resolver(session, community_id)
        rows = []
        for d in fresh:
            at = d.dropped_at or now
            rule = rules_for(at)
            rows.append({
                "community_id": community_id, "client_id": d.client_id, "bin_id": bin_id, "cycle": cycle,
                "household_id": households[d.payload], "weight_g": d.weight_g, "kind": d.kind.value,
                "points": rule.compost_per_kg * d.weight_g // 1000 + rule.compost_per_drop,
                "dropped_at": at, "recorded_at": now, "recorded_by": principal.user_id, "typed": checkins.typed(d.payload),
            })
        ids = {c: i for i, c in insert_new(session, DROP, rows)}
        if len(ids) < len(rows):  # the same client ids, sent at once by another upload: that one won
            session.rollback()
            return record_drops(session, principal, bin_id, batch)
        for r in rows:
            r["id"] = ids[r["client_id"]]
        _credit_drops(session, community_id, rules_for, rows)
        made = list(session.scalars(select(CompostDrop).where(among(session, CompostDrop.id, list(ids.values())))))
    drops = list(stored.values()) + made
    public = {d.client_id: p for d, p in zip(drops, _drop_public(session, drops), strict=True)}
    session.commit()
    return answered(batch, public, stored)


def _credit_drops(session: Session, community_id: int, rules_for, rows: list[dict[str, Any]]) -> None:
    """Daily cap (rules.cap_rows), then one ledger call for the drops' points, keyed by drop."""
    from app.ledger import service as ledger
    from app.ledger.service import Credit

    earning = [r for r in rows if r["points"] > 0]
    if not earning:
        return
    tz = _tz(session, community_id)
    rules.cap_rows(session, DROP, earning, lambda r: rules_for(r["dropped_at"]).daily_cap,
                   lambda r: r["dropped_at"].astimezone(tz).date())
    ledger.post_credits(
        session,
        [
            Credit(
                community_id=community_id,
                household_id=r["household_id"],
                points=r["points"],
                source="compost",
                idempotency_key=f"compost:{r['id']}",
                memo=f"堆肥投放 {r['weight_g'] / 1000:.1f} kg",
                occurred_at=r["dropped_at"],
                quantity_g=r["weight_g"],
                category="kitchen",
            )
            for r in earning
            if r["points"] > 0
        ],
    )


def _drop_public(session: Session, drops: list[CompostDrop]) -> list[CompostDropPublic]:
    gone = rules.reversed_ids(session, "compost_drop", [d.id for d in drops])
    return [CompostDropPublic.model_validate(d, update={"reversed": d.id in gone}) for d in drops]


def list_drops(session: Session, bin_id: int, cursor: str | None, limit: int):
    rows, next_cursor = page_by_id(session, select_rows(CompostDrop).where(CompostDrop.bin_id == bin_id), CompostDrop.id, cursor, limit)
    return _drop_public(session, list(rows)), next_cursor


def get_drop(session: Session, drop_id: int) -> CompostDrop:
    drop = session.get(CompostDrop, drop_id)
    if drop is None:
        raise not_found("投放记录", "Compost drop", "drop_id")
    return drop


def reverse_drop(session: Session, principal: Principal, drop_id: int, reason: str) -> CompostDropPublic:
    drop = get_drop(session, drop_id)
    rules.reverse_act(
        session,
        principal,
        community_id=drop.community_id,
        act="compost_drop",
        act_id=drop.id,
        credit_key=f"compost:{drop.id}" if drop.points > 0 else None,
        reason=reason,
        cap_day=(drop.household_id, rules.aware(drop.dropped_at).astimezone(_tz(session, drop.community_id)).date(), drop.points) if drop.points > 0 else None,
    )
    session.commit()
    return _drop_public(session, [drop])[0]


# --- readings ----------------------------------------------------------------------------------

def add_reading(session: Session, principal: Principal, bin_id: int, data: CompostReadingCreate) -> CompostReading:
    row = get_bin(session, bin_id)
    if data.temperature_c is None and data.moisture_pct is None and data.smell is None and not data.notes:
        raise BadRequest("empty_reading", "请至少填写一项读数", "Record at least one reading", "temperature_c")
    def stored() -> CompostReading | None:
        return session.scalars(
            select(CompostReading).where(CompostReading.bin_id == bin_id, CompostReading.client_id == data.client_id)
        ).first()

    existing = own_replay(stored(), principal.user_id)
    if existing is not None:
        return existing
    reading = CompostReading(
        bin_id=bin_id, cycle=row.cycle, recorded_by=principal.user_id,
        **data.model_dump(exclude={"smell"}), smell=data.smell.value if data.smell else None,
    )
    session.add(reading)
    try:
        session.commit()
    except IntegrityError:  # the same reading sent twice at once
        session.rollback()
        return stored()
    return reading


def list_readings(session: Session, bin_id: int, cursor: str | None, limit: int):
    return page_by_id(session, select_rows(CompostReading).where(CompostReading.bin_id == bin_id), CompostReading.id, cursor, limit)


# --- harvest and claims ------------------------------------------------------------------------

def share(total: int, weights: dict[int, int]) -> dict[int, int]:
    """Split `total` grams in proportion to `weights`, in whole grams that add up exactly
    (largest remainder; ties go to the smaller key, so the split is reproducible)."""
    whole = sum(weights.values())
    if whole <= 0:
        return {}
    base = {k: total * w // whole for k, w in weights.items()}
    left = total - sum(base.values())
    order = sorted(weights, key=lambda k: (-(total * weights[k] % whole), k))
    for k in order[:left]:
        base[k] += 1
    return base


def harvest(session: Session, principal: Principal, bin_id: int, compost_g: int) -> HarvestPublic:
    """Open a ready bin (开箱): its compost is shared among the households that fed this cycle."""
    row = get_bin(session, bin_id)
    now = utcnow()
    cycle = row.cycle
    _move(session, row, {BinState.ready}, {"state": BinState.harvested.value, "opened_at": now})
    fed = dict(
        session.execute(
            select(DROP.c.household_id, func.sum(DROP.c.weight_g))
            .where(DROP.c.bin_id == bin_id, DROP.c.cycle == cycle, rules.not_reversed("compost_drop", DROP.c.id))
            .group_by(DROP.c.household_id)
        ).all()
    )
    record = CompostHarvest(
        community_id=row.community_id, bin_id=bin_id, cycle=cycle, compost_g=compost_g, harvested_at=now, recorded_by=principal.user_id
    )
    session.add(record)
    session.flush()
    shares = share(compost_g, {h: int(w) for h, w in fed.items()})
    claims = [
        CompostClaim(harvest_id=record.id, household_id=h, fed_g=int(fed[h]), share_g=g) for h, g in sorted(shares.items())
    ]
    session.add_all(claims)
    audit.record_act(session, principal, "compost_bin.harvest", row, row.community_id, cycle=cycle, compost_g=compost_g, households=len(claims))
    session.commit()
    return HarvestPublic(
        id=record.id, bin_id=bin_id, cycle=cycle, compost_g=compost_g, harvested_at=now,
        claims=[CompostClaimPublic.model_validate(c, update={"bin_id": bin_id}) for c in claims],
    )


def list_harvests(session: Session, bin_id: int, cursor: str | None, limit: int) -> tuple[list[HarvestPublic], str | None]:
    page, next_cursor = page_by_id(session, select_rows(CompostHarvest).where(CompostHarvest.bin_id == bin_id), CompostHarvest.id, cursor, limit)
    harvests = list(page)
    claims: dict[int, list[CompostClaimPublic]] = defaultdict(list)
    if harvests:
        for c in session.scalars(
            select(CompostClaim).where(CompostClaim.harvest_id.in_([h.id for h in harvests])).order_by(CompostClaim.id)
        ):
            claims[c.harvest_id].append(CompostClaimPublic.model_validate(c, update={"bin_id": bin_id}))
    return [
        HarvestPublic(id=h.id, bin_id=bin_id, cycle=h.cycle, compost_g=h.compost_g, harvested_at=h.harvested_at, claims=claims[h.id])
        for h in harvests
    ], next_cursor


def get_harvest(session: Session, harvest_id: int) -> CompostHarvest:
    harvest_row = session.get(CompostHarvest, harvest_id)
    if harvest_row is None:
        raise not_found("开箱记录", "Compost harvest", "harvest_id")
    return harvest_row


def get_claim(session: Session, claim_id: int) -> CompostClaim:
    claim = session.get(CompostClaim, claim_id)
    if claim is None:
        raise not_found("领取记录", "Compost claim", "claim_id")
    return claim


def collect_claim(session: Session, principal: Principal, claim_id: int) -> CompostClaimPublic:
    """Hand the compost over (领取肥料): once only, whoever asks twice or at the same time."""
    claim = get_claim(session, claim_id)
    harvest_row = get_harvest(session, claim.harvest_id)
    now = utcnow()
    done = session.execute(
        update(CLAIM)
        .where(CLAIM.c.id == claim_id, CLAIM.c.collected_at.is_(None))
        .values(collected_at=now, collected_by=principal.user_id)
    ).rowcount
    if done != 1:
        session.rollback()
        raise Conflict("already_collected", "该户的肥料已领取", "This compost has already been collected")
    audit.record(
        session, actor_user_id=principal.user_id, action="compost_claim.collect", object_type="compost_claim",
        object_id=claim_id, community_id=harvest_row.community_id, request_id=principal.request_id,
        detail={"household_id": claim.household_id, "share_g": claim.share_g},
    )
    session.commit()
    session.refresh(claim)
    return CompostClaimPublic.model_validate(claim, update={"bin_id": harvest_row.bin_id})


def collect_claims(session: Session, principal: Principal, harvest_id: int, claim_ids: list[int]) -> list[CompostClaimPublic]:
    """Hand over many shares of one harvest at once (the day the households come for their compost):
    `collect_claim` for each, in one UPDATE and one commit; all or nothing."""
    harvest_row = get_harvest(session, harvest_id)
    wanted = sorted(set(claim_ids))
    if not wanted:
        return []
    now = utcnow()
    done = session.execute(
        update(CLAIM)
        .where(among(session, CLAIM.c.id, wanted), CLAIM.c.harvest_id == harvest_id, CLAIM.c.collected_at.is_(None))
        .values(collected_at=now, collected_by=principal.user_id)
        .returning(CLAIM.c.id, CLAIM.c.household_id, CLAIM.c.share_g)
    ).all()
    if len(done) != len(wanted):
        session.rollback()
        if session.scalar(select(func.count()).select_from(CLAIM).where(among(session, CLAIM.c.id, wanted), CLAIM.c.harvest_id == harvest_id)) != len(wanted):
            raise not_found("领取记录", "Compost claim", "claim_id")
        raise Conflict("already_collected", "该户的肥料已领取", "This compost has already been collected")
    for claim_id, household_id, share_g in done:
        audit.record(
            session, actor_user_id=principal.user_id, action="compost_claim.collect", object_type="compost_claim",
            object_id=claim_id, community_id=harvest_row.community_id, request_id=principal.request_id,
            detail={"household_id": household_id, "share_g": share_g},
        )
    session.commit()
    rows = session.scalars(select(CompostClaim).where(among(session, CompostClaim.id, wanted)).order_by(CompostClaim.id))
    return [CompostClaimPublic.model_validate(c, update={"bin_id": harvest_row.bin_id}) for c in rows]


def household_claims(session: Session, household_id: int, cursor: str | None, limit: int) -> tuple[list[CompostClaimPublic], str | None]:
    """A household's compost shares, each with where to collect it: the bin and its site (name, address)."""
    stmt = (
        select_rows(CompostClaim, CompostHarvest.bin_id, CompostBin.name, CompostSite.id, CompostSite.name, CompostSite.address)
        .join(CompostHarvest, CompostHarvest.id == CompostClaim.harvest_id)
        .join(CompostBin, CompostBin.id == CompostHarvest.bin_id)
        .join(CompostSite, CompostSite.id == CompostBin.site_id)
        .where(CompostClaim.household_id == household_id)
    )
    rows, next_cursor = page_by_keys(session, stmt, [CompostClaim.id], cursor, limit, key=lambda row: [row[0].id])
    return [
        CompostClaimPublic.model_validate(c, update={"bin_id": b, "bin_name": bn, "site_id": sid, "site_name": sn, "site_address": sa})
        for c, b, bn, sid, sn, sa in rows
    ], next_cursor


# --- for reports ---------------------------------------------------------------------------------

def harvested(community_ids: list[int] | tuple[int, ...], lo, hi) -> list:
    """SQL conditions: the harvests between instants [lo, hi) (lo None: since the start), the ones compost
    produced counts (`produced_g`, and the reports' drill-down)."""
    t = CompostHarvest.__table__
    cond = [t.c.community_id.in_(list(community_ids) or [-1]), t.c.harvested_at < hi]
    if lo is not None:
        cond.append(t.c.harvested_at >= lo)
    return cond


def produced_g(session: Session, community_ids: list[int] | tuple[int, ...], lo, hi, key=None) -> dict[Any, int]:
    """Compost harvested (grams) in communities between instants [lo, hi) (lo None: since the start);
    grouped by `key(harvested_at column)` (an SQL expression, e.g. the local month), else under None.
    Called by reports after they have checked who is asking."""
    t = CompostHarvest.__table__
    group = key(t.c.harvested_at) if key is not None else None
    cond = harvested(community_ids, lo, hi)
    if group is None:
        return {None: int(session.execute(select(func.coalesce(func.sum(t.c.compost_g), 0)).where(*cond)).scalar())}
    return {k: int(g) for k, g in session.execute(select(group, func.sum(t.c.compost_g)).where(*cond).group_by(group)).all()}


# --- for reminders -----------------------------------------------------------------------------

def claims_to_collect(session: Session, harvested_since, claim_ids: list[int] | None = None) -> list[dict[str, Any]]:
    """Compost waiting for its household (harvested since then, not collected yet), with what a
    reminder says about it: where (site and bin) and how much. `claim_ids` narrows to those claims."""
    stmt = (
        select(
            CLAIM.c.id, CLAIM.c.household_id, CLAIM.c.share_g, CompostHarvest.community_id,
            CompostBin.name.label("bin_name"), CompostSite.name.label("site_name"),
        )
        .join(CompostHarvest, CompostHarvest.id == CLAIM.c.harvest_id)
        .join(CompostBin, CompostBin.id == CompostHarvest.bin_id)
        .join(CompostSite, CompostSite.id == CompostBin.site_id)
        .where(CLAIM.c.collected_at.is_(None), CompostHarvest.harvested_at >= harvested_since)
        .order_by(CLAIM.c.id)
    )
    if claim_ids is not None:
        stmt = stmt.where(CLAIM.c.id.in_(claim_ids))
    return [dict(r._mapping) for r in session.execute(stmt)]
