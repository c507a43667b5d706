"""Reminder rules: residents report their subscriptions; a job finds due reminders, records them
in the outbox and sends each at most once, whichever instances run the job at the same time.

The job, top to bottom (`run_reminders`):
1. enqueue: for each recycling event tomorrow (community local date) and each harvest claim not yet
   collected, one outbox row per subscribed member of the household. The row's unique key
   (kind, object, user) makes a second run, or a second instance, add nothing.
2. give up on sends whose instance died mid-send (lease over, still `sending`): `unknown`, not
   resent — WeChat may have delivered it, and a reminder is never sent twice.
3. claim a batch (UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)) and, in the same transaction,
   reserve one unit of each resident's subscription (sorted, so two instances never deadlock).
4. send outside any transaction; then record the outcome. The reservation is kept only when WeChat
   accepted the message (or may have): a failure gives it back, 43101 (no subscription) zeroes it.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from sqlmodel import select as select_rows

from app.compost import service as compost
from app.core.config import Settings, get_settings
from app.core.db import utcnow
from app.identity.auth import Principal
from app.identity.models import HouseholdMember, User
from app.kit.errors import BadRequest, DomainError
from app.kit.pagination import page_by_id
from app.places import service as places
from app.places.models import Community, Household, HouseholdStatus
from app.recycling import service as recycling
from app.reminders.models import (
    MessageSubscription,
    OutboxCount,
    OutboxItem,
    OutboxPublic,
    OutboxStatus,
    ReminderKind,
    ReminderOutbox,
    SubscribeResult,
    SubscriptionPublic,
    SubscriptionReport,
    SubscriptionReportIn,
)
from app.wechat.client import TRANSIENT_ERRORS, DeliveryUnknown, WechatClient, WechatError

log = logging.getLogger("app.reminders")
SUB = MessageSubscription.__table__
OUTBOX = ReminderOutbox.__table__
MEMBER = HouseholdMember.__table__
HOUSEHOLD = Household.__table__
USER = User.__table__


def templates(settings: Settings | None = None) -> dict[ReminderKind, str]:
    s = settings or get_settings()
    return {ReminderKind.recycling_day: s.wechat_template_recycling_day, ReminderKind.compost_ready: s.wechat_template_compost_ready}


# --- subscriptions (the resident's side) --------------------------------------------------------

def my_subscriptions(session: Session, principal: Principal) -> list[SubscriptionPublic]:
    have = dict(
        session.execute(select(SUB.c.template_id, SUB.c.remaining).where(SUB.c.user_id == principal.user_id)).all()
    )
    return [SubscriptionPublic(kind=k, template_id=t, remaining=have.get(t, 0)) for k, t in templates().items()]


def record_subscriptions(session: Session, principal: Principal, data: SubscriptionReportIn) -> list[SubscriptionPublic]:
    """What wx.requestSubscribeMessage answered: each `accept` allows one more message with that
    template. A resent report (same client_id) changes nothing."""
    by_template = {t: k for k, t in templates().items()}
    unknown = sorted(set(data.results) - set(by_template))
    if unknown:
        raise BadRequest(
            "unknown_template", f"未知的订阅消息模板：{unknown[0]}", f"Unknown subscribe message template: {unknown[0]}", "results"
        )
    accepted = sorted(t for t, r in data.results.items() if r == SubscribeResult.accept)
    session.add(SubscriptionReport(user_id=principal.user_id, client_id=data.client_id, accepted=len(accepted)))
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        return my_subscriptions(session, principal)
    now = utcnow()
    for template_id in accepted:
        _add_quota(session, principal.user_id, by_template[template_id], template_id, now)
    session.commit()
    return my_subscriptions(session, principal)


def _add_quota(session: Session, user_id: int, kind: ReminderKind, template_id: str, now: datetime) -> None:
    where = and_(SUB.c.user_id == user_id, SUB.c.template_id == template_id)
    values = {"remaining": SUB.c.remaining + 1, "accepted_total": SUB.c.accepted_total + 1, "updated_at": now}
    if session.execute(update(SUB).where(where).values(**values)).rowcount:
        return
    try:
        with session.begin_nested():
            session.execute(
                SUB.insert().values(user_id=user_id, kind=kind.value, template_id=template_id, remaining=1, accepted_total=1, updated_at=now)
            )
    except IntegrityError:  # the same resident's other report created it meanwhile
        session.execute(update(SUB).where(where).values(**values))


# --- the outbox, for staff -----------------------------------------------------------------------

def outbox(session: Session, community_id: int, status: OutboxStatus | None, cursor: str | None, limit: int) -> OutboxPublic:
    counts = [
        OutboxCount(kind=k, status=s, count=n)
        for k, s, n in session.execute(
            select(OUTBOX.c.kind, OUTBOX.c.status, func.count())
            .where(OUTBOX.c.community_id == community_id)
            .group_by(OUTBOX.c.kind, OUTBOX.c.status)
            .order_by(OUTBOX.c.kind, OUTBOX.c.status)
        ).all()
    ]
    stmt = select_rows(ReminderOutbox).where(ReminderOutbox.community_id == community_id)
    if status is not None:
        stmt = stmt.where(ReminderOutbox.status == status.value)
    rows, next_cursor = page_by_id(session, stmt, ReminderOutbox.id, cursor, limit)
    return OutboxPublic(counts=counts, items=[OutboxItem.model_validate(r) for r in rows], next_cursor=next_cursor)


# --- the job ---------------------------------------------------------------------------------------

@dataclass
class RunReport:
    enqueued: int = 0
    outcomes: Counter = field(default_factory=Counter)

    @property
    def sent(self) -> int:
        return self.outcomes[OutboxStatus.sent]


def _insert_ignore(session: Session, rows: list[dict[str, Any]]) -> int:
    if not rows:
        return 0
    added = 0
    for i in range(0, len(rows), 500):
        stmt = (
            pg_insert(OUTBOX).values(rows[i : i + 500])
            .on_conflict_do_nothing(index_elements=["kind", "object_id", "user_id"])
            .returning(OUTBOX.c.id)
        )
        added += len(session.execute(stmt).all())
    return added


def _subscribers(session: Session, template_id: str, *, community_id: int | None = None, household_ids: list[int] | None = None) -> list[tuple[int, int, int]]:
    """(household id, community id, user id) of active households' members who can still receive `template_id`."""
    stmt = (
        select(HOUSEHOLD.c.id, HOUSEHOLD.c.community_id, MEMBER.c.user_id)
        .join(MEMBER, MEMBER.c.household_id == HOUSEHOLD.c.id)
        .join(USER, USER.c.id == MEMBER.c.user_id)
        .join(SUB, and_(SUB.c.user_id == MEMBER.c.user_id, SUB.c.template_id == template_id))
        .where(
            HOUSEHOLD.c.status == HouseholdStatus.active.value,
            USER.c.is_active.is_(True),
            USER.c.wechat_openid.is_not(None),
            SUB.c.remaining > 0,
        )
        .order_by(HOUSEHOLD.c.id, MEMBER.c.user_id)
    )
    if community_id is not None:
        stmt = stmt.where(HOUSEHOLD.c.community_id == community_id)
    if household_ids is not None:
        stmt = stmt.where(HOUSEHOLD.c.id.in_(household_ids))
    return [tuple(r) for r in session.execute(stmt).all()]


