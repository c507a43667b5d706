"""Rules for places and households: who owns what, uniqueness, codes. Routes call these."""

from __future__ import annotations

import re
import secrets
import unicodedata
from typing import Any

from sqlalchemy import exists, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from app.audit import service as audit
from app.core.db import utcnow
from app.core.security import mask_phone, normalize_phone, phone_hash, sign_code, verify_code_signature
from app.identity.auth import Principal
from app.identity.models import Role
from app.kit.errors import BadRequest, Conflict, not_found
from app.kit.pagination import page_by_id
from app.places.models import (
    Building,
    BuildingCreate,
    BuildingUpdate,
    Community,
    CommunityCreate,
    CommunityUpdate,
    Compound,
    CompoundCreate,
    CompoundUpdate,
    Household,
    HouseholdCreate,
    HouseholdPublic,
    HouseholdStatus,
    HouseholdUpdate,
    Network,
    NetworkCreate,
    NetworkPartner,
    NetworkPublic,
    Organisation,
    OrganisationCommunity,
    OrganisationCreate,
    OrganisationPublic,
    Street,
    StreetCreate,
)

CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: read aloud and typed by hand
QR_PREFIX = "JF1"


def _commit(session: Session, zh: str, en: str) -> None:
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict("duplicate", zh, en) from None


def _insert(session: Session, row: Any, zh: str, en: str) -> None:
    """Add and flush (to get the id for the audit row); a uniqueness clash becomes a 409."""
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict("duplicate", zh, en) from None


def _audit(session: Session, principal: Principal, action: str, obj: Any, community_id: int | None, **detail):
    audit.record(
        session,
        actor_user_id=principal.user_id,
        action=action,
        object_type=type(obj).__name__.lower(),
        object_id=getattr(obj, "id", None),
        community_id=community_id,
        request_id=principal.request_id,
        detail=detail,
    )


# --- streets and organisations (platform admin) ----------------------------------------------

def create_street(session: Session, principal: Principal, data: StreetCreate) -> Street:
    street = Street.model_validate(data)
    _insert(session, street, "该街道已存在", "This street already exists")
    _audit(session, principal, "street.create", street, None, name=street.name)
    _commit(session, "该街道已存在", "This street already exists")
    return street


def list_streets(session: Session, principal: Principal, cursor: str | None, limit: int):
    stmt = select(Street)
    if not principal.is_platform_admin:
        stmt = stmt.where(Street.id.in_([g.street_id for g in principal.grants if g.street_id is not None]))
    return page_by_id(session, stmt, Street.id, cursor, limit)


def create_organisation(session: Session, principal: Principal, data: OrganisationCreate) -> Organisation:
    org = Organisation.model_validate(data)
    session.add(org)
    session.flush()
    _audit(session, principal, "organisation.create", org, None, name=org.name)
    session.commit()
    return org


def link_organisation(session: Session, principal: Principal, organisation_id: int, community_id: int) -> None:
    if session.get(Organisation, organisation_id) is None:
        raise not_found("社会组织", "Organisation", "organisation_id")
    get_community(session, community_id)
    if session.get(OrganisationCommunity, (organisation_id, community_id)) is None:
        session.add(OrganisationCommunity(organisation_id=organisation_id, community_id=community_id))
        _audit(session, principal, "organisation.link", Organisation(id=organisation_id, name=""), community_id)
        _commit(session, "已关联", "Already linked")


# --- networks of partner organisations (枢纽/联盟; platform admin) ------------------------------

def get_network(session: Session, network_id: int) -> Network:
    network = session.get(Network, network_id)
    if network is None:
        raise not_found("网络", "Network", "network_id")
    return network


def _organisation(session: Session, organisation_id: int, field: str = "organisation_id") -> Organisation:
    org = session.get(Organisation, organisation_id)
    if org is None:
        raise not_found("社会组织", "Organisation", field)
    return org


def network_public(session: Session, network: Network) -> NetworkPublic:
    partners = session.exec(
        select(Organisation).join(NetworkPartner, NetworkPartner.organisation_id == Organisation.id)
        .where(NetworkPartner.network_id == network.id).order_by(Organisation.id)
    ).all()
    return NetworkPublic.model_validate(network, update={"partners": [OrganisationPublic.model_validate(o) for o in partners]})


