"""Users, household membership, scoped role grants and refresh tokens."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, DateTime, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from app.core.db import utcnow
from app.kit.columns import BigId, fk, pk


class Role(StrEnum):
    resident = "resident"  # 居民 (via household membership, not a grant)
    volunteer = "volunteer"  # 盯桶侠 / 桶边值守志愿者
    supervisor = "supervisor"  # 督导员
    clerk = "clerk"  # 兑换员
    compost_keeper = "compost_keeper"  # 堆肥技师
    committee = "committee"  # 居委会/物业/业委会 staff, one community
    org_admin = "org_admin"  # 社会组织 admin, the communities it runs
    street_viewer = "street_viewer"  # 街道, read-only roll-ups
    platform_admin = "platform_admin"


COMMUNITY_ROLES = {Role.volunteer, Role.supervisor, Role.clerk, Role.compost_keeper, Role.committee}


class User(SQLModel, table=True):
    __tablename__ = "app_user"
    # The users whose tokens were revoked lately: every process reads them every second or so.
    __table_args__ = (
        Index("ix_app_user_tokens_revoked_at", "tokens_revoked_at", postgresql_where=text("tokens_revoked_at IS NOT NULL")),
    )
    id: int | None = Field(default=None, sa_column=pk())
    username: str | None = Field(default=None, max_length=60, unique=True, index=True)
    password_hash: str | None = Field(default=None, max_length=200)
    wechat_openid: str | None = Field(default=None, max_length=64, unique=True, index=True)
    wechat_unionid: str | None = Field(default=None, max_length=64, index=True)
    display_name: str = Field(default="", max_length=60)
    phone_hash: str | None = Field(default=None, max_length=64, index=True)
    phone_masked: str | None = Field(default=None, max_length=16)
    is_active: bool = True
    created_at: datetime = Field(default_factory=utcnow)
    # Access tokens carry the version they were issued at; logout and role changes raise it (and stamp
    # when), and the older tokens are refused within seconds (app.identity.revocation).
    token_version: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    tokens_revoked_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


class HouseholdMember(SQLModel, table=True):
    """A resident's membership of a household: family members share one passbook."""

    __tablename__ = "household_member"
    __table_args__ = (UniqueConstraint("user_id", "household_id"),)
    id: int | None = Field(default=None, sa_column=pk())
    user_id: int = Field(sa_column=fk("app_user.id"))
    household_id: int = Field(sa_column=fk("household.id"))
    created_at: datetime = Field(default_factory=utcnow)


class RoleGrant(SQLModel, table=True):
    """A role held in one scope: a community, an organisation, a street, or the platform."""

    __tablename__ = "role_grant"
    __table_args__ = (
        UniqueConstraint("user_id", "role", "community_id", "organisation_id", "street_id"),
    )
    id: int | None = Field(default=None, sa_column=pk())
    user_id: int = Field(sa_column=fk("app_user.id"))
    role: Role = Field(sa_column=Column(String(20), nullable=False))  # text, not a PG enum: roles grow
    community_id: int | None = Field(default=None, sa_column=fk("community.id", nullable=True))
    organisation_id: int | None = Field(default=None, sa_column=fk("organisation.id", nullable=True))
    street_id: int | None = Field(default=None, sa_column=fk("street.id", nullable=True))
    created_at: datetime = Field(default_factory=utcnow)
    created_by: int | None = Field(
        default=None, sa_column=Column(BigId, ForeignKey("app_user.id"), nullable=True)
    )