def _row(kind: ReminderKind, object_id: int, household_id: int, community_id: int, user_id: int, template_id: str, now: datetime) -> dict[str, Any]:
    return {
        "kind": kind.value, "object_id": object_id, "user_id": user_id, "community_id": community_id,
        "household_id": household_id, "template_id": template_id, "status": OutboxStatus.pending.value,
        "attempts": 0, "next_attempt_at": now, "last_error": "", "created_at": now,
    }


def enqueue_due(session: Session, now: datetime | None = None) -> int:
    """Record every reminder due now in the outbox (nothing twice). Returns how many were new."""
    now = now or utcnow()
    settings = get_settings()
    tmpl = templates(settings)
    rows: list[dict[str, Any]] = []
    # Recycling day tomorrow, in each community's own time zone.
    # Only in the day (REMINDER_HOURS, local time): nobody is woken at midnight by a reminder.
    first_hour, end_hour = (int(h) for h in settings.reminder_hours.split("-", 1))
    zones: dict[str, list[int]] = {}
    for cid, tz in session.execute(select(Community.id, Community.timezone)).all():
        zones.setdefault(tz or settings.timezone, []).append(cid)
    awake: set[int] = set()
    for tz, community_ids in zones.items():
        local = now.astimezone(ZoneInfo(tz))
        if not first_hour <= local.hour < end_hour:
            continue
        awake.update(community_ids)
        tomorrow = local.date() + timedelta(days=1)
        for event in recycling.scheduled_events_on(session, tomorrow, community_ids):
            template_id = tmpl[ReminderKind.recycling_day]
            seen: set[int] = set()
            for household_id, community_id, user_id in _subscribers(session, template_id, community_id=event.community_id):
                if user_id not in seen:  # a resident of two households hears once
                    seen.add(user_id)
                    rows.append(_row(ReminderKind.recycling_day, event.id, household_id, community_id, user_id, template_id, now))
    # Compost waiting for its household.
    claims = [
        c for c in compost.claims_to_collect(session, now - timedelta(days=settings.reminder_harvest_days)) if c["community_id"] in awake
    ]
    template_id = tmpl[ReminderKind.compost_ready]
    for i in range(0, len(claims), 500):
        chunk = claims[i : i + 500]
        by_household: dict[int, list[int]] = {}
        for c in chunk:
            by_household.setdefault(c["household_id"], []).append(c["id"])
        for household_id, community_id, user_id in _subscribers(session, template_id, household_ids=list(by_household)):
            for claim_id in by_household[household_id]:
                rows.append(_row(ReminderKind.compost_ready, claim_id, household_id, community_id, user_id, template_id, now))
    # End the reading transaction before writing: the writes take a fresh snapshot.
    session.rollback()
    added = _insert_ignore(session, rows)
    session.commit()
    return added