def create_network(session: Session, principal: Principal, data: NetworkCreate) -> NetworkPublic:
    """A network is created once by name: sent again (a retry), the existing one answers, unless it
    names another coordinator (409)."""
    if data.coordinator_organisation_id is not None:
        _organisation(session, data.coordinator_organisation_id, "coordinator_organisation_id")
    existing = session.exec(select(Network).where(Network.name == data.name)).first()
    if existing is not None:
        if existing.coordinator_organisation_id != data.coordinator_organisation_id:
            raise Conflict("duplicate", "同名网络已存在", "A network with this name already exists")
        return network_public(session, existing)
    network = Network.model_validate(data)
    _insert(session, network, "同名网络已存在", "A network with this name already exists")
    _audit(session, principal, "network.create", network, None, name=network.name,
           coordinator_organisation_id=network.coordinator_organisation_id)
    _commit(session, "同名网络已存在", "A network with this name already exists")
    return network_public(session, network)


def add_partner(session: Session, principal: Principal, network_id: int, organisation_id: int) -> NetworkPublic:
    """Add a partner organisation; adding it again changes nothing."""
    network = get_network(session, network_id)
    _organisation(session, organisation_id)
    if session.get(NetworkPartner, (network_id, organisation_id)) is None:
        session.add(NetworkPartner(network_id=network_id, organisation_id=organisation_id))
        _audit(session, principal, "network.partner_add", network, None, organisation_id=organisation_id)
        try:
            session.commit()
        except IntegrityError:  # the same partner added twice at once: it is there
            session.rollback()
    return network_public(session, network)


def remove_partner(session: Session, principal: Principal, network_id: int, organisation_id: int) -> NetworkPublic:
    """Remove a partner organisation; removing one that is not a partner changes nothing."""
    network = get_network(session, network_id)
    link = session.get(NetworkPartner, (network_id, organisation_id))
    if link is not None:
        session.delete(link)
        _audit(session, principal, "network.partner_remove", network, None, organisation_id=organisation_id)
        session.commit()
    return network_public(session, network)


def network_partner_ids(session: Session, network_id: int) -> list[int]:
    return list(session.exec(
        select(NetworkPartner.organisation_id).where(NetworkPartner.network_id == network_id).order_by(NetworkPartner.organisation_id)
    ).all())


def organisation_community_ids(session: Session, organisation_ids: list[int]) -> list[int]:
    """The communities the organisations run (each once), in id order."""
    return list(session.exec(
        select(OrganisationCommunity.community_id).where(OrganisationCommunity.organisation_id.in_(organisation_ids or [-1]))
        .distinct().order_by(OrganisationCommunity.community_id)
    ).all())


# --- communities -------------------------------------------------------------------------------

def get_community(session: Session, community_id: int) -> Community:
    community = session.get(Community, community_id)
    if community is None:
        raise not_found("社区", "Community", "community_id")
    return community


def community_cities(session: Session, community_ids) -> dict[int, str]:
    """Each community's city (its street's): where waste groups take the city's own names."""
    if not community_ids:
        return {}
    return dict(session.execute(
        select(Community.id, Street.city).join(Street, Street.id == Community.street_id).where(Community.id.in_(list(community_ids)))
    ).all())


def community_city(session: Session, community_id: int) -> str | None:
    return community_cities(session, [community_id]).get(community_id)


def community_timezones(session: Session, community_id: int | None = None) -> list[tuple[int, str]]:
    """(id, time zone) of every community, or of one: what the jobs run across."""
    stmt = select(Community.id, Community.timezone).order_by(Community.id)
    if community_id is not None:
        stmt = stmt.where(Community.id == community_id)
    return list(session.exec(stmt).all())


def create_community(session: Session, principal: Principal, data: CommunityCreate) -> Community:
    if session.get(Street, data.street_id) is None:
        raise not_found("街道", "Street", "street_id")
    _check_timezone(data.timezone)
    community = Community.model_validate(data.model_dump(exclude={"organisation_id"}))
    session.add(community)
    session.flush()
    if data.organisation_id is not None:
        if session.get(Organisation, data.organisation_id) is None:
            raise not_found("社会组织", "Organisation", "organisation_id")
        session.add(OrganisationCommunity(organisation_id=data.organisation_id, community_id=community.id))
    _audit(session, principal, "community.create", community, community.id, name=community.name)
    session.commit()
    return community


def _check_timezone(tz: str | None) -> None:
    if tz is None:
        return
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadRequest("invalid_timezone", "时区无效", "Unknown time zone", "timezone") from None


