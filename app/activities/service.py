"""Activities for reports, and challenges: enrolment, one check-in a day, streaks, completion points."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from sqlmodel import select as select_rows

from app.activities.models import (
    LATE_DAYS,
    Activity,
    ActivityAttendance,
    ActivityCreate,
    ActivityTotals,
    ActivityUpdate,
    Attendee,
    Attendees,
    Challenge,
    ChallengeCreate,
    ChallengeDay,
    ChallengeStats,
    Enrolment,
    EnrolmentPublic,
)
from app.audit import service as audit
from app.checkins import setup as field_setup
from app.core.db import utcnow
from app.identity.auth import BACKDATERS, FIELD_STAFF, Principal, authorize, community_links
from app.kit.errors import BadRequest, Conflict, NotFound, Unprocessable, not_found
from app.kit.pagination import page_by_id, page_by_keys
from app.kit.sql import own_replay
from app.places import service as places
from app.rules import service as rules

BACKFILL_DAYS = 3  # staff may record a resident's check-in (no smartphone) up to this many days back
ENROLMENT = Enrolment.__table__
DAY = ChallengeDay.__table__



def _today(session: Session, community_id: int) -> date:
    return utcnow().astimezone(field_setup.load_setup(session, community_id).tz).date()


# --- activities --------------------------------------------------------------------------------

def _check_organisation(session: Session, community_id: int, organisation_id: int | None) -> None:
    if organisation_id is None:
        return
    links = community_links(session, community_id)
    if links is None or organisation_id not in links[1]:
        raise not_found("社会组织", "Organisation", "organisation_id")


def backdating(session: Session, principal: Principal, community_id: int, held_on: date, reason: str | None) -> bool:
    """The one rule for writing an activity held more than LATE_DAYS ago (creating it, editing it, naming
    or removing its attendees): a closed month's figures change only on the committee's word, with a
    reason (补录). True when the write is back-dated; refuses a reason where none is needed."""
    late = held_on < _today(session, community_id) - timedelta(days=LATE_DAYS)
    if late and reason is None:
        raise BadRequest("backdate_reason_required", "活动日期已过去 3 天以上：须由居委会填写补录原因",
                         "This activity was held more than 3 days ago: the committee back-dates it with a reason", "backdate_reason")
    if reason is not None and not late:
        raise BadRequest("not_backdated", "活动日期在 3 天内，无需补录原因", "Only an activity held more than 3 days ago is back-dated",
                         "backdate_reason")
    if late:
        authorize(session, principal, community_id, BACKDATERS)
    return late


def create_activity(session: Session, principal: Principal, community_id: int, data: ActivityCreate) -> Activity:
    _check_organisation(session, community_id, data.organisation_id)

    def stored() -> Activity | None:
        return session.scalars(select(Activity).where(Activity.community_id == community_id, Activity.client_id == data.client_id)).first()

    existing = own_replay(stored(), principal.user_id, "created_by")
    if existing is not None:
        return existing
    backdated = backdating(session, principal, community_id, data.held_on, data.backdate_reason)
    row = Activity(community_id=community_id, created_by=principal.user_id, backdated=backdated, **data.model_dump())
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        return stored()
    audit.record_act(session, principal, "activity.create", row, community_id, title=row.title, held_on=str(row.held_on),
                     **({"backdated": True, "reason": row.backdate_reason} if backdated else {}))
    session.commit()
    return row


def get_activity(session: Session, activity_id: int) -> Activity:
    row = session.get(Activity, activity_id)
    if row is None:
        raise not_found("活动", "Activity", "activity_id")
    return row


def read_activity(session: Session, activity_id: int) -> Activity:
    return get_activity(session, activity_id)


def update_activity(session: Session, principal: Principal, activity_id: int, data: ActivityUpdate) -> Activity:
    row = get_activity(session, activity_id)
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    reason = changes.pop("backdate_reason", None)
    # Editing an activity held long ago, or moving one there, is back-dating it.
    if backdating(session, principal, row.community_id, min(row.held_on, changes.get("held_on", row.held_on)), reason):
        changes |= {"backdated": True, "backdate_reason": reason}
    if "participants" in changes:
        _lock(session, activity_id)
    if "participants" in changes and changes["participants"] < _named(session, activity_id):
        raise Unprocessable("fewer_than_named", "参与人次不能少于已登记的参与者", "Attendances cannot be fewer than the attendees named",
                            "participants")
    for k, v in changes.items():
        setattr(row, k, v)
    try:
        ActivityCreate.model_validate(row.model_dump(include=set(ActivityCreate.model_fields)))
    except ValueError:
        session.rollback()
        raise Unprocessable("validation_error", "参与人数不能多于参与人次", "Unique participants cannot exceed attendances", "unique_participants") from None
    row.updated_at = utcnow()
    session.add(row)
    audit.record_act(session, principal, "activity.update", row, row.community_id, changes={k: str(v) for k, v in changes.items()})
    session.commit()
    return row


def list_activities(session: Session, community_id: int, start: date | None, end: date | None, cursor: str | None, limit: int):
    stmt = select_rows(Activity).where(Activity.community_id == community_id)
    if start is not None:
        stmt = stmt.where(Activity.held_on >= start)
    if end is not None:
        stmt = stmt.where(Activity.held_on <= end)
    return page_by_id(session, stmt, Activity.id, cursor, limit)


def totals(session: Session, community_id: int, start: date | None, end: date | None) -> ActivityTotals:
    """Sums for a report period, computed from the records (人次 and 人 kept apart)."""
    end = end or _today(session, community_id)
    start = start or end.replace(day=1)
    t = Activity.__table__
    where = (t.c.community_id == community_id, t.c.held_on >= start, t.c.held_on <= end)
    row = session.execute(
        select(
            func.count(),
            *[
                func.coalesce(func.sum(t.c[c]), 0)
                for c in ("participants", "unique_participants", "direct_beneficiaries", "indirect_beneficiaries", "volunteers", "leaflets", "media_items", "media_reads")
            ],
        ).where(*where)
    ).one()
    by_kind = dict(session.execute(select(t.c.kind, func.count()).where(*where).group_by(t.c.kind)).all())
    _, _, unique_known, *_, media_items, media_reads = (int(x) for x in row)
    from app.reports.measures import people  # the reports' one definition of each figure
    from app.reports.scope import ScopeKind, resolve

    f = people.activity_figures(session, resolve(session, ScopeKind.community, community_id), start, end)
    return ActivityTotals(
        activities=f["activities"], participants=f["activity_participants"], people=f["activity_people"],
        activities_unnamed=f["activities_unnamed"], unnamed_attendances=f["unnamed_attendances"],
        unique_participants_known=unique_known, direct_beneficiaries=f["direct_beneficiaries"],
        indirect_beneficiaries=f["indirect_beneficiaries"], volunteers=f["activity_volunteers"], leaflets=f["leaflets"],
        media_items=media_items, media_reads=media_reads, by_kind=by_kind,
    )


# --- attendees (参与者登记): who took part, by household ------------------------------------------

ATTENDANCE = ActivityAttendance.__table__


def _lock(session: Session, activity_id: int) -> None:
    session.execute(select(Activity.__table__.c.id).where(Activity.__table__.c.id == activity_id).with_for_update())


def _named(session: Session, activity_id: int) -> int:
    return int(session.execute(select(func.count()).where(ATTENDANCE.c.activity_id == activity_id)).scalar_one())


def attendees(session: Session, activity_id: int) -> Attendees:
    from app.places.models import Building, Household

    activity = get_activity(session, activity_id)
    rows = session.execute(
        select(ATTENDANCE.c.household_id, Building.name, Household.unit, Household.door_plate, ATTENDANCE.c.recorded_at)
        .join(Household, Household.id == ATTENDANCE.c.household_id).join(Building, Building.id == Household.building_id)
        .where(ATTENDANCE.c.activity_id == activity_id).order_by(Building.name, Household.unit, Household.door_plate)
    ).all()
    items = [Attendee(household_id=h, building=b, unit=u, door_plate=d, recorded_at=at) for h, b, u, d, at in rows]
    return Attendees(activity_id=activity.id, participants=activity.participants, named=len(items),
                     unnamed=activity.participants - len(items), items=items)


def add_attendees(session: Session, principal: Principal, activity_id: int, household_ids: list[int],
                  backdate_reason: str | None = None) -> Attendees:
    """Name households among the activity's participants. Naming one again changes nothing (a retry
    is safe); all of them are named or none: each must live in the activity's community, and the
    names cannot outnumber the attendances (人次) recorded. An activity held long ago: `backdating`."""
    from app.places.models import Household

    activity = get_activity(session, activity_id)
    backdating(session, principal, activity.community_id, activity.held_on, backdate_reason)
    _lock(session, activity_id)  # names added at once are checked against the 人次 one after the other
    wanted = sorted(set(household_ids))
    found = set(session.scalars(select(Household.id).where(Household.id.in_(wanted), Household.community_id == activity.community_id)))
    if len(found) != len(wanted):
        raise not_found("住户", "Household", "household_ids")
    added = list(session.scalars(
        pg_insert(ATTENDANCE)
        .values([{"activity_id": activity_id, "household_id": h, "recorded_by": principal.user_id, "recorded_at": utcnow()} for h in wanted])
        .on_conflict_do_nothing(index_elements=["activity_id", "household_id"])
        .returning(ATTENDANCE.c.household_id)
    ))
    if _named(session, activity_id) > activity.participants:
        session.rollback()
        raise Conflict("more_than_attendances", "登记的参与者多于本场参与人次，请先更正参与人次",
                       "More attendees named than the attendances recorded: correct the attendances first")
    if added:
        audit.record_act(session, principal, "activity.attendees_add", activity, activity.community_id, household_ids=sorted(added),
                         **({"backdate_reason": backdate_reason} if backdate_reason else {}))
    session.commit()
    return attendees(session, activity_id)


def remove_attendee(session: Session, principal: Principal, activity_id: int, household_id: int,
                    backdate_reason: str | None = None) -> Attendees:
    """Take a household off the activity's named participants; one that is not named changes nothing.
    An activity held long ago: `backdating`."""
    activity = get_activity(session, activity_id)
    backdating(session, principal, activity.community_id, activity.held_on, backdate_reason)
    gone = session.execute(
        ATTENDANCE.delete().where(ATTENDANCE.c.activity_id == activity_id, ATTENDANCE.c.household_id == household_id)
    ).rowcount
    if gone:
        audit.record_act(session, principal, "activity.attendee_remove", activity, activity.community_id, household_id=household_id,
                         **({"backdate_reason": backdate_reason} if backdate_reason else {}))
    session.commit()
    return attendees(session, activity_id)


# --- challenges --------------------------------------------------------------------------------

def create_challenge(session: Session, principal: Principal, community_id: int, data: ChallengeCreate) -> Challenge:
    if data.days_required > (data.ends_on - data.starts_on).days + 1:
        raise BadRequest("too_short", "挑战期短于要求的连续天数", "The period is shorter than the days required", "days_required")
    row = Challenge(community_id=community_id, created_by=principal.user_id, **data.model_dump())
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict("duplicate", "同名、同开始日期的挑战已存在", "A challenge with this title and start already exists") from None
    audit.record_act(session, principal, "challenge.create", row, community_id, title=row.title)
    session.commit()
    return row


def get_challenge(session: Session, challenge_id: int) -> Challenge:
    row = session.get(Challenge, challenge_id)
    if row is None:
        raise not_found("打卡挑战", "Challenge", "challenge_id")
    return row


def list_challenges(session: Session, community_id: int, cursor: str | None, limit: int):
    """The latest first."""
    stmt = select_rows(Challenge).where(Challenge.community_id == community_id)
    return page_by_keys(session, stmt, [Challenge.starts_on, Challenge.id], cursor, limit, descending=True)


def _acting_for(session: Session, principal: Principal, challenge: Challenge, household_id: int) -> None:
    """Residents act for their own household, field staff for any household of the community: the
    route let both in, and which one the caller is here depends on the household sent."""
    household = places.get_household(session, household_id)
    if household_id not in principal.household_ids:
        authorize(session, principal, challenge.community_id, FIELD_STAFF)
    if household.community_id != challenge.community_id:
        raise not_found("住户", "Household", "household_id")


def _public(e: Enrolment, today: date) -> EnrolmentPublic:
    alive = e.last_day is not None and e.last_day >= today - timedelta(days=1)
    return EnrolmentPublic.model_validate(e, update={"streak": e.streak if alive else 0, "checked_today": e.last_day == today})




def join(session: Session, principal: Principal, challenge_id: int, household_id: int) -> tuple[EnrolmentPublic, bool]:
    challenge = get_challenge(session, challenge_id)
    _acting_for(session, principal, challenge, household_id)
    today = _today(session, challenge.community_id)
    if today > challenge.ends_on:
        raise Conflict("challenge_over", "该挑战已结束", "This challenge has ended")
    created = session.execute(
        pg_insert(ENROLMENT)
        .values(challenge_id=challenge_id, household_id=household_id, joined_at=utcnow(), streak=0, best_streak=0, days_checked=0, points=0)
        .on_conflict_do_nothing(index_elements=["challenge_id", "household_id"])
        .returning(ENROLMENT.c.id)
    ).first() is not None
    session.commit()
    enrolment = session.scalars(select(Enrolment).where(Enrolment.challenge_id == challenge_id, Enrolment.household_id == household_id)).one()
    return _public(enrolment, today), created


def _runs(days: list[date]) -> tuple[int, int]:
    """(length of the run of consecutive days ending on the last day, longest run)."""
    best = run = 0
    prev = None
    for d in days:
        run = run + 1 if prev is not None and d == prev + timedelta(days=1) else 1
        best = max(best, run)
        prev = d
    return run, best


def check_in(session: Session, principal: Principal, challenge_id: int, household_id: int, day: date | None) -> EnrolmentPublic:
    """One check-in per household per day (打卡). A missed day ends the streak; reaching the required
    run completes the challenge once and earns its points."""
    challenge = get_challenge(session, challenge_id)
    _acting_for(session, principal, challenge, household_id)
    today = _today(session, challenge.community_id)
    day = day or today
    if day != today:  # residents check in for today; staff record past days for those without a phone
        authorize(session, principal, challenge.community_id, FIELD_STAFF)
    if day > today or day < today - timedelta(days=BACKFILL_DAYS):
        raise Unprocessable("day_out_of_range", "只能补录最近 3 天的打卡", "Only the last 3 days can be recorded", "day")
    if not (challenge.starts_on <= day <= challenge.ends_on):
        raise Conflict("challenge_not_open", "不在挑战期内", "Outside the challenge period")
    enrolment = session.scalars(
        select(Enrolment).where(Enrolment.challenge_id == challenge_id, Enrolment.household_id == household_id).with_for_update()
    ).first()
    if enrolment is None:
        raise NotFound("not_enrolled", "尚未报名该挑战", "Not enrolled in this challenge", "household_id")
    fresh = session.execute(
        pg_insert(DAY)
        .values(enrolment_id=enrolment.id, day=day, checked_by=principal.user_id, at=utcnow())
        .on_conflict_do_nothing(index_elements=["enrolment_id", "day"])
        .returning(DAY.c.id)
    ).first()
    if fresh is None:  # already checked in that day: nothing changes
        session.rollback()
        return _public(enrolment, today)
    days = sorted(session.scalars(select(DAY.c.day).where(DAY.c.enrolment_id == enrolment.id)))
    run, best = _runs(days)
    enrolment.days_checked = len(days)
    enrolment.best_streak = best
    enrolment.last_day = days[-1]
    enrolment.streak = run
    if best >= challenge.days_required and enrolment.completed_at is None:
        enrolment.completed_at = utcnow()
        points = challenge.points if challenge.points is not None else rules.rules_at(session, challenge.community_id, enrolment.completed_at).challenge_complete
        enrolment.points = points
        if points > 0:
            from app.ledger import service as ledger
            from app.ledger.service import Credit

            ledger.post_credits(
                session,
                [
                    Credit(
                        community_id=challenge.community_id,
                        household_id=household_id,
                        points=points,
                        source="challenge",
                        idempotency_key=f"challenge:{enrolment.id}",
                        memo=f"打卡挑战「{challenge.title}」完成"[:200],
                        occurred_at=enrolment.completed_at,
                    )
                ],
            )
    session.add(enrolment)
    if household_id not in principal.household_ids:
        audit.record_act(session, principal, "challenge.checkin_for", enrolment, challenge.community_id, household_id=household_id, day=str(day))
    session.commit()
    return _public(enrolment, today)


def household_enrolments(session: Session, household_id: int, cursor: str | None, limit: int) -> tuple[list[EnrolmentPublic], str | None]:
    household = places.get_household(session, household_id)
    today = _today(session, household.community_id)
    rows, next_cursor = page_by_id(session, select_rows(Enrolment).where(Enrolment.household_id == household_id), Enrolment.id, cursor, limit)
    return [_public(e, today) for e in rows], next_cursor


def stats(session: Session, challenge_id: int) -> ChallengeStats:
    challenge = get_challenge(session, challenge_id)
    today = _today(session, challenge.community_id)
    t = ENROLMENT
    enrolled, active, completed = session.execute(
        select(
            func.count(),
            func.count().filter(t.c.last_day >= today - timedelta(days=1)),
            func.count().filter(t.c.completed_at.is_not(None)),
        ).where(t.c.challenge_id == challenge_id)
    ).one()
    return ChallengeStats(enrolled=enrolled, active=active, completed=completed)



# --- for reports ---------------------------------------------------------------------------------

def held(session: Session, community_ids: list[int] | tuple[int, ...], start: date, end: date) -> list[Activity]:
    """The activities held on local days [start, end], in date order. For reports."""
    return list(session.scalars(
        select(Activity).where(Activity.community_id.in_(list(community_ids) or [-1]), Activity.held_on >= start,
                               Activity.held_on <= end).order_by(Activity.held_on, Activity.id)
    ))


def backdated_count(session: Session, community_ids: list[int] | tuple[int, ...], start: date | None, end: date) -> int:
    """Back-dated (补录) activities held on local days [start, end] (start None: since the start). For reports."""
    return int(session.execute(select(func.count()).where(*backdated(community_ids, start, end))).scalar_one())


def backdated(community_ids: list[int] | tuple[int, ...], start: date | None, end: date) -> list:
    """SQL conditions: the back-dated activities held on days [start, end] (start None: since the start)."""
    t = Activity.__table__
    cond = [t.c.community_id.in_(list(community_ids) or [-1]), t.c.held_on <= end, t.c.backdated.is_(True)]
    if start is not None:
        cond.append(t.c.held_on >= start)
    return cond