def _give_up_dead_sends(session: Session, now: datetime) -> int:
    n = session.execute(
        update(OUTBOX)
        .where(OUTBOX.c.status == OutboxStatus.sending.value, OUTBOX.c.lease_until < now)
        .values(status=OutboxStatus.unknown.value, lease_owner=None, lease_until=None, last_error="sender stopped while sending")
    ).rowcount
    session.commit()
    return n


def _claim(session: Session, owner: str, batch: int, now: datetime, lease: int) -> list[Any]:
    due = (
        select(OUTBOX.c.id)
        .where(OUTBOX.c.status == OutboxStatus.pending.value, OUTBOX.c.next_attempt_at <= now)
        .order_by(OUTBOX.c.id)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    claimed = session.execute(
        update(OUTBOX)
        .where(OUTBOX.c.id.in_(due.scalar_subquery()), OUTBOX.c.status == OutboxStatus.pending.value)
        .values(
            status=OutboxStatus.sending.value, lease_owner=owner, lease_until=now + timedelta(seconds=lease),
            attempts=OUTBOX.c.attempts + 1,
        )
        .returning(OUTBOX.c.id, OUTBOX.c.kind, OUTBOX.c.object_id, OUTBOX.c.user_id, OUTBOX.c.template_id, OUTBOX.c.attempts)
    ).all()
    ready = []
    # Reserve one message of each resident's subscription, in a fixed order (no deadlock between instances).
    for row in sorted(claimed, key=lambda r: (r.user_id, r.template_id, r.id)):
        took = session.execute(
            update(SUB)
            .where(SUB.c.user_id == row.user_id, SUB.c.template_id == row.template_id, SUB.c.remaining > 0)
            .values(remaining=SUB.c.remaining - 1, updated_at=now)
        ).rowcount
        if took:
            ready.append(row)
        else:
            session.execute(
                update(OUTBOX).where(OUTBOX.c.id == row.id)
                .values(status=OutboxStatus.skipped.value, lease_owner=None, lease_until=None, last_error="no subscription left")
            )
    session.commit()
    return sorted(ready, key=lambda r: r.id)


def _finish(session: Session, row: Any, owner: str, status: OutboxStatus, *, quota: str = "keep", errcode: int | None = None,
            error: str = "", retry_at: datetime | None = None) -> None:
    """Record a send's outcome (only if this run still holds the row). quota: keep | refund | zero."""
    values: dict[str, Any] = {"status": status.value, "lease_owner": None, "lease_until": None, "errcode": errcode, "last_error": error[:200]}
    if status == OutboxStatus.sent:
        values["sent_at"] = utcnow()
    if retry_at is not None:
        values["next_attempt_at"] = retry_at
    held = session.execute(
        update(OUTBOX).where(OUTBOX.c.id == row.id, OUTBOX.c.lease_owner == owner, OUTBOX.c.status == OutboxStatus.sending.value).values(**values)
    ).rowcount
    where = and_(SUB.c.user_id == row.user_id, SUB.c.template_id == row.template_id)
    if held and quota == "refund":
        session.execute(update(SUB).where(where).values(remaining=SUB.c.remaining + 1))
    elif held and quota == "zero":
        # WeChat says the resident has nothing left to receive: our count was too high.
        session.execute(update(SUB).where(where).values(remaining=0))
    session.commit()


def _local(value: datetime, tz: ZoneInfo) -> datetime:
    return value.astimezone(tz) if value.tzinfo else value.replace(tzinfo=ZoneInfo("UTC")).astimezone(tz)


def _message(session: Session, row: Any, now: datetime) -> tuple[dict[str, str], str] | None:
    """Template data and mini-program page for a claimed reminder, or None when it is no longer due."""
    if row.kind == ReminderKind.recycling_day:
        event = recycling.get_event(session, row.object_id)
        starts = event.starts_at if event.starts_at.tzinfo else event.starts_at.replace(tzinfo=ZoneInfo("UTC"))
        if event.status != "scheduled" or starts <= now:
            return None
        tz = ZoneInfo(places.get_community(session, event.community_id).timezone or get_settings().timezone)
        start, end = _local(event.starts_at, tz), _local(event.ends_at, tz)
        data = {
            "thing1": event.name[:20],
            "time2": f"{start:%Y-%m-%d %H:%M}~{end:%H:%M}",
            "thing3": event.place[:20],
            "thing4": "明天是资源回收日，记得带上可回收物",
        }
        return data, f"pages/recycling/event?id={event.id}"
    claims = compost.claims_to_collect(session, now - timedelta(days=3650), [row.object_id])
    if not claims:
        return None  # collected meanwhile
    c = claims[0]
    data = {
        "thing1": f"{c['site_name']} {c['bin_name']}"[:20],
        "thing2": f"{c['share_g'] / 1000:.1f}公斤肥料可以领取"[:20],
        "thing3": "请到堆肥点找堆肥技师领取",
    }
    return data, f"pages/compost/claims?id={c['id']}"


def _deliver(session: Session, client: WechatClient, row: Any, owner: str, settings: Settings) -> OutboxStatus:
    now = utcnow()
    message = _message(session, row, now)
    openid = session.execute(select(USER.c.wechat_openid).where(USER.c.id == row.user_id)).scalar_one_or_none()
    session.rollback()  # end the read transaction: nothing is held while WeChat answers
    if message is None or not openid:
        _finish(session, row, owner, OutboxStatus.skipped, quota="refund", error="no longer due" if message is None else "no WeChat account")
        return OutboxStatus.skipped
    data, page = message
    try:
        client.send_subscribe_message(openid, row.template_id, data, page=page)
    except WechatError as e:
        if e.errcode in TRANSIENT_ERRORS:
            return _later(session, row, owner, settings, e.errcode, e.errmsg)
        quota = "zero" if e.errcode == 43101 else "refund"
        _finish(session, row, owner, OutboxStatus.failed, quota=quota, errcode=e.errcode, error=e.errmsg)
        return OutboxStatus.failed
    except DeliveryUnknown as e:
        _finish(session, row, owner, OutboxStatus.unknown, error=e.en)
        return OutboxStatus.unknown
    except DomainError as e:  # WeChat unreachable after the client's retries
        return _later(session, row, owner, settings, None, e.en)
    _finish(session, row, owner, OutboxStatus.sent)
    return OutboxStatus.sent


def _later(session: Session, row: Any, owner: str, settings: Settings, errcode: int | None, error: str) -> OutboxStatus:
    """A transient failure that outlasted the client's own retries: a later run tries again, after a
    pause that doubles each attempt, until the attempts run out."""
    if row.attempts >= settings.reminder_max_attempts:
        _finish(session, row, owner, OutboxStatus.failed, quota="refund", errcode=errcode, error=error)
        return OutboxStatus.failed
    retry_at = utcnow() + timedelta(seconds=settings.reminder_retry_seconds * 2 ** (row.attempts - 1))
    _finish(session, row, owner, OutboxStatus.pending, quota="refund", errcode=errcode, error=error, retry_at=retry_at)
    return OutboxStatus.pending


def run_reminders(
    session: Session,
    client: WechatClient | None = None,
    *,
    batch: int = 50,
    progress: Callable[[int, int], None] | None = None,
) -> RunReport:
    """Enqueue what is due and send what is claimable. Safe to run on several instances at once."""
    from app.wechat.client import get_wechat

    client = client or get_wechat()
    settings = get_settings()
    owner = f"{socket.gethostname()[:20]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    report = RunReport()
    report.enqueued = enqueue_due(session)
    _give_up_dead_sends(session, utcnow())
    total = session.execute(
        select(func.count()).select_from(OUTBOX)
        .where(OUTBOX.c.status == OutboxStatus.pending.value, OUTBOX.c.next_attempt_at <= utcnow())
    ).scalar_one()
    session.rollback()
    done = 0
    while True:
        rows = _claim(session, owner, batch, utcnow(), settings.reminder_lease_seconds)
        if not rows:
            break
        for row in rows:
            report.outcomes[_deliver(session, client, row, owner, settings)] += 1
            done += 1
            if progress:
                progress(done, max(total, done))
    log.info("reminders run by %s: %d newly due, outcomes %s", owner, report.enqueued, {str(k): v for k, v in report.outcomes.items()})
    return report