def visible_communities(session: Session, principal: Principal, cursor: str | None, limit: int):
    stmt = select(Community)
    if not principal.is_platform_admin:
        direct = {g.community_id for g in principal.grants if g.community_id is not None}
        orgs = {g.organisation_id for g in principal.grants if g.role == Role.org_admin and g.organisation_id}
        streets = {g.street_id for g in principal.grants if g.role == Role.street_viewer and g.street_id}
        conds = [Community.id.in_(direct or {-1})]
        if orgs:
            conds.append(
                Community.id.in_(
                    select(OrganisationCommunity.community_id).where(OrganisationCommunity.organisation_id.in_(orgs))
                )
            )
        if streets:
            conds.append(Community.street_id.in_(streets))
        if principal.household_ids:
            conds.append(
                Community.id.in_(select(Household.community_id).where(Household.id.in_(principal.household_ids)))
            )
        from sqlalchemy import or_

        stmt = stmt.where(or_(*conds))
    return page_by_id(session, stmt, Community.id, cursor, limit)


def read_community(session: Session, community_id: int) -> Community:
    community = get_community(session, community_id)
    return community


def update_community(session: Session, principal: Principal, community_id: int, data: CommunityUpdate) -> Community:
    community = get_community(session, community_id)
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    _check_timezone(changes.get("timezone"))
    for k, v in changes.items():
        setattr(community, k, v)
    session.add(community)
    _audit(session, principal, "community.update", community, community_id, changes=changes)
    session.commit()
    return community


# --- compounds ---------------------------------------------------------------------------------

def get_compound(session: Session, compound_id: int) -> Compound:
    compound = session.get(Compound, compound_id)
    if compound is None:
        raise not_found("小区", "Compound", "compound_id")
    return compound


def create_compound(session: Session, principal: Principal, community_id: int, data: CompoundCreate) -> Compound:
    compound = Compound(name=data.name, community_id=community_id)
    _insert(session, compound, "该小区已存在", "This compound already exists")
    _audit(session, principal, "compound.create", compound, community_id, name=compound.name)
    _commit(session, "该小区已存在", "This compound already exists")
    return compound


def list_compounds(session: Session, community_id: int, cursor: str | None, limit: int):
    stmt = select(Compound).where(Compound.community_id == community_id)
    return page_by_id(session, stmt, Compound.id, cursor, limit)


def read_compound(session: Session, compound_id: int) -> Compound:
    compound = get_compound(session, compound_id)
    return compound


def update_compound(session: Session, principal: Principal, compound_id: int, data: CompoundUpdate) -> Compound:
    compound = get_compound(session, compound_id)
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    for k, v in changes.items():
        setattr(compound, k, v)
    session.add(compound)
    _audit(session, principal, "compound.update", compound, compound.community_id, changes=changes)
    _commit(session, "该小区已存在", "This compound already exists")
    return compound


def delete_compound(session: Session, principal: Principal, compound_id: int) -> None:
    compound = get_compound(session, compound_id)
    if session.exec(select(exists().where(Building.compound_id == compound_id))).one():
        raise Conflict("not_empty", "小区下还有楼栋，不能删除", "The compound still has buildings")
    _audit(session, principal, "compound.delete", compound, compound.community_id, name=compound.name)
    session.delete(compound)
    session.commit()


# --- buildings ---------------------------------------------------------------------------------

def get_building(session: Session, building_id: int) -> Building:
    building = session.get(Building, building_id)
    if building is None:
        raise not_found("楼栋", "Building", "building_id")
    return building


def create_building(session: Session, principal: Principal, compound_id: int, data: BuildingCreate) -> Building:
    compound = get_compound(session, compound_id)
    building = Building(name=data.name, compound_id=compound_id, community_id=compound.community_id)
    _insert(session, building, "该楼栋已存在", "This building already exists")
    _audit(session, principal, "building.create", building, compound.community_id, name=building.name)
    _commit(session, "该楼栋已存在", "This building already exists")
    return building


def list_buildings(session: Session, compound_id: int, cursor: str | None, limit: int):
    get_compound(session, compound_id)
    stmt = select(Building).where(Building.compound_id == compound_id)
    return page_by_id(session, stmt, Building.id, cursor, limit)


def read_building(session: Session, building_id: int) -> Building:
    building = get_building(session, building_id)
    return building


def update_building(session: Session, principal: Principal, building_id: int, data: BuildingUpdate) -> Building:
    building = get_building(session, building_id)
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    for k, v in changes.items():
        setattr(building, k, v)
    session.add(building)
    _audit(session, principal, "building.update", building, building.community_id, changes=changes)
    _commit(session, "该楼栋已存在", "This building already exists")
    return building


