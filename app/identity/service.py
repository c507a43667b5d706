"""Sign-in and tokens: WeChat login, phone binding to the roster, staff passwords, refresh rotation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from app.audit import service as audit
from app.core.config import get_settings
from app.core.db import utcnow
from app.core.security import (
    create_access_token,
    hash_password,
    mask_phone,
    new_opaque_token,
    normalize_phone,
    phone_hash,
    sha256_hex,
    verify_password,
)
from app.identity import revocation
from app.identity.auth import MANAGERS, Grant, Principal, authorize, grants_to_claim, require_platform_admin
from app.identity.models import (
    COMMUNITY_ROLES,
    GrantCreate,
    GrantPublic,
    HouseholdMember,
    PhoneBindResult,
    RefreshToken,
    Role,
    RoleGrant,
    StaffCreate,
    TokenPair,
    User,
    UserPublic,
)
from app.kit import throttle
from app.kit.errors import BadRequest, Conflict, Forbidden, Unauthorized, not_found
from app.kit.throttle import Limit
from app.places.models import Household, HouseholdStatus
from app.wechat.client import WechatClient, WechatError


def user_grants(session: Session, user_id: int) -> list[Grant]:
    rows = session.exec(select(RoleGrant).where(RoleGrant.user_id == user_id).order_by(RoleGrant.id)).all()
    return [Grant(r.role, r.community_id, r.organisation_id, r.street_id) for r in rows]


def user_household_ids(session: Session, user_id: int) -> list[int]:
    return list(
        session.exec(
            select(HouseholdMember.household_id).where(HouseholdMember.user_id == user_id).order_by(HouseholdMember.id)
        ).all()
    )


def user_public(session: Session, user: User) -> UserPublic:
    grants = user_grants(session, user.id)
    return UserPublic(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        phone_masked=user.phone_masked,
        household_ids=user_household_ids(session, user.id),
        grants=[GrantPublic(role=g.role, community_id=g.community_id, organisation_id=g.organisation_id, street_id=g.street_id) for g in grants],
    )


def issue_tokens(
    session: Session, user: User, family_id: str | None = None, *,
    successor_of: str | None = None, at: datetime | None = None, again: bool = False,
) -> TokenPair:
    """Access token with grants, households and the user's token version as claims, plus a new refresh
    token in the family: a random one, or on rotation the successor of the token it replaces (derived
    from it with the server's key, so that a retry within the grace period can be answered again)."""
    version = revocation.token_version(session, user.id)  # before the grants (see token_version)
    public = user_public(session, user)
    grants = [Grant(g.role, g.community_id, g.organisation_id, g.street_id) for g in public.grants]
    refresh = _successor(successor_of) if successor_of else new_opaque_token()
    access, ttl = create_access_token(
        {"sub": str(user.id), "g": grants_to_claim(grants), "h": public.household_ids, "v": version},
        at=at, jti=sha256_hex(refresh)[:16] if successor_of else None,
    )
    if not again:  # issued again (a retry): its refresh token is stored already
        session.add(
            RefreshToken(
                user_id=user.id,
                family_id=family_id or uuid.uuid4().hex,
                token_hash=sha256_hex(refresh),
                expires_at=utcnow() + timedelta(days=get_settings().refresh_token_days),
            )
        )
    session.commit()
    return TokenPair(access_token=access, refresh_token=refresh, expires_in=ttl, user=public)


def _successor(token: str) -> str:
    """The refresh token that replaces `token` on rotation: keyed, so only the server can derive it."""
    key = hmac.new(get_settings().resolved_jwt_secret().encode(), b"refresh-successor", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(hmac.new(key, token.encode(), hashlib.sha256).digest()).rstrip(b"=").decode()


def _invalid_refresh() -> Unauthorized:
    return Unauthorized("refresh_invalid", "登录已失效，请重新登录", "Refresh token invalid or revoked")


def refresh(session: Session, token: str, user_id: int | None = None) -> TokenPair:
    """The next pair of a session (rotation); `user_id`: the token must be that user's."""
    row = session.exec(select(RefreshToken).where(RefreshToken.token_hash == sha256_hex(token))).first()
    if row is None or row.revoked_at is not None or row.expires_at < utcnow() or (user_id is not None and row.user_id != user_id):
        raise _invalid_refresh()
    # Claim the token atomically: two concurrent uses cannot both rotate it.
    now = utcnow()
    claimed = session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == row.id, RefreshToken.used_at.is_(None), RefreshToken.revoked_at.is_(None))
        .values(used_at=now)
    ).rowcount
    if claimed != 1:
        session.refresh(row)
        retried = _retried(session, row, token, now)
        if retried is not None:
            return retried
        # Reuse of a rotated token: somebody holds a stolen copy. Revoke the whole family, and the
        # access tokens it gave.
        revoke_family(session, row)
        raise Unauthorized("refresh_reused", "登录凭证被重复使用，已全部注销，请重新登录", "Refresh token reuse detected; all sessions revoked")
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        session.rollback()
        raise _invalid_refresh()
    return issue_tokens(session, user, family_id=row.family_id, successor_of=token, at=now)