class RefreshToken(SQLModel, table=True):
    """Rotating refresh tokens, stored as hashes. Reusing a rotated token revokes its whole family."""

    __tablename__ = "refresh_token"
    id: int | None = Field(default=None, sa_column=pk())
    user_id: int = Field(sa_column=fk("app_user.id"))
    family_id: str = Field(max_length=64, index=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    issued_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    used_at: datetime | None = None
    revoked_at: datetime | None = None


# --- API shapes -------------------------------------------------------------------------------

class GrantPublic(SQLModel):
    role: Role
    community_id: int | None = None
    organisation_id: int | None = None
    street_id: int | None = None


class UserPublic(SQLModel):
    id: int
    username: str | None = None
    display_name: str
    phone_masked: str | None = None
    household_ids: list[int] = []
    grants: list[GrantPublic] = []


class TokenPair(SQLModel):
    """A session: a short-lived access token (Authorization: Bearer) and a refresh token that gets the
    next pair from POST /auth/refresh. Each refresh token works once (rotation); sent again within
    REFRESH_GRACE_SECONDS (30 s) of its use — the answer was lost — it answers the same new pair; sent
    again later, the whole session is revoked (a stolen copy) and the user signs in again."""

    access_token: str = Field(description="访问令牌：请求头 Authorization: Bearer <access_token>；有效期 expires_in 秒")
    refresh_token: str = Field(description="刷新令牌：有效期 30 天（REFRESH_TOKEN_DAYS），只能用一次，换取新的一对令牌")
    token_type: str = "bearer"
    expires_in: int = Field(description="访问令牌的有效期（秒），默认 900（ACCESS_TOKEN_MINUTES=15）；到期前用刷新令牌换新")
    user: UserPublic


class WechatLogin(SQLModel):
    code: str = Field(min_length=1, max_length=128, description="wx.login 返回的 code")


class PhoneBind(SQLModel):
    code: str = Field(min_length=1, max_length=128, description="getPhoneNumber 返回的 code")
    refresh_token: str | None = Field(
        default=None, min_length=10, max_length=200,
        description="当前的刷新令牌：给出则轮换它（同一会话），答复中的 tokens 取代旧的一对；不给则答复一对新会话的令牌",
    )


class PasswordLogin(SQLModel):
    username: str = Field(min_length=1, max_length=60)
    password: str = Field(min_length=1, max_length=200)


class RefreshRequest(SQLModel):
    refresh_token: str = Field(min_length=10, max_length=200)


class StaffCreate(SQLModel):
    username: str = Field(min_length=3, max_length=60, schema_extra={"pattern": r"^[A-Za-z0-9_.@-]+$"})
    password: str = Field(min_length=8, max_length=200)
    display_name: str = Field(default="", max_length=60)


class GrantCreate(SQLModel):
    user_id: int
    role: Role
    community_id: int | None = None
    organisation_id: int | None = None
    street_id: int | None = None


class PhoneBindResult(SQLModel):
    phone_masked: str
    household_ids: list[int]
    matched: bool
    tokens: TokenPair = Field(description="新的令牌（访问令牌含绑定后的住户）：请用它们替换手上的令牌")


# --- a resident's own data (个人信息, PIPL) --------------------------------------------------------

class HeldHousehold(SQLModel):
    """A household the resident belongs to, and how much the service holds about it. The history is
    the household's (family members share one passbook) and stays when a member closes their account."""

    id: int
    community: str
    door_plate: str = Field(description="楼栋 单元 门牌")
    members: int
    status: str
    phone_masked: str | None = Field(description="花名册联系电话（脱敏）")
    balance: int
    records: dict[str, int] = Field(description="各类记录条数：checkins, compost_drops, weigh_ins, redemptions, journal_entries")


class HeldSubscription(SQLModel):
    kind: str
    template_id: str


class PersonalData(SQLModel):
    """Everything the service holds about the signed-in person (《个人信息保护法》 查阅权)."""

    user_id: int
    display_name: str
    wechat_bound: bool = Field(description="是否绑定微信（openid）")
    phone_masked: str | None = Field(description="绑定的手机号（脱敏；只保存其密钥哈希）")
    created_at: datetime
    households: list[HeldHousehold]
    subscriptions: list[HeldSubscription]
    active_sessions: int = Field(description="未过期的登录会话数")
    audit_entries: int = Field(description="本人操作留下的审计记录条数")


class AccountClosed(SQLModel):
    user_id: int
    households_left: list[int] = Field(description="退出的住户；住户的积分与记录保留")
    subscriptions_removed: int