def delete_building(session: Session, principal: Principal, building_id: int) -> None:
    building = get_building(session, building_id)
    if session.exec(select(exists().where(Household.building_id == building_id))).one():
        raise Conflict("not_empty", "楼栋下还有住户，不能删除", "The building still has households")
    _audit(session, principal, "building.delete", building, building.community_id, name=building.name)
    session.delete(building)
    session.commit()


# --- households --------------------------------------------------------------------------------

def new_public_code(session: Session) -> str:
    while True:
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(8))
        if session.exec(select(Household.id).where(Household.public_code == code)).first() is None:
            return code


def get_household(session: Session, household_id: int) -> Household:
    household = session.get(Household, household_id)
    if household is None:
        raise not_found("住户", "Household", "household_id")
    return household


def get_households(session: Session, household_ids: set[int]) -> dict[int, Household]:
    """Many households by id in one query (those that exist)."""
    if not household_ids:
        return {}
    from app.kit.sql import among

    return {h.id: h for h in session.exec(select(Household).where(among(session, Household.__table__.c.id, household_ids)))}


def set_household_pin(session: Session, household_id: int, pin_hash: str, *, reset_by_user_id: int | None) -> None:
    """Store the household's redemption PIN (an argon2 hash; rewards checks it) and the staff member
    whose reset set it (None when the resident did). Does not commit."""
    household = get_household(session, household_id)
    household.pin_hash = pin_hash
    household.pin_reset_by_user_id = reset_by_user_id
    household.updated_at = utcnow()
    session.add(household)


def _phone_fields(raw: str | None) -> dict[str, str | None]:
    if raw is None or raw == "":
        return {"phone_hash": None, "phone_masked": None}
    normalized = normalize_phone(raw)
    if normalized is None:
        raise BadRequest("invalid_phone", "手机号格式不正确", "Malformed mobile number", "phone")
    return {"phone_hash": phone_hash(normalized), "phone_masked": mask_phone(normalized)}


def to_public(household: Household, building_name: str | None = None) -> HouseholdPublic:
    return HouseholdPublic.model_validate(household, update={"building_name": building_name})


def create_household(session: Session, principal: Principal, community_id: int, data: HouseholdCreate) -> Household:
    building = get_building(session, data.building_id)
    if building.community_id != community_id:
        raise not_found("楼栋", "Building", "building_id")
    household = Household(
        community_id=community_id,
        building_id=building.id,
        unit=data.unit.strip(),
        door_plate=data.door_plate.strip(),
        members=data.members,
        public_code=new_public_code(session),
        **_phone_fields(data.phone),
    )
    _insert(session, household, "该门牌的住户已存在", "A household with this door plate already exists")
    _audit(session, principal, "household.create", household, community_id, door_plate=household.door_plate)
    _commit(session, "该门牌的住户已存在", "A household with this door plate already exists")
    return household


def list_households(
    session: Session,
    community_id: int,
    *,
    q: str | None,
    building_id: int | None,
    status: str | None,
    cursor: str | None,
    limit: int,
):
    stmt = select(Household).where(Household.community_id == community_id)
    if q:
        pattern = q.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        by_plate = Household.door_plate.like(f"{pattern}%", escape="\\")
        code = read_code(q)[0]  # the printed hand-entry code (or a scanned payload) finds its household
        stmt = stmt.where(by_plate | (Household.public_code == code) if code else by_plate)
    if building_id is not None:
        stmt = stmt.where(Household.building_id == building_id)
    if status:
        stmt = stmt.where(Household.status == status)
    rows, next_cursor = page_by_id(session, stmt, Household.id, cursor, limit)
    names = building_names(session, {h.building_id for h in rows})
    return [to_public(h, names.get(h.building_id)) for h in rows], next_cursor