def _retried(session: Session, row: RefreshToken, token: str, now: datetime) -> TokenPair | None:
    """The pair a rotation gave, again, for the same token sent within the grace period (the phone lost
    the answer) while that pair's refresh token is still unused; None otherwise (a reuse)."""
    grace = timedelta(seconds=get_settings().refresh_grace_seconds)
    if row.revoked_at is not None or row.used_at is None or now - row.used_at > grace:
        return None
    successor = session.exec(select(RefreshToken).where(RefreshToken.token_hash == sha256_hex(_successor(token)))).first()
    user = session.get(User, row.user_id)
    if successor is None or successor.used_at is not None or successor.revoked_at is not None or user is None or not user.is_active:
        return None
    session.rollback()  # nothing to write: the pair is issued again as it was
    return issue_tokens(session, user, family_id=row.family_id, successor_of=token, at=row.used_at, again=True)


def revoke_family(session: Session, token: RefreshToken) -> None:
    """Revoke the token's refresh family and, unless it was revoked already, its user's access tokens
    (within seconds everywhere; the user's other sign-ins refresh theirs)."""
    revoked = session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == token.family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    ).rowcount
    if revoked:  # an old refresh token sent again ends nothing more
        revocation.revoke_tokens(session, [token.user_id])
    session.commit()


def logout(session: Session, token: str) -> None:
    row = session.exec(select(RefreshToken).where(RefreshToken.token_hash == sha256_hex(token))).first()
    if row is not None:
        revoke_family(session, row)


# wx.login codes refused by WeChat, per client address: each exchange spends the app's WeChat quota.
WECHAT_ADDRESS = Limit("wechat:address", default_attempts=20, window=timedelta(minutes=15), lockout=timedelta(minutes=1))


def wechat_login(session: Session, client: WechatClient, code: str, address: str = "") -> TokenPair:
    limits = [(WECHAT_ADDRESS, address or "unknown")]
    throttle.refuse_if_locked(session, [limit.key(who) for limit, who in limits])
    try:
        ws = client.code_to_session(code)
    except WechatError as e:
        refused = e.to_domain()
        if refused.status_code < 500:  # the code itself (invalid, used): the caller's failure, counted
            throttle.failed(session, limits)
        raise refused from None
    user = session.exec(select(User).where(User.wechat_openid == ws.openid)).first()
    if user is None:
        user = User(wechat_openid=ws.openid, wechat_unionid=ws.unionid)
        session.add(user)
        try:
            session.commit()
        except IntegrityError:  # the same user's two first logins raced
            session.rollback()
            user = session.exec(select(User).where(User.wechat_openid == ws.openid)).one()
    if not user.is_active:
        raise Forbidden("user_disabled", "账号已停用", "This account is disabled")
    return issue_tokens(session, user)


