"""Helpers for the field-operation tests (check-ins, compost, recycling, volunteers, challenges)."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session

from app.core import clock
from app.identity.models import HouseholdMember
from app.identity.service import issue_tokens
from app.places.models import Household
from app.places.service import qr_payload

SHANGHAI = ZoneInfo("Asia/Shanghai")


def payload(world, index: int = 0) -> str:
    with Session(world.engine) as s:
        return qr_payload(s.get(Household, world.households[index].id))


def payloads(world) -> list[str]:
    with Session(world.engine) as s:
        return [qr_payload(s.get(Household, h.id)) for h in world.households]


def yesterday_at(hour: int, minute: int = 0) -> datetime:
    """A local (Asia/Shanghai) time yesterday, by the application's clock: always in the past and
    within the 72-hour limit."""
    return datetime.combine(local_day(1), time(hour, minute), SHANGHAI)


def local_day(days_ago: int = 0) -> date:
    """The local day `days_ago` before today, by the application's clock."""
    return clock.now().astimezone(SHANGHAI).date() - timedelta(days=days_ago)


def cid() -> str:
    return uuid.uuid4().hex


def setup_field(client, world) -> dict:
    """A station and the two usual drop-off windows (07:00–09:00, 18:00–21:00) for `world`."""
    c = world.community.id
    h = world.h("committee")
    station = client.post(f"/api/v1/communities/{c}/stations", json={"name": "3号楼东侧"}, headers=h)
    assert station.status_code == 201, station.text
    morning = client.post(
        f"/api/v1/communities/{c}/drop-windows", json={"name": "早间", "start_time": "07:00", "end_time": "09:00"}, headers=h
    )
    assert morning.status_code == 201, morning.text
    evening = client.post(
        f"/api/v1/communities/{c}/drop-windows", json={"name": "晚间", "start_time": "18:00", "end_time": "21:00"}, headers=h
    )
    assert evening.status_code == 201, evening.text
    return {"station_id": station.json()["id"], "morning": morning.json()["id"], "evening": evening.json()["id"]}


def scan(station_id: int, code: str, at: datetime | None = None, **extra) -> dict:
    body = {"client_id": cid(), "payload": code, "station_id": station_id, "result": "correct"}
    if at is not None:
        body["scanned_at"] = at.isoformat()
    return body | extra


def make_member(world, user: str, household_index: int) -> dict[str, str]:
    """Make a staff user also a member of one of the world's households; returns fresh auth headers."""
    from app.identity.models import User

    with Session(world.engine, expire_on_commit=False) as s:
        s.add(HouseholdMember(user_id=world.users[user], household_id=world.households[household_index].id))
        s.commit()
        token = issue_tokens(s, s.get(User, world.users[user])).access_token
    return {"Authorization": f"Bearer {token}"}


def balance(client, world, household_index: int) -> int:
    hid = world.households[household_index].id
    r = client.get(f"/api/v1/households/{hid}/passbook", headers=world.h("committee"))
    assert r.status_code == 200, r.text
    return r.json()["balance"]


def forged(code: str) -> str:
    """A door-plate payload with its signature's first character changed: never a valid signature."""
    prefix, public, signature = code.split(".")
    return f"{prefix}.{public}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"


def unknown_code() -> str:
    """A genuine (signed) door-plate payload that no household has."""
    from app.core.security import sign_code
    from app.places.service import QR_PREFIX

    return f"{QR_PREFIX}.ZZZZZZZZ.{sign_code('ZZZZZZZZ')}"
