"""Volunteer rules: teams, one open shift per volunteer, minutes fixed at sign-out, hours by period."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from sqlmodel import select as select_rows

from app.audit import service as audit
from app.checkins import service as checkins
from app.checkins import setup as field_setup
from app.checkins.scan import FUTURE_SKEW
from app.core.db import utcnow
from app.identity import service as identity
from app.identity.auth import MANAGERS, Principal, authorize
from app.identity.models import Role, User
from app.kit.errors import Conflict, Unprocessable, not_found
from app.kit.pagination import page_by_id, page_by_keys
from app.kit.sql import own_replay
from app.places import service as places
from app.rules import service as rules
from app.volunteers.models import (
    MAX_SHIFT_MINUTES,
    Shift,
    ShiftEnd,
    ShiftPublic,
    ShiftStart,
    TeamMember,
    VolunteerHours,
    VolunteerTeam,
    VolunteerTeamCreate,
    VolunteerTeamPublic,
)

SHIFT = Shift.__table__
# Who may sign out a shift that is not theirs (a volunteer who forgot to, 忘记签退).
SHIFT_CLOSERS = MANAGERS | {Role.supervisor}



# --- teams -------------------------------------------------------------------------------------

def _belongs(session: Session, user_id: int, community_id: int) -> bool:
    if session.get(User, user_id) is None:
        return False
    if any(g.community_id == community_id for g in identity.user_grants(session, user_id)):
        return True
    return any(places.get_household(session, h).community_id == community_id for h in identity.user_household_ids(session, user_id))


def _team_public(session: Session, teams: list[VolunteerTeam]) -> list[VolunteerTeamPublic]:
    members: dict[int, list[int]] = {t.id: [] for t in teams}
    if teams:
        for team_id, user_id in session.execute(
            select(TeamMember.team_id, TeamMember.user_id).where(TeamMember.team_id.in_(list(members))).order_by(TeamMember.user_id)
        ):
            members[team_id].append(user_id)
    return [VolunteerTeamPublic.model_validate(t, update={"members": members[t.id]}) for t in teams]


def create_team(session: Session, principal: Principal, community_id: int, data: VolunteerTeamCreate) -> VolunteerTeamPublic:
    if data.leader_user_id is not None and not _belongs(session, data.leader_user_id, community_id):
        raise not_found("用户", "User", "leader_user_id")
    team = VolunteerTeam(community_id=community_id, **data.model_dump())
    session.add(team)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict("duplicate", "该队伍已存在", "This team already exists") from None
    if data.leader_user_id is not None:
        session.add(TeamMember(team_id=team.id, user_id=data.leader_user_id))
    audit.record_act(session, principal, "volunteer_team.create", team, community_id, name=team.name)
    session.commit()
    return _team_public(session, [team])[0]


def get_team(session: Session, team_id: int) -> VolunteerTeam:
    team = session.get(VolunteerTeam, team_id)
    if team is None:
        raise not_found("志愿者队伍", "Volunteer team", "team_id")
    return team


def list_teams(session: Session, community_id: int, cursor: str | None, limit: int) -> tuple[list[VolunteerTeamPublic], str | None]:
    stmt = select_rows(VolunteerTeam).where(VolunteerTeam.community_id == community_id)
    teams, next_cursor = page_by_id(session, stmt, VolunteerTeam.id, cursor, limit)
    return _team_public(session, list(teams)), next_cursor


def add_member(session: Session, principal: Principal, team_id: int, user_id: int) -> VolunteerTeamPublic:
    team = get_team(session, team_id)
    if not _belongs(session, user_id, team.community_id):
        raise not_found("用户", "User", "user_id")
    if session.get(TeamMember, (team_id, user_id)) is None:
        session.add(TeamMember(team_id=team_id, user_id=user_id))
        audit.record_act(session, principal, "volunteer_team.add_member", team, team.community_id, user_id=user_id)
        session.commit()
    return _team_public(session, [team])[0]


# --- shifts ------------------------------------------------------------------------------------

def _by_client(session: Session, community_id: int, client_id: str, user_id: int) -> Shift | None:
    """The shift signed in under this client id, by this user (another user's: client_id_taken)."""
    return own_replay(session.scalars(select(Shift).where(Shift.community_id == community_id, Shift.client_id == client_id)).first(), user_id, "user_id")


def start_shift(session: Session, principal: Principal, community_id: int, data: ShiftStart) -> tuple[Shift, bool]:
    """Sign in (签到) at a station or a recycling day. Retrying with the same client id is harmless."""
    existing = _by_client(session, community_id, data.client_id, principal.user_id)
    if existing is not None:
        return existing, False
    if data.station_id is not None and checkins.get_station(session, data.station_id).community_id != community_id:
        raise not_found("投放点", "Station", "station_id")
    if data.event_id is not None:
        from app.recycling import service as recycling

        if recycling.get_event(session, data.event_id).community_id != community_id:
            raise not_found("回收日", "Recycling event", "event_id")
    if data.team_id is not None and get_team(session, data.team_id).community_id != community_id:
        raise not_found("志愿者队伍", "Volunteer team", "team_id")
    now = utcnow()
    at = data.at or now
    if at > now + FUTURE_SKEW:
        raise Unprocessable("in_future", "签到时间晚于当前时间", "The sign-in time is in the future", "at")
    if at < now - timedelta(hours=24):
        raise Unprocessable("too_old", "签到时间过早，请联系管理员补录", "The sign-in is too old", "at")
    shift = Shift(
        community_id=community_id, client_id=data.client_id, user_id=principal.user_id, team_id=data.team_id,
        station_id=data.station_id, event_id=data.event_id, signed_in_at=at,
    )
    session.add(shift)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        existing = _by_client(session, community_id, data.client_id, principal.user_id)
        if existing is not None:
            return existing, False
        raise Conflict("shift_open", "您还有未签退的值班，请先签退", "You have a shift that is still open: sign out first") from None
    return shift, True


def get_shift(session: Session, shift_id: int) -> Shift:
    shift = session.get(Shift, shift_id)
    if shift is None:
        raise not_found("值班记录", "Shift", "shift_id")
    return shift


def end_shift(session: Session, principal: Principal, shift_id: int, data: ShiftEnd) -> Shift:
    """Sign out (签退): the minutes are fixed once; a repeated sign-out returns the shift unchanged."""
    shift = get_shift(session, shift_id)
    if shift.user_id != principal.user_id:
        authorize(session, principal, shift.community_id, SHIFT_CLOSERS)
    if shift.signed_out_at is not None:
        return shift
    now = utcnow()
    out = data.at or now
    if out > now + FUTURE_SKEW:
        raise Unprocessable("in_future", "签退时间晚于当前时间", "The sign-out time is in the future", "at")
    if out < shift.signed_in_at:
        raise Unprocessable("before_sign_in", "签退时间早于签到时间", "The sign-out is before the sign-in", "at")
    minutes = min(MAX_SHIFT_MINUTES, int((out - shift.signed_in_at).total_seconds() // 60))
    done = session.execute(
        update(SHIFT).where(SHIFT.c.id == shift_id, SHIFT.c.signed_out_at.is_(None)).values(signed_out_at=out, minutes=minutes)
    ).rowcount
    if done != 1:  # signed out concurrently: that one counts
        session.rollback()
        session.refresh(shift)
        return shift
    shift.signed_out_at, shift.minutes = out, minutes
    _credit_hours(session, shift)
    audit.record_act(session, principal, "volunteer_shift.sign_out", shift, shift.community_id, user_id=shift.user_id, minutes=minutes)
    session.commit()
    return shift


def _credit_hours(session: Session, shift: Shift) -> None:
    """Where the community gives points for volunteering, credit the volunteer's own household here."""
    rule = rules.rules_at(session, shift.community_id, shift.signed_out_at)
    points = rule.volunteer_per_hour * (shift.minutes or 0) // 60
    if points <= 0:
        return
    households = [
        h for h in identity.user_household_ids(session, shift.user_id)
        if places.get_household(session, h).community_id == shift.community_id
    ]
    if not households:
        return
    household_id = min(households)
    day = shift.signed_out_at.astimezone(field_setup.load_setup(session, shift.community_id).tz).date()
    granted = rules.apply_daily_cap(session, rule.daily_cap, [(household_id, day, points)])[0]
    session.execute(update(SHIFT).where(SHIFT.c.id == shift.id).values(points=granted, household_id=household_id))
    shift.points, shift.household_id = granted, household_id
    if granted <= 0:
        return
    from app.ledger import service as ledger
    from app.ledger.service import Credit

    ledger.post_credits(
        session,
        [
            Credit(
                community_id=shift.community_id,
                household_id=household_id,
                points=granted,
                source="volunteer",
                idempotency_key=f"shift:{shift.id}",
                memo=f"志愿服务 {shift.minutes / 60:.1f} 小时",
                occurred_at=shift.signed_out_at,
            )
        ],
    )


def list_shifts(
    session: Session, community_id: int, *, user_id: int | None, open_only: bool, cursor: str | None, limit: int
):
    stmt = select_rows(Shift).where(Shift.community_id == community_id)
    if user_id is not None:
        stmt = stmt.where(Shift.user_id == user_id)
    if open_only:
        stmt = stmt.where(Shift.signed_out_at.is_(None))
    rows, next_cursor = page_by_id(session, stmt, Shift.id, cursor, limit)
    return [ShiftPublic.model_validate(r) for r in rows], next_cursor


def hours(
    session: Session, community_id: int, start: date | None, end: date | None, cursor: str | None, limit: int
) -> tuple[list[VolunteerHours], str | None]:
    """志愿时长 per volunteer over local days [start, end] (shifts counted on their sign-in day), by volunteer."""
    tz = field_setup.load_setup(session, community_id).tz
    end = end or utcnow().astimezone(tz).date()
    start = start or end.replace(day=1)
    lo = datetime.combine(start, time.min, tz)
    hi = datetime.combine(end + timedelta(days=1), time.min, tz)
    stmt = (
        select(SHIFT.c.user_id, func.count(), func.coalesce(func.sum(SHIFT.c.minutes), 0))
        .where(SHIFT.c.community_id == community_id, SHIFT.c.signed_in_at >= lo, SHIFT.c.signed_in_at < hi, SHIFT.c.minutes.is_not(None))
        .group_by(SHIFT.c.user_id)
    )
    rows, next_cursor = page_by_keys(session, stmt, [SHIFT.c.user_id], cursor, limit, key=lambda row: [row[0]])
    names = dict(session.execute(select(User.id, User.display_name).where(User.id.in_([r[0] for r in rows] or [-1]))).all())
    return [
        VolunteerHours(user_id=u, display_name=names.get(u, ""), shifts=n, minutes=int(m), hours=round(int(m) / 60, 2))
        for u, n, m in rows
    ], next_cursor


# --- for reports ---------------------------------------------------------------------------------

def served_shifts(community_ids: list[int] | tuple[int, ...], lo: datetime | None, hi: datetime) -> list:
    """SQL conditions: the finished shifts signed in between instants [lo, hi) (lo None: since the start),
    the ones volunteer attendances and hours count (`served`, and the reports' drill-down)."""
    cond = [SHIFT.c.community_id.in_(list(community_ids) or [-1]), SHIFT.c.signed_in_at < hi, SHIFT.c.minutes.is_not(None)]
    if lo is not None:
        cond.append(SHIFT.c.signed_in_at >= lo)
    return cond


def served(session: Session, community_ids: list[int] | tuple[int, ...], lo: datetime | None, hi: datetime) -> tuple[int, int]:
    """(attendances 人次, minutes) of finished shifts signed in between instants [lo, hi) (lo None: since
    the start), as in `hours`. Called by reports after they have checked who is asking."""
    n, minutes = session.execute(select(func.count(), func.coalesce(func.sum(SHIFT.c.minutes), 0))
                                 .where(*served_shifts(community_ids, lo, hi))).one()
    return int(n), int(minutes)