def bind_phone(session: Session, client: WechatClient, principal: Principal, code: str, refresh_token: str | None = None) -> PhoneBindResult:
    """Self-service onboarding: a phone on the committee's roster links the user to that household."""
    try:
        raw = client.phone_number(code)
    except WechatError as e:
        raise e.to_domain() from None
    normalized = normalize_phone(raw)
    if normalized is None:
        raise BadRequest("invalid_phone", "手机号格式不正确", "Malformed mobile number", "code")
    user = session.get(User, principal.user_id)
    if user is None:
        raise Unauthorized("token_invalid", "登录凭证无效", "Invalid access token")
    digest = phone_hash(normalized)
    user.phone_hash = digest
    user.phone_masked = mask_phone(normalized)
    session.add(user)
    households = session.exec(
        select(Household).where(Household.phone_hash == digest, Household.status == HouseholdStatus.active)
    ).all()
    existing = set(user_household_ids(session, user.id))
    for h in households:
        if h.id not in existing:
            session.add(HouseholdMember(user_id=user.id, household_id=h.id))
            audit.record(
                session,
                actor_user_id=user.id,
                action="household.member.bind_phone",
                object_type="household",
                object_id=h.id,
                community_id=h.community_id,
                request_id=principal.request_id,
            )
    session.commit()
    ids = user_household_ids(session, user.id)
    # The caller's access token does not name the households just joined: new tokens that do, the
    # caller's own refresh token rotated when it sent it (one session), else a new session's pair.
    tokens = refresh(session, refresh_token, user_id=user.id) if refresh_token else issue_tokens(session, user)
    return PhoneBindResult(phone_masked=user.phone_masked, household_ids=ids, matched=bool(households), tokens=tokens)


# Password sign-in: per account (a guesser spreading over addresses) and per client address (one
# address trying many accounts). A locked key is refused before any password is hashed.
PASSWORD_ACCOUNT = Limit("password:account", default_attempts=5, window=timedelta(minutes=15), lockout=timedelta(minutes=1))
PASSWORD_ADDRESS = Limit("password:address", default_attempts=30, window=timedelta(minutes=15), lockout=timedelta(minutes=5))


def password_login(session: Session, username: str, password: str, address: str = "") -> TokenPair:
    limits = [(PASSWORD_ACCOUNT, username.casefold()), (PASSWORD_ADDRESS, address or "unknown")]
    throttle.refuse_if_locked(session, [limit.key(who) for limit, who in limits])
    user = session.exec(select(User).where(User.username == username)).first()
    if not verify_password(user.password_hash if user else None, password) or user is None or not user.is_active:
        throttle.failed(session, limits)
        raise Unauthorized("bad_credentials", "用户名或密码错误", "Wrong username or password")
    throttle.succeeded(session, [PASSWORD_ACCOUNT.key(username.casefold())])
    return issue_tokens(session, user)


def me(session: Session, principal: Principal) -> UserPublic:
    user = session.get(User, principal.user_id)
    if user is None:
        raise Unauthorized("token_invalid", "登录凭证无效", "Invalid access token")
    return user_public(session, user)


def create_staff_user(session: Session, data: StaffCreate, actor: Principal | None = None) -> User:
    user = User(username=data.username, password_hash=hash_password(data.password), display_name=data.display_name)
    session.add(user)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict("username_taken", "用户名已被使用", "Username already taken", "username") from None
    audit.record(
        session,
        actor_user_id=actor.user_id if actor else None,
        action="user.create",
        object_type="user",
        object_id=user.id,
        request_id=actor.request_id if actor else None,
        detail={"username": user.username},
    )
    session.commit()
    return user


def create_staff(session: Session, principal: Principal, data: StaffCreate) -> UserPublic:
    return user_public(session, create_staff_user(session, data, principal))