def building_names(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return dict(session.exec(select(Building.id, Building.name).where(Building.id.in_(ids))).all())


def read_household(session: Session, household_id: int) -> HouseholdPublic:
    household = get_household(session, household_id)
    return to_public(household, building_names(session, {household.building_id}).get(household.building_id))


def update_household(session: Session, principal: Principal, household_id: int, data: HouseholdUpdate) -> HouseholdPublic:
    household = get_household(session, household_id)
    changes = data.model_dump(exclude_unset=True)
    phone_changed = "phone" in changes
    raw_phone = changes.pop("phone", None)
    changes = {k: v for k, v in changes.items() if v is not None}
    for k, v in changes.items():
        setattr(household, k, v.strip() if isinstance(v, str) else v)
    if phone_changed:
        for k, v in _phone_fields(raw_phone).items():
            setattr(household, k, v)
    household.updated_at = utcnow()
    session.add(household)
    logged = {k: str(v) for k, v in changes.items()}
    if phone_changed:
        logged["phone"] = "changed"  # never the number itself
    _audit(session, principal, "household.update", household, household.community_id, changes=logged)
    _commit(session, "该门牌的住户已存在", "A household with this door plate already exists")
    return to_public(household, building_names(session, {household.building_id}).get(household.building_id))


def lives_in(session: Session, principal: Principal, community_id: int) -> bool:
    """Whether one of the caller's households is in the community (residents see its challenges,
    recycling days...)."""
    return any(get_household(session, h).community_id == community_id for h in principal.household_ids)


def count_households(session: Session, community_id: int) -> int:
    return session.exec(select(func.count()).select_from(Household).where(Household.community_id == community_id)).one()


# --- door-plate QR codes -----------------------------------------------------------------------

def qr_payload(household: Household) -> str:
    return f"{QR_PREFIX}.{household.public_code}.{sign_code(household.public_code)}"


# What a volunteer types for the hand-entry code (手工输入码) printed under the QR code: any case,
# full-width letters from a Chinese keyboard, spaces, dashes or dots between groups; Cyrillic and
# Greek capitals that look like Latin ones (a phone keyboard left on another language) read as those.
_TYPED_SEPARATORS = re.compile(r"[\s\-_.·‐‑‒–—―]+")
_LOOK_ALIKES = str.maketrans("АВЕКМНОРСТХУΑΒΕΖΗΙΚΜΝΟΡΤΥΧ", "ABEKMHOPCTXYABEZHIKMNOPTYX")
_TYPED = re.compile(r"^[0-9A-Z]{1,16}$")


def typed_code(text: str) -> str | None:
    """The household code a volunteer typed, normalised to the printed form (upper case, no spaces or
    dashes); None for text that cannot be a code. Codes use CODE_ALPHABET (no 0/O, 1/I): a typed 0, O,
    1 or I is kept as typed, names no household and is answered `unknown_code` with a hint."""
    code = _TYPED_SEPARATORS.sub("", unicodedata.normalize("NFKC", text)).upper().translate(_LOOK_ALIKES)
    return code if _TYPED.match(code) else None


def read_code(payload: str) -> tuple[str | None, bool]:
    """(household code, typed) of what a volunteer scanned or typed: the code of a genuine signed
    QR payload, or of a typed hand-entry code; None for a forged payload or text that is no code."""
    text = payload.strip()
    if text.startswith(f"{QR_PREFIX}."):
        try:
            return parse_qr_payload(text), False
        except BadRequest:
            return None, False
    return typed_code(text), True


def parse_qr_payload(payload: str) -> str:
    """The public code of a genuine payload; raises on a forged or altered one."""
    parts = payload.strip().split(".")
    if len(parts) != 3 or parts[0] != QR_PREFIX or not verify_code_signature(parts[1], parts[2]):
        raise BadRequest("forged_code", "二维码无效或已被篡改", "Invalid or forged household code", "payload")
    return parts[1]


def household_by_code(session: Session, code: str) -> Household | None:
    return session.exec(select(Household).where(Household.public_code == code)).first()


def household_qr(session: Session, household_id: int, kind: str) -> bytes:
    """The door plate's QR code as svg or png."""
    import io

    import segno

    household = get_household(session, household_id)
    qr = segno.make(qr_payload(household), error="m")
    buf = io.BytesIO()
    if kind == "svg":
        qr.save(buf, kind="svg", scale=8, border=2)
    else:
        qr.save(buf, kind="png", scale=8, border=2)
    return buf.getvalue()



# --- bulk writes (roster import) ---------------------------------------------------------------

def new_public_codes(session: Session, n: int) -> list[str]:
    """`n` fresh public codes, checked against the table in a few queries rather than one per code."""
    codes: set[str] = set()
    while len(codes) < n:
        batch = {"".join(secrets.choice(CODE_ALPHABET) for _ in range(8)) for _ in range(n - len(codes))} - codes
        for chunk in _chunks(sorted(batch), 500):
            taken = set(session.exec(select(Household.public_code).where(Household.public_code.in_(chunk))).all())
            codes.update(c for c in chunk if c not in taken)
    return list(codes)[:n]


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def phone_columns(normalized: str) -> dict[str, str]:
    """Stored form of an already normalised mobile number: keyed hash and mask, never the number."""
    return {"phone_hash": phone_hash(normalized), "phone_masked": mask_phone(normalized)}


def create_buildings_bulk(session: Session, community_id: int, wanted: list[tuple[int, str]]) -> dict[tuple[int, str], int]:
    """Create buildings given as (compound id, name) in the community (caller commits); returns their ids."""
    created = {}
    for compound_id, name in wanted:
        building = Building(name=name, compound_id=compound_id, community_id=community_id)
        session.add(building)
        session.flush()
        created[(compound_id, name)] = building.id
    return created


def write_households_bulk(
    session: Session, community_id: int, creates: list[dict[str, Any]], updates: list[dict[str, Any]]
) -> None:
    """Set-based insert and update of households in the caller's transaction (caller commits).

    `creates`: building_id, unit, door_plate, members, phone_hash, phone_masked, and optionally
    public_code (the demo generator brings its own, drawn from its seed).
    `updates`: id plus the columns that change. A concurrent writer of the same door plate makes the
    whole batch fail with 409, never half of it.
    """

    now = utcnow()
    try:
        if creates:
            codes = iter(new_public_codes(session, sum(1 for row in creates if not row.get("public_code"))))
            rows = [
                {
                    "community_id": community_id,
                    "status": HouseholdStatus.active.value,
                    "pin_hash": None,
                    "created_at": now,
                    "updated_at": now,
                    **row,
                    "public_code": row.get("public_code") or next(codes),
                }
                for row in creates
            ]
            _insert_households(session, community_id, rows, now)
        if updates:
            _update_households(session, updates, now)
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict(
            "concurrent_change",
            "名单导入时住户数据被同时修改，请重新导入",
            "Households changed while the roster was being imported: import again",
        ) from None


def _update_households(session: Session, updates: list[dict[str, Any]], now) -> None:
    """One UPDATE joined to unnest() of four arrays: a single statement with four parameters, whatever
    the number of households. Members and phone change only where given (NULL keeps the stored value)."""
    from sqlalchemy import text

    session.execute(
        text(
            "UPDATE household AS h SET members = COALESCE(v.members, h.members), "
            "phone_hash = COALESCE(v.phone_hash, h.phone_hash), phone_masked = COALESCE(v.phone_masked, h.phone_masked), "
            "updated_at = :now "
            "FROM unnest(CAST(:ids AS bigint[]), CAST(:members AS integer[]), CAST(:hashes AS varchar[]), CAST(:masked AS varchar[])) "
            "AS v(id, members, phone_hash, phone_masked) WHERE h.id = v.id"
        ),
        {
            "ids": [u["id"] for u in updates],
            "members": [u.get("members") for u in updates],
            "hashes": [u.get("phone_hash") for u in updates],
            "masked": [u.get("phone_masked") for u in updates],
            "now": now,
        },
    )


def _insert_households(session: Session, community_id: int, rows: list[dict[str, Any]], now) -> None:
    """One INSERT … SELECT FROM unnest() of per-column arrays: a few parameters for any number of rows."""
    from sqlalchemy import text

    session.execute(
        text(
            "INSERT INTO household (community_id, building_id, unit, door_plate, members, status, public_code, "
            "phone_hash, phone_masked, pin_hash, created_at, updated_at) "
            "SELECT :community_id, v.building_id, v.unit, v.door_plate, v.members, :status, v.public_code, "
            "v.phone_hash, v.phone_masked, NULL, :now, :now "
            "FROM unnest(CAST(:buildings AS bigint[]), CAST(:units AS varchar[]), CAST(:plates AS varchar[]), "
            "CAST(:members AS integer[]), CAST(:codes AS varchar[]), CAST(:hashes AS varchar[]), CAST(:masked AS varchar[])) "
            "AS v(building_id, unit, door_plate, members, public_code, phone_hash, phone_masked)"
        ),
        {
            "community_id": community_id,
            "status": HouseholdStatus.active.value,
            "now": now,
            "buildings": [r["building_id"] for r in rows],
            "units": [r["unit"] for r in rows],
            "plates": [r["door_plate"] for r in rows],
            "members": [r["members"] for r in rows],
            "codes": [r["public_code"] for r in rows],
            "hashes": [r["phone_hash"] for r in rows],
            "masked": [r["phone_masked"] for r in rows],
        },
    )
