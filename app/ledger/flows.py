"""Ledger workflows behind the routes: what is posted, what is audited, one commit."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlmodel import Session

from app.audit import service as audit
from app.core.db import utcnow
from app.identity.auth import Principal
from app.kit.errors import BadRequest
from app.kit.period import local_bounds
from app.ledger import expiry, passbook
from app.ledger import service as ledger
from app.ledger.models import (
    AdjustmentCreate,
    EntryPublic,
    ExpiryRunResult,
    Passbook,
    PolicyPublic,
    ReversalCreate,
    Source,
    SystemAccount,
    VerifyReport,
)
from app.ledger.verify import verify as verify_ledger
from app.places.service import building_names, community_city, get_community, get_household
from app.recycling.groups import group_names

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parents[1] / "templates"), autoescape=select_autoescape()
)



def _tz(session: Session, community_id: int) -> ZoneInfo:
    return ZoneInfo(get_community(session, community_id).timezone)


def passbook_summary(session: Session, household_id: int) -> Passbook:
    household, tz = passbook.open_passbook(session, household_id)
    amount, when = expiry.expiring_soon(session, household.community_id, household.id, tz)
    return Passbook(
        household_id=household.id,
        door_plate=household.door_plate,
        building_name=building_names(session, {household.building_id}).get(household.building_id),
        balance=ledger.balance_of(session, household.id),
        held_points=ledger.held_of(session, household.id),
        expiring_points=amount,
        expiring_on=when,
    )


def printable_statement(session: Session, household_id: int, start: date | None, end: date | None) -> str:
    household, tz = passbook.open_passbook(session, household_id)
    lo, hi = local_bounds(tz, start, end)
    limit = 200
    balance, lines, more = passbook.statement(session, household.id, tz, start=lo, end=hi, limit=limit)
    amount, when = expiry.expiring_soon(session, household.community_id, household.id, tz)
    return _templates.get_template("statement.html").render(
        community=get_community(session, household.community_id).name,
        building=building_names(session, {household.building_id}).get(household.building_id, ""),
        unit=household.unit,
        door_plate=household.door_plate,
        period=f"{start or '开始'} 至 {end or '今天'}",
        balance=balance,
        held=ledger.held_of(session, household.id),
        expiring=amount,
        expiring_on=when.astimezone(tz).date().isoformat() if when else "",
        lines=lines,
        truncated=more is not None,
        totals=passbook.totals(session, household.id, lo, hi),
        categories={g.value: name for g, name in group_names(community_city(session, household.community_id)).items()},
        printed_at=utcnow().astimezone(tz).strftime("%Y-%m-%d %H:%M"),
    )


def adjust(session: Session, principal: Principal, household_id: int, data: AdjustmentCreate) -> EntryPublic:
    household = get_household(session, household_id)
    if data.points == 0:
        raise BadRequest("invalid_points", "调整积分不能为0", "Adjustment cannot be zero", "points")
    reason = data.reason.strip()
    posted = ledger.post(
        session,
        community_id=household.community_id,
        idempotency_key=f"adjustment:{household.id}:{data.idempotency_key}",
        source=Source.adjustment,
        memo=f"人工调整：{reason}"[:200],
        lines=[
            ledger.Line(data.points, household_id=household.id),
            ledger.Line(-data.points, system=SystemAccount.adjustments),
        ],
        household_id=household.id,
        actor_user_id=principal.user_id,
        reason=reason,
    )
    if not posted.replayed:
        audit.record(
            session,
            actor_user_id=principal.user_id,
            action="ledger.adjust",
            object_type="household",
            object_id=household.id,
            community_id=household.community_id,
            request_id=principal.request_id,
            detail={"points": data.points, "reason": reason, "entry_id": posted.entry_id},
        )
    session.commit()
    return _entry_public(session, posted.entry_id, posted.replayed)


def reverse(session: Session, principal: Principal, entry_id: int, data: ReversalCreate) -> EntryPublic:
    entry = ledger.get_entry(session, entry_id)
    key = f"reversal:{entry_id}:{data.idempotency_key}"
    replayed = ledger.entry_by_key(session, key) is not None
    reversal_id = ledger.reverse(session, entry_id, reason=data.reason.strip(), actor_user_id=principal.user_id, idempotency_key=key)
    if not replayed:
        audit.record(
            session,
            actor_user_id=principal.user_id,
            action="ledger.reverse",
            object_type="journal_entry",
            object_id=entry_id,
            community_id=entry.community_id,
            request_id=principal.request_id,
            detail={"reason": data.reason.strip(), "reversal_entry_id": reversal_id},
        )
    session.commit()
    return _entry_public(session, reversal_id, replayed)


def _entry_public(session: Session, entry_id: int, replayed: bool) -> EntryPublic:
    entry = ledger.get_entry(session, entry_id)
    return EntryPublic(
        id=entry.id,
        community_id=entry.community_id,
        household_id=entry.household_id,
        source=entry.source,
        memo=entry.memo,
        occurred_at=entry.occurred_at,
        reverses_entry_id=entry.reverses_entry_id,
        balance_after=ledger.household_balance_after(session, entry.id),
        replayed=replayed,
    )


def read_policy(session: Session, community_id: int) -> PolicyPublic:
    return PolicyPublic.model_validate(expiry.get_policy(session, community_id), from_attributes=True)


def write_policy(session: Session, principal: Principal, community_id: int, data: PolicyPublic) -> PolicyPublic:
    policy = expiry.set_policy(session, community_id, data)
    audit.record(
        session,
        actor_user_id=principal.user_id,
        action="ledger.policy",
        object_type="community",
        object_id=community_id,
        community_id=community_id,
        request_id=principal.request_id,
        detail=data.model_dump(mode="json"),
    )
    session.commit()
    return PolicyPublic.model_validate(policy, from_attributes=True)


def run_expiry(session: Session, principal: Principal, community_id: int) -> ExpiryRunResult:
    cutoff, households, points = expiry.run_expiry(session, community_id, _tz(session, community_id))
    audit.record(
        session,
        actor_user_id=principal.user_id,
        action="ledger.expiry_run",
        object_type="community",
        object_id=community_id,
        community_id=community_id,
        request_id=principal.request_id,
        detail={"households": households, "points": points},
    )
    session.commit()
    return ExpiryRunResult(community_id=community_id, cutoff=cutoff, households_expired=households, points_expired=points)


def verify(session: Session, community_id: int) -> VerifyReport:
    return verify_ledger(session, community_id)