def _check_grant_scope(session: Session, principal: Principal, data: GrantCreate) -> None:
    if data.role == Role.resident:
        raise BadRequest("invalid_role", "居民身份通过绑定住户获得", "Residents join through their household", "role")
    if data.role in COMMUNITY_ROLES:
        if data.community_id is None or data.organisation_id or data.street_id:
            raise BadRequest("invalid_scope", "该角色须指定社区", "This role needs a community", "community_id")
        from app.places.service import get_community

        get_community(session, data.community_id)
        # Committees and organisations staff their own communities; promoting to committee needs a manager.
        authorize(session, principal, data.community_id, MANAGERS)
        return
    require_platform_admin(principal)
    if data.role == Role.org_admin and (data.organisation_id is None or data.community_id or data.street_id):
        raise BadRequest("invalid_scope", "该角色须指定社会组织", "This role needs an organisation", "organisation_id")
    if data.role == Role.street_viewer and (data.street_id is None or data.community_id or data.organisation_id):
        raise BadRequest("invalid_scope", "该角色须指定街道", "This role needs a street", "street_id")
    if data.role == Role.platform_admin and (data.community_id or data.organisation_id or data.street_id):
        raise BadRequest("invalid_scope", "平台管理员不限定范围", "Platform admin has no scope", "role")


def grant_role(session: Session, principal: Principal, data: GrantCreate) -> GrantPublic:
    _check_grant_scope(session, principal, data)
    if session.get(User, data.user_id) is None:
        raise not_found("用户", "User", "user_id")
    existing = session.exec(
        select(RoleGrant).where(
            RoleGrant.user_id == data.user_id,
            RoleGrant.role == data.role,
            RoleGrant.community_id == data.community_id if data.community_id else RoleGrant.community_id.is_(None),
            RoleGrant.organisation_id == data.organisation_id if data.organisation_id else RoleGrant.organisation_id.is_(None),
            RoleGrant.street_id == data.street_id if data.street_id else RoleGrant.street_id.is_(None),
        )
    ).first()
    if existing is None:
        session.add(RoleGrant(**data.model_dump(), created_by=principal.user_id))
        audit.record(
            session,
            actor_user_id=principal.user_id,
            action="role.grant",
            object_type="user",
            object_id=data.user_id,
            community_id=data.community_id,
            request_id=principal.request_id,
            detail={"role": data.role.value, "organisation_id": data.organisation_id, "street_id": data.street_id},
        )
        revocation.revoke_tokens(session, [data.user_id])  # the next token carries the new role
        session.commit()
    return GrantPublic(**data.model_dump(exclude={"user_id"}))


def revoke_role(session: Session, principal: Principal, data: GrantCreate) -> None:
    _check_grant_scope(session, principal, data)
    rows = session.exec(
        select(RoleGrant).where(
            RoleGrant.user_id == data.user_id,
            RoleGrant.role == data.role,
            RoleGrant.community_id == data.community_id if data.community_id else RoleGrant.community_id.is_(None),
        )
    ).all()
    if not rows:
        raise not_found("授权", "Grant", "role")
    for r in rows:
        session.delete(r)
    audit.record(
        session,
        actor_user_id=principal.user_id,
        action="role.revoke",
        object_type="user",
        object_id=data.user_id,
        community_id=data.community_id,
        request_id=principal.request_id,
        detail={"role": data.role.value},
    )
    revocation.revoke_tokens(session, [data.user_id])  # a token still naming the role is refused within seconds
    session.commit()


def ensure_platform_admin(session: Session, username: str, password: str) -> User:
    """CLI: create (or reset the password of) a platform admin."""
    user = session.exec(select(User).where(User.username == username)).first()
    if user is None:
        user = create_staff_user(session, StaffCreate(username=username, password=password, display_name="平台管理员"))
    else:
        user.password_hash = hash_password(password)
        session.add(user)
    if not session.exec(select(RoleGrant).where(RoleGrant.user_id == user.id, RoleGrant.role == Role.platform_admin)).first():
        session.add(RoleGrant(user_id=user.id, role=Role.platform_admin))
    session.commit()
    return user
