"""Places and households. Streets carry city and district as attributes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, ForeignKey, Index, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.db import utcnow
from app.kit.columns import BigId, fk, pk

# --- street (街道) -----------------------------------------------------------------------------

class StreetBase(SQLModel):
    city: str = Field(min_length=1, max_length=40, description="城市")
    district: str = Field(min_length=1, max_length=40, description="区")
    name: str = Field(min_length=1, max_length=60, description="街道")


class Street(StreetBase, table=True):
    __tablename__ = "street"
    __table_args__ = (UniqueConstraint("city", "district", "name"),)
    id: int | None = Field(default=None, sa_column=pk())
    created_at: datetime = Field(default_factory=utcnow)


class StreetCreate(StreetBase):
    pass


class StreetPublic(StreetBase):
    id: int


# --- organisation (社会组织) --------------------------------------------------------------------

class OrganisationBase(SQLModel):
    name: str = Field(min_length=1, max_length=100, description="社会组织名称")


class Organisation(OrganisationBase, table=True):
    __tablename__ = "organisation"
    id: int | None = Field(default=None, sa_column=pk())
    created_at: datetime = Field(default_factory=utcnow)


class OrganisationCreate(OrganisationBase):
    pass


class OrganisationPublic(OrganisationBase):
    id: int


class OrganisationCommunity(SQLModel, table=True):
    """Which communities an organisation runs programmes in."""

    __tablename__ = "organisation_community"
    organisation_id: int = Field(
        sa_column=Column(BigId, ForeignKey("organisation.id"), primary_key=True)
    )
    community_id: int = Field(
        sa_column=Column(BigId, ForeignKey("community.id"), primary_key=True, index=True)
    )


# --- network (枢纽/联盟) -------------------------------------------------------------------------

class NetworkBase(SQLModel):
    name: str = Field(min_length=1, max_length=100, description="网络/联盟名称，如 零废弃网络")
    coordinator_organisation_id: int | None = Field(
        default=None, description="秘书处/枢纽机构：其管理员可查看网络月报；不因此计为伙伴机构",
    )


class Network(NetworkBase, table=True):
    """A programme of partner organisations (枢纽/联盟) that each run communities. It is not an
    organisation: its reports count its partners, never itself."""

    __tablename__ = "network"
    id: int | None = Field(default=None, sa_column=pk())
    name: str = Field(sa_column=Column(String(100), nullable=False, unique=True))
    coordinator_organisation_id: int | None = Field(default=None, sa_column=fk("organisation.id", nullable=True, index=False))
    created_at: datetime = Field(default_factory=utcnow)


class NetworkCreate(NetworkBase):
    pass


class NetworkPartner(SQLModel, table=True):
    """A partner organisation of a network (伙伴机构)."""

    __tablename__ = "network_partner"
    network_id: int = Field(sa_column=Column(BigId, ForeignKey("network.id"), primary_key=True))
    organisation_id: int = Field(sa_column=Column(BigId, ForeignKey("organisation.id"), primary_key=True, index=True))
    added_at: datetime = Field(default_factory=utcnow)


class PartnerRef(SQLModel):
    organisation_id: int


class NetworkPublic(NetworkBase):
    id: int
    partners: list[OrganisationPublic] = Field(default_factory=list, description="伙伴机构")


# --- community (社区) ---------------------------------------------------------------------------

class CommunityBase(SQLModel):
    name: str = Field(min_length=1, max_length=60, description="社区名称")
    timezone: str = Field(default="Asia/Shanghai", max_length=40)


class Community(CommunityBase, table=True):
    __tablename__ = "community"
    id: int | None = Field(default=None, sa_column=pk())
    street_id: int = Field(sa_column=fk("street.id"))
    created_at: datetime = Field(default_factory=utcnow)


class CommunityCreate(CommunityBase):
    street_id: int
    organisation_id: int | None = None


class CommunityUpdate(SQLModel):
    name: str | None = Field(default=None, min_length=1, max_length=60)
    timezone: str | None = Field(default=None, max_length=40)


class CommunityPublic(CommunityBase):
    id: int
    street_id: int


# --- compound (小区) ----------------------------------------------------------------------------

class CompoundBase(SQLModel):
    name: str = Field(min_length=1, max_length=60, description="小区名称")


class Compound(CompoundBase, table=True):
    __tablename__ = "compound"
    __table_args__ = (UniqueConstraint("community_id", "name"),)
    id: int | None = Field(default=None, sa_column=pk())
    community_id: int = Field(sa_column=fk("community.id"))
    created_at: datetime = Field(default_factory=utcnow)


class CompoundCreate(CompoundBase):
    pass


class CompoundUpdate(SQLModel):
    name: str | None = Field(default=None, min_length=1, max_length=60)


class CompoundPublic(CompoundBase):
    id: int
    community_id: int


# --- building (楼栋) ----------------------------------------------------------------------------

class BuildingBase(SQLModel):
    name: str = Field(min_length=1, max_length=30, description="楼栋，如 3号楼")


class Building(BuildingBase, table=True):
    __tablename__ = "building"
    __table_args__ = (UniqueConstraint("compound_id", "name"),)
    id: int | None = Field(default=None, sa_column=pk())
    compound_id: int = Field(sa_column=fk("compound.id"))
    # Denormalised so that every scope check is one lookup.
    community_id: int = Field(sa_column=fk("community.id"))
    created_at: datetime = Field(default_factory=utcnow)


class BuildingCreate(BuildingBase):
    pass


class BuildingUpdate(SQLModel):
    name: str | None = Field(default=None, min_length=1, max_length=30)


class BuildingPublic(BuildingBase):
    id: int
    compound_id: int
    community_id: int


# --- household (户) -----------------------------------------------------------------------------

class HouseholdStatus(StrEnum):
    active = "active"
    moved_out = "moved_out"


class HouseholdBase(SQLModel):
    unit: str = Field(default="", max_length=10, description="单元")
    door_plate: str = Field(min_length=1, max_length=20, description="门牌号，如 302")
    members: int = Field(default=1, ge=1, le=30, description="家庭人数")


class Household(HouseholdBase, table=True):
    __tablename__ = "household"
    __table_args__ = (
        UniqueConstraint("building_id", "unit", "door_plate"),
        Index("ix_household_community_door_plate", "community_id", "door_plate"),
    )
    id: int | None = Field(default=None, sa_column=pk())
    community_id: int = Field(sa_column=fk("community.id"))
    building_id: int = Field(sa_column=fk("building.id"))
    status: HouseholdStatus = Field(default=HouseholdStatus.active, sa_column=Column(String(12), nullable=False))
    public_code: str = Field(max_length=16, unique=True, index=True, description="稳定的短码，印在门牌二维码上")
    # Keyed hash of the roster contact phone (matching only) and its masked form (display only).
    phone_hash: str | None = Field(default=None, max_length=64, index=True)
    phone_masked: str | None = Field(default=None, max_length=16)
    pin_hash: str | None = Field(default=None, max_length=200)
    # The staff member whose reset set the PIN (None: the resident set it): they may not spend with it.
    pin_reset_by_user_id: int | None = Field(default=None, sa_column=Column(BigId, ForeignKey("app_user.id"), nullable=True))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class HouseholdCreate(HouseholdBase):
    building_id: int
    phone: str | None = Field(default=None, max_length=20, description="联系电话（仅用于匹配，不会明文保存）")


class HouseholdUpdate(SQLModel):
    unit: str | None = Field(default=None, max_length=10)
    door_plate: str | None = Field(default=None, min_length=1, max_length=20)
    members: int | None = Field(default=None, ge=1, le=30)
    status: HouseholdStatus | None = None
    phone: str | None = Field(default=None, max_length=20)


class HouseholdPublic(HouseholdBase):
    id: int
    community_id: int
    building_id: int
    building_name: str | None = None
    status: HouseholdStatus
    public_code: str
    phone_masked: str | None = None
