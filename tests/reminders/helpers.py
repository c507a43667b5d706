"""Building blocks for reminder tests: residents who sign in with WeChat and subscribe, a recycling
day tomorrow, compost ready to collect — all through the HTTP API."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import text
from sqlmodel import Session

from app.core.config import get_settings
from tests.field import cid, local_day, payload
from tests.support import auth

RECYCLING = get_settings().wechat_template_recycling_day
COMPOST = get_settings().wechat_template_compost_ready


class Resident:
    def __init__(self, client, world, household_index: int):
        self.name = uuid.uuid4().hex[:10]
        self.openid = f"openid-{self.name}"
        household = world.households[household_index]
        r = client.post("/api/v1/auth/wechat/login", json={"code": f"code-{self.name}"})
        assert r.status_code == 200, r.text
        self.user_id = r.json()["user"]["id"]
        token = r.json()["access_token"]
        r = client.post("/api/v1/auth/wechat/phone", json={"code": f"phone-{world.phones[household.id]}"}, headers=auth(token))
        assert r.status_code == 200 and r.json()["household_ids"] == [household.id], r.text
        self.token = token
        self.household_id = household.id

    def subscribe(self, client, template: str, result: str = "accept", client_id: str | None = None) -> dict[str, int]:
        body = {"client_id": client_id or cid(), "results": {template: result}}
        r = client.post("/api/v1/me/subscriptions", json=body, headers=auth(self.token))
        assert r.status_code == 200, r.text
        return {s["template_id"]: s["remaining"] for s in r.json()["items"]}

    def remaining(self, client) -> dict[str, int]:
        r = client.get("/api/v1/me/subscriptions", headers=auth(self.token))
        assert r.status_code == 200, r.text
        return {s["template_id"]: s["remaining"] for s in r.json()["items"]}


def recycling_day(client, world, days_ahead: int = 1, place: str = "北门广场") -> int:
    body = {"occurs_on": str(local_day() + timedelta(days=days_ahead)), "start_time": "09:00:00", "end_time": "11:00:00", "place": place}
    r = client.post(f"/api/v1/communities/{world.community.id}/recycling-events", json=body, headers=world.h("committee"))
    assert r.status_code == 201, r.text
    return r.json()["id"]


def compost_ready(client, world, household_indexes: list[int]) -> dict[int, int]:
    """A harvested bin fed by these households: their claim ids by household id."""
    keeper = world.h("compost_keeper")
    r = client.post(f"/api/v1/communities/{world.community.id}/compost-sites", json={"name": f"堆肥点{cid()[-6:]}"}, headers=keeper)
    assert r.status_code == 201, r.text
    r = client.post(f"/api/v1/compost-sites/{r.json()['id']}/bins", json={"name": "1号箱", "method": "box", "capacity_l": 200}, headers=keeper)
    assert r.status_code == 201, r.text
    bin_id = r.json()["id"]
    for i in household_indexes:
        body = {"client_id": cid(), "payload": payload(world, i), "weight_g": 1500}
        r = client.post(f"/api/v1/compost-bins/{bin_id}/drops", json=body, headers=world.h("volunteer"))
        assert r.status_code == 201, r.text
    for step in ("close", "ready"):
        r = client.post(f"/api/v1/compost-bins/{bin_id}/{step}", headers=keeper)
        assert r.status_code == 200, r.text
    r = client.post(f"/api/v1/compost-bins/{bin_id}/harvest", json={"compost_g": 3000}, headers=keeper)
    assert r.status_code == 201, r.text
    return {c["household_id"]: c["id"] for c in r.json()["claims"]}


def sent(state, openid: str | None = None) -> list[dict]:
    return [m for m in state.messages if openid is None or m["touser"] == openid]


def outbox_rows(engine, community_id: int) -> list[dict]:
    with Session(engine) as s:
        return [
            dict(r._mapping)
            for r in s.execute(
                text("SELECT kind, object_id, user_id, status, attempts, errcode FROM reminder_outbox WHERE community_id = :c ORDER BY id"),
                {"c": community_id},
            )
        ]
