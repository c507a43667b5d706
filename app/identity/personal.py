"""A resident's data on request (《个人信息保护法》): see what is held about them, and close the account.

Closing removes what identifies the person: the WeChat binding (openid, unionid), the phone hash and
its masked form (on the account, and on a household whose roster number is the same one), the name,
the memberships, the reminder subscriptions and every session. The household stays with its passbook:
its ledger is the household's, not the person's, and no report changes.
"""

from __future__ import annotations

from sqlalchemy import delete, func, text, update
from sqlmodel import Session, select

from app.audit import service as audit
from app.audit.models import AuditLog
from app.core.db import utcnow
from app.identity import revocation
from app.identity.auth import Principal
from app.identity.models import (
    AccountClosed,
    HeldHousehold,
    HeldSubscription,
    HouseholdMember,
    PersonalData,
    RefreshToken,
    RoleGrant,
    User,
)
from app.kit.errors import Conflict, Unauthorized
from app.places.models import Building, Community, Household

# What is counted per household, by table (each has household_id).
RECORDS = {"checkins": "checkin", "compost_drops": "compost_drop", "weigh_ins": "weigh_in", "redemptions": "redemption",
           "journal_entries": "journal_entry"}


def _user(session: Session, principal: Principal) -> User:
    user = session.get(User, principal.user_id)
    if user is None or not user.is_active:
        raise Unauthorized("token_invalid", "登录凭证无效", "Invalid access token")
    return user


def _subscriptions(session: Session, user_id: int) -> list[HeldSubscription]:
    from app.reminders.models import MessageSubscription

    rows = session.exec(select(MessageSubscription).where(MessageSubscription.user_id == user_id).order_by(MessageSubscription.id))
    return [HeldSubscription(kind=r.kind, template_id=r.template_id) for r in rows]


def personal_data(session: Session, principal: Principal) -> PersonalData:
    user = _user(session, principal)
    rows = session.exec(
        select(Household, Community.name, Building.name)
        .join(HouseholdMember, HouseholdMember.household_id == Household.id)
        .join(Community, Community.id == Household.community_id)
        .join(Building, Building.id == Household.building_id)
        .where(HouseholdMember.user_id == user.id)
        .order_by(Household.id)
    ).all()
    households = []
    for h, community, building in rows:
        counts = {name: session.execute(text(f"SELECT count(*) FROM {table} WHERE household_id = :h"), {"h": h.id}).scalar_one()
                  for name, table in RECORDS.items()}
        balance = session.execute(text("SELECT balance FROM ledger_account WHERE household_id = :h"), {"h": h.id}).scalar()
        households.append(HeldHousehold(
            id=h.id, community=community, door_plate=" ".join(p for p in (building, h.unit and f"{h.unit}单元", h.door_plate) if p),
            members=h.members, status=h.status, phone_masked=h.phone_masked, balance=int(balance or 0), records=counts,
        ))
    sessions = session.exec(select(func.count()).select_from(RefreshToken).where(
        RefreshToken.user_id == user.id, RefreshToken.revoked_at.is_(None), RefreshToken.expires_at > utcnow())).one()
    acted = session.exec(select(func.count()).select_from(AuditLog).where(AuditLog.actor_user_id == user.id)).one()
    return PersonalData(
        user_id=user.id, display_name=user.display_name, wechat_bound=user.wechat_openid is not None,
        phone_masked=user.phone_masked, created_at=user.created_at, households=households,
        subscriptions=_subscriptions(session, user.id), active_sessions=int(sessions), audit_entries=int(acted),
    )


def close_account(session: Session, principal: Principal) -> AccountClosed:
    """Close the caller's resident account (staff accounts are closed by whoever granted their roles)."""
    from app.reminders.models import MessageSubscription

    user = _user(session, principal)
    if session.exec(select(RoleGrant.id).where(RoleGrant.user_id == user.id)).first() is not None:
        raise Conflict("staff_account", "工作人员账号请联系管理员注销", "A staff account is closed by an administrator")
    households = list(session.exec(select(HouseholdMember.household_id).where(HouseholdMember.user_id == user.id)
                                   .order_by(HouseholdMember.household_id)))
    if user.phone_hash and households:
        # The roster number of a household the person belongs to is the person's number: it goes too.
        session.execute(update(Household).where(Household.id.in_(households), Household.phone_hash == user.phone_hash)
                        .values(phone_hash=None, phone_masked=None, updated_at=utcnow()))
    session.execute(delete(HouseholdMember).where(HouseholdMember.user_id == user.id))
    removed = session.execute(delete(MessageSubscription).where(MessageSubscription.user_id == user.id)).rowcount
    session.execute(update(RefreshToken).where(RefreshToken.user_id == user.id, RefreshToken.revoked_at.is_(None))
                    .values(revoked_at=utcnow()))
    session.execute(update(User).where(User.id == user.id).values(
        wechat_openid=None, wechat_unionid=None, phone_hash=None, phone_masked=None, display_name="", is_active=False))
    revocation.revoke_tokens(session, [user.id])
    audit.record(session, actor_user_id=user.id, action="user.close", object_type="user", object_id=user.id,
                 request_id=principal.request_id, detail={"households_left": households, "subscriptions_removed": removed})
    session.commit()
    return AccountClosed(user_id=user.id, households_left=households, subscriptions_removed=removed)
