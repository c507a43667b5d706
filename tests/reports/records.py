"""Known records for the rate tests: buildings of chosen sizes and check-ins at chosen local times.

Recent check-ins go through the HTTP batch upload; older ones (a past month) through the check-in
service under `simulated_clock`, as the demo generator replays history (the API refuses scans older
than 72 hours, by design).
"""

from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta

from sqlmodel import Session

from app.core.security import mask_phone, phone_hash
from app.places.models import Building, Compound, Household
from app.places.service import new_public_code, qr_payload
from tests.field import SHANGHAI, local_day, setup_field


def add_buildings(world, compound_name: str, sizes: dict[str, int]) -> dict[str, list[Household]]:
    """A new compound in the world's community with buildings of the given sizes (households)."""
    out: dict[str, list[Household]] = {}
    with Session(world.engine, expire_on_commit=False) as s:
        compound = Compound(name=compound_name, community_id=world.community.id)
        s.add(compound)
        s.flush()
        for name, n in sizes.items():
            b = Building(name=name, compound_id=compound.id, community_id=world.community.id)
            s.add(b)
            s.flush()
            out[name] = []
            for i in range(n):
                phone = f"138{uuid.uuid4().int % 10**8:08d}"
                h = Household(community_id=world.community.id, building_id=b.id, unit="1", door_plate=f"{i + 1}02",
                              members=2, public_code=new_public_code(s), phone_hash=phone_hash(phone),
                              phone_masked=mask_phone(phone))
                s.add(h)
                s.flush()
                out[name].append(h)
        s.commit()
    return out


def codes(world, households) -> list[str]:
    with Session(world.engine) as s:
        return [qr_payload(s.get(Household, h.id)) for h in households]


def at(days_ago: int, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(local_day(days_ago), time(hour, minute), SHANGHAI)


def scan(station_id: int, code: str, when: datetime, result: str = "correct") -> dict:
    body = {"client_id": uuid.uuid4().hex, "payload": code, "station_id": station_id, "result": result,
            "scanned_at": when.isoformat()}
    if result == "incorrect":
        body["reasons"] = ["mixed"]
    return body


def upload(client, world, scans: list[dict]) -> list[dict]:
    r = client.post(f"/api/v1/communities/{world.community.id}/checkins/batch", json={"scans": scans},
                    headers=world.h("volunteer"))
    assert r.status_code == 200, r.text
    return r.json()["results"]


def replay(world, station_id: int, scans: list[dict]) -> None:
    """Record scans of the past through the check-in service, each at its own moment."""
    from app.checkins import service as checkins
    from app.checkins.models import BatchScanIn
    from app.core.db import simulated_clock
    from app.identity.auth import Grant, Principal
    from app.identity.models import Role

    volunteer = Principal(user_id=world.users["volunteer"], grants=(Grant(Role.volunteer, community_id=world.community.id),))
    for body in scans:
        when = datetime.fromisoformat(body["scanned_at"])
        with Session(world.engine) as s, simulated_clock(when + timedelta(minutes=1)):
            [result] = checkins.record_scans(s, volunteer, world.community.id, [BatchScanIn(**body)])
            assert result.status.value == "accepted", result


__all__ = ["add_buildings", "codes", "at", "scan", "upload", "replay", "setup_field"]


def _staff(world, role: str):
    from app.identity.auth import Grant, Principal
    from app.identity.models import Role

    return Principal(user_id=world.users[role], grants=(Grant(Role(role), community_id=world.community.id),))


def shift(world, role: str, start: datetime, minutes: int) -> None:
    """A volunteer's shift signed in at `start` and out `minutes` later, through the volunteer service."""
    from app.core.db import simulated_clock
    from app.volunteers import service as volunteers
    from app.volunteers.models import ShiftEnd, ShiftStart

    who = _staff(world, role)
    with Session(world.engine) as s, simulated_clock(start):
        row, _ = volunteers.start_shift(s, who, world.community.id, ShiftStart(client_id=uuid.uuid4().hex))
        shift_id = row.id
    with Session(world.engine) as s, simulated_clock(start + timedelta(minutes=minutes)):
        volunteers.end_shift(s, who, shift_id, ShiftEnd())


def harvest(client, world, when: datetime, grams: int) -> None:
    """A bin (made through the API) closed, made ready and opened at `when`, through the compost service."""
    from app.compost import service as compost
    from app.core.db import simulated_clock

    keeper = world.h("compost_keeper")
    site = client.post(f"/api/v1/communities/{world.community.id}/compost-sites", json={"name": f"堆肥点{uuid.uuid4().hex[:6]}"},
                       headers=keeper)
    assert site.status_code == 201, site.text
    b = client.post(f"/api/v1/compost-sites/{site.json()['id']}/bins", json={"name": "1号箱", "method": "box", "capacity_l": 200},
                    headers=keeper)
    assert b.status_code == 201, b.text
    who = _staff(world, "compost_keeper")
    with Session(world.engine) as s, simulated_clock(when):
        compost.close_bin(s, who, b.json()["id"])
        compost.mark_ready(s, who, b.json()["id"])
        compost.harvest(s, who, b.json()["id"], grams)
