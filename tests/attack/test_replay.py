"""Every mutating endpoint, sent twice with the same body (same idempotency key / client id): no double effect.

A phone on a bad network retries. The second request must leave the database exactly as the first
left it: no extra row in any table, no point moved twice, no second audit entry for the same act.
A new mutating route fails `test_every_mutating_route_is_replayed` until it is added here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlmodel import Session, SQLModel

from app.core.config import get_settings
from app.core.db import utcnow
from app.main import app
from tests.support import World

# Tables that record attempts rather than effects: each attempt may add a row (sign-ins).
ATTEMPT_LOGS = {"refresh_token"}


@dataclass
class Call:
    method: str
    url: str
    role: str
    kwargs: dict
    # Each attempt may leave its own record (an audit row, an import report) while the effect happens once.
    attempt_logged: bool = False


def _snapshot(engine) -> dict[str, int]:
    state: dict[str, int] = {}
    with Session(engine) as s:
        for name in sorted(SQLModel.metadata.tables):
            if name not in ATTEMPT_LOGS:
                state[name] = s.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one()
        state["balance"], state["version"] = s.execute(
            text("SELECT coalesce(sum(balance), 0), coalesce(sum(version), 0) FROM ledger_account")
        ).one()
        state["posted"] = s.execute(text("SELECT coalesce(sum(abs(amount)), 0) FROM posting")).scalar_one()
    return state


def _key() -> str:
    return f"replay-{uuid.uuid4().hex}"


def _entry_to_reverse(client, w: World) -> int:
    r = client.post(
        f"/api/v1/households/{w.households[1].id}/adjustments",
        json={"points": 30, "reason": "先加分", "idempotency_key": _key()},
        headers=w.h("committee"),
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _guide_entry(client, w: World) -> str:
    name = f"旧床垫{_key()[-6:]}"
    r = client.put(f"/api/v1/communities/{w.community.id}/guide/items/{name}", json={"group": "other", "instruction": "预约大件"}, headers=w.h("committee"))
    assert r.status_code == 200, r.text
    return name


def _empty_compound(client, w: World) -> int:
    r = client.post(f"/api/v1/communities/{w.community.id}/compounds", json={"name": f"空{_key()[-6:]}"}, headers=w.h("committee"))
    return r.json()["id"]


def _empty_building(client, w: World) -> int:
    r = client.post(f"/api/v1/compounds/{w.compound.id}/buildings", json={"name": f"空{_key()[-6:]}"}, headers=w.h("committee"))
    return r.json()["id"]


def _fund(client, w: World, household_id: int, points: int = 200) -> None:
    r = client.post(
        f"/api/v1/households/{household_id}/adjustments",
        json={"points": points, "reason": "兑换前充值", "idempotency_key": _key()},
        headers=w.h("committee"),
    )
    assert r.status_code == 201, r.text


def _item(client, w: World, price: int = 10) -> int:
    r = client.post(
        f"/api/v1/communities/{w.community.id}/rewards",
        json={"name": f"环保袋{_key()[-6:]}", "price_points": price, "stock": 50},
        headers=w.h("committee"),
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _pin(client, w: World, household_id: int) -> str:
    """The household's PIN, reset by the committee and confirmed by a second staff member (the clerk spends)."""
    r = client.post(f"/api/v1/households/{household_id}/pin-resets", json={"pin": "246813", "idempotency_key": _key()}, headers=w.h("committee"))
    assert r.status_code == 201, r.text
    r = client.post(f"/api/v1/pin-resets/{r.json()['id']}/confirm", headers=w.h("org_admin"))
    assert r.status_code == 200, r.text
    return "246813"


def _pending_pin_reset(client, w: World) -> int:
    r = client.post(f"/api/v1/households/{w.households[4].id}/pin-resets", json={"pin": "907132", "idempotency_key": _key()}, headers=w.h("committee"))
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _reservation(client, w: World) -> int:
    h = w.households[0].id  # the resident's household
    _fund(client, w, h)
    r = client.post(
        f"/api/v1/households/{h}/redemptions",
        json={"item_id": _item(client, w), "quantity": 1, "idempotency_key": _key()},
        headers=w.h("resident"),
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _fulfil(client, w: World) -> Call:
    redemption = _reservation(client, w)
    pin = _pin(client, w, w.households[0].id)
    return Call("POST", f"/api/v1/redemptions/{redemption}/fulfil", "clerk", {"json": {"pin": pin}})


def _reserve(client, w: World) -> Call:
    h = w.households[0].id
    _fund(client, w, h)
    body = {"item_id": _item(client, w), "quantity": 2, "idempotency_key": _key()}
    return Call("POST", f"/api/v1/households/{h}/redemptions", "resident", {"json": body})


def _counter(client, w: World) -> Call:
    h = w.households[3].id
    _fund(client, w, h)
    body = {"household_id": h, "items": [{"item_id": _item(client, w), "quantity": 1}], "pin": _pin(client, w, h), "idempotency_key": _key()}
    return Call("POST", f"/api/v1/communities/{w.community.id}/counter-redemptions", "clerk", {"json": body})


def _voucher_code(client, w: World) -> str:
    r = client.post(
        f"/api/v1/communities/{w.community.id}/vouchers",
        json={"points": 40, "memo": "回收日", "idempotency_key": _key()},
        headers=w.h("committee"),
    )
    assert r.status_code == 201, r.text
    return r.json()["claim_code"]


def _roster() -> bytes:
    return "楼栋,单元,门牌,人数\n1号楼,1,901,2\n1号楼,1,902,3\n".encode()


c = "/api/v1/communities/{community_id}"
REPLAYS: dict[tuple[str, str], Callable[..., Call]] = {
    ("POST", "/api/v1/households/{household_id}/adjustments"): lambda client, w: Call(
        "POST", f"/api/v1/households/{w.households[0].id}/adjustments", "committee",
        {"json": {"points": 25, "reason": "补录积分", "idempotency_key": _key()}},
    ),
    ("POST", "/api/v1/ledger/entries/{entry_id}/reverse"): lambda client, w: Call(
        "POST", f"/api/v1/ledger/entries/{_entry_to_reverse(client, w)}/reverse", "committee",
        {"json": {"reason": "录错了", "idempotency_key": _key()}},
    ),
    ("POST", c + "/ledger/expiry-runs"): lambda client, w: Call("POST", f"/api/v1/communities/{w.community.id}/ledger/expiry-runs", "committee", {}, True),
    ("PUT", c + "/guide/items/{name}"): lambda client, w: Call(
        "PUT", f"/api/v1/communities/{w.community.id}/guide/items/旧沙发{_key()[-6:]}", "committee",
        {"json": {"group": "recyclable", "synonyms": ["沙发"], "instruction": "预约大件回收"}},
    ),
    ("DELETE", c + "/guide/items/{name}"): lambda client, w: Call(
        "DELETE", f"/api/v1/communities/{w.community.id}/guide/items/{_guide_entry(client, w)}", "committee", {},
    ),
    ("PUT", c + "/ledger/policy"): lambda client, w: Call(
        "PUT", f"/api/v1/communities/{w.community.id}/ledger/policy", "committee",
        {"json": {"expiry_mode": "rolling", "expiry_months": 12}}, True,
    ),
    ("POST", c + "/roster-imports"): lambda client, w: Call(
        "POST", f"/api/v1/communities/{w.community.id}/roster-imports", "committee",
        # No Idempotency-Key: the phone resending the same file straight after a timeout gets the
        # first report back (200, replayed) and no second import report row.
        {"files": {"file": ("roster.csv", _roster(), "text/csv")}, "data": {"mode": "valid_rows"}},
    ),
    ("POST", c + "/labels"): lambda client, w: Call(
        "POST", f"/api/v1/communities/{w.community.id}/labels", "committee",
        {"json": {"household_ids": [w.households[0].id]}}, True,
    ),
    ("POST", "/api/v1/me/subscriptions"): lambda client, w: Call(
        "POST", "/api/v1/me/subscriptions", "resident",
        {"json": {"client_id": _key(), "results": {get_settings().wechat_template_recycling_day: "accept"}}},
    ),
    ("POST", "/api/v1/scan/resolve"): lambda client, w: Call("POST", "/api/v1/scan/resolve", "volunteer", {"json": {"payload": _payload(w)}}),
    ("POST", "/api/v1/households/{household_id}/redemptions"): _reserve,
    ("POST", "/api/v1/redemptions/{redemption_id}/fulfil"): _fulfil,
    ("POST", "/api/v1/redemptions/{redemption_id}/cancel"): lambda client, w: Call(
        "POST", f"/api/v1/redemptions/{_reservation(client, w)}/cancel", "committee", {"json": {"reason": "不要了"}},
    ),
    ("POST", c + "/counter-redemptions"): _counter,
    ("POST", c + "/redemptions/lapse-runs"): lambda client, w: Call("POST", f"/api/v1/communities/{w.community.id}/redemptions/lapse-runs", "committee", {}, True),
    ("PUT", "/api/v1/households/{household_id}/pin"): lambda client, w: Call(
        "PUT", f"/api/v1/households/{w.households[0].id}/pin", "resident", {"json": {"pin": "135792"}}, True,
    ),
    ("POST", "/api/v1/households/{household_id}/pin-resets"): lambda client, w: Call(
        "POST", f"/api/v1/households/{w.households[4].id}/pin-resets", "committee", {"json": {"pin": "907132", "idempotency_key": _key()}},
    ),
    ("POST", "/api/v1/pin-resets/{pin_reset_id}/confirm"): lambda client, w: Call(
        "POST", f"/api/v1/pin-resets/{_pending_pin_reset(client, w)}/confirm", "clerk", {},
    ),
    ("PATCH", "/api/v1/rewards/{item_id}"): lambda client, w: Call("PATCH", f"/api/v1/rewards/{_item(client, w)}", "committee", {"json": {"price_points": 12}}, True),
    ("DELETE", "/api/v1/rewards/{item_id}"): lambda client, w: Call("DELETE", f"/api/v1/rewards/{_item(client, w)}", "committee", {}, True),
    ("POST", c + "/vouchers"): lambda client, w: Call(
        "POST", f"/api/v1/communities/{w.community.id}/vouchers", "committee", {"json": {"points": 30, "idempotency_key": _key()}},
    ),
    ("POST", "/api/v1/households/{household_id}/voucher-claims"): lambda client, w: Call(
        "POST", f"/api/v1/households/{w.households[0].id}/voucher-claims", "resident", {"json": {"code": _voucher_code(client, w)}},
    ),
    ("POST", c + "/vouchers/expiry-runs"): lambda client, w: Call("POST", f"/api/v1/communities/{w.community.id}/vouchers/expiry-runs", "committee", {}, True),
    # Creates with a natural key: the retry is refused (409) and nothing is added.
    ("POST", "/api/v1/streets"): lambda client, w: Call(
        "POST", "/api/v1/streets", "platform_admin", {"json": {"city": "苏州市", "district": "姑苏区", "name": f"重放街道{_key()[-6:]}"}},
    ),
    ("POST", c + "/compounds"): lambda client, w: Call(
        "POST", f"/api/v1/communities/{w.community.id}/compounds", "committee", {"json": {"name": f"二期{_key()[-6:]}"}},
    ),
    ("POST", "/api/v1/compounds/{compound_id}/buildings"): lambda client, w: Call(
        "POST", f"/api/v1/compounds/{w.compound.id}/buildings", "committee", {"json": {"name": f"{_key()[-4:]}号楼"}},
    ),
    ("POST", c + "/households"): lambda client, w: Call(
        "POST", f"/api/v1/communities/{w.community.id}/households", "committee",
        {"json": {"building_id": w.buildings[0].id, "unit": "2", "door_plate": _key()[-6:], "members": 2}},
    ),
    ("POST", "/api/v1/staff"): lambda client, w: Call(
        "POST", "/api/v1/staff", "committee", {"json": {"username": f"staff-{_key()[-8:]}", "password": "pass-word-2026", "display_name": "新同事"}},
    ),
    # Grants change a new colleague's roles: the world's staff keep theirs for the other replays, in any order.
    ("POST", "/api/v1/grants"): lambda client, w: Call(
        "POST", "/api/v1/grants", "committee", {"json": {"user_id": w.bystander(None), "role": "volunteer", "community_id": w.community.id}},
    ),
    ("POST", "/api/v1/grants/revoke"): lambda client, w: Call(
        "POST", "/api/v1/grants/revoke", "committee", {"json": {"user_id": w.bystander(), "role": "volunteer", "community_id": w.community.id}},
    ),
    ("POST", "/api/v1/organisations/{organisation_id}/communities"): lambda client, w: Call(
        "POST", f"/api/v1/organisations/{w.organisation.id}/communities", "platform_admin", {"json": {"community_id": w.community.id}},
    ),
    # Updates and deletes: the same request again changes nothing more.
    ("PATCH", c): lambda client, w: Call("PATCH", f"/api/v1/communities/{w.community.id}", "committee", {"json": {"name": "改名社区"}}, True),
    ("PATCH", "/api/v1/compounds/{compound_id}"): lambda client, w: Call("PATCH", f"/api/v1/compounds/{w.compound.id}", "committee", {"json": {"name": "改名小区"}}, True),
    ("PATCH", "/api/v1/buildings/{building_id}"): lambda client, w: Call("PATCH", f"/api/v1/buildings/{w.buildings[0].id}", "committee", {"json": {"name": "改名楼"}}, True),
    ("PATCH", "/api/v1/households/{household_id}"): lambda client, w: Call(
        "PATCH", f"/api/v1/households/{w.households[0].id}", "committee", {"json": {"members": 5}}, True,
    ),
    ("DELETE", "/api/v1/compounds/{compound_id}"): lambda client, w: Call("DELETE", f"/api/v1/compounds/{_empty_compound(client, w)}", "committee", {}),
    ("DELETE", "/api/v1/buildings/{building_id}"): lambda client, w: Call("DELETE", f"/api/v1/buildings/{_empty_building(client, w)}", "committee", {}),
}


# --- field operations (check-ins, compost, recycling days, volunteers, activities) ------------------

def _field(client, w: World) -> dict:
    """A station and two half-day windows in the shared community, so scans at any time are in a window."""
    if getattr(w, "_field", None) is None:
        h = w.h("committee")
        station = client.post(f"/api/v1/communities/{w.community.id}/stations", json={"name": f"投放点{_key()[-6:]}"}, headers=h)
        assert station.status_code == 201, station.text
        for name, starts, ends in (("上午全段", "00:00", "12:00"), ("下午全段", "12:00", "23:59:59.999999")):
            r = client.post(f"/api/v1/communities/{w.community.id}/drop-windows", json={"name": name, "start_time": starts, "end_time": ends}, headers=h)
            assert r.status_code == 201, r.text
        w._field = {"station_id": station.json()["id"]}
    return w._field


def _scan(client, w: World, index: int) -> dict:
    from tests.field import payload

    return {"client_id": _key(), "payload": payload(w, index), "station_id": _field(client, w)["station_id"], "result": "correct"}


def _window(client, w: World) -> int:
    body = {"name": f"夜{_key()[-6:]}", "start_time": "22:00", "end_time": "23:00", "active": False}
    r = client.post(f"/api/v1/communities/{w.community.id}/drop-windows", json=body, headers=w.h("committee"))
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _checkin(client, w: World, index: int = 5) -> int:
    r = client.post(f"/api/v1/communities/{w.community.id}/checkins", json=_scan(client, w, index), headers=w.h("volunteer"))
    assert r.status_code in (200, 201), r.text
    return r.json()["checkin_id"]


def _site(client, w: World) -> int:
    r = client.post(f"/api/v1/communities/{w.community.id}/compost-sites", json={"name": f"堆肥点{_key()[-6:]}"}, headers=w.h("compost_keeper"))
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _bin(client, w: World, *steps: str) -> int:
    r = client.post(f"/api/v1/compost-sites/{_site(client, w)}/bins", json={"name": "1号箱", "method": "box", "capacity_l": 200}, headers=w.h("compost_keeper"))
    assert r.status_code == 201, r.text
    bin_id = r.json()["id"]
    for step in steps:
        if step == "drop":
            _drop(client, w, bin_id)
            continue
        body = {"compost_g": 1000} if step == "harvest" else None
        r = client.post(f"/api/v1/compost-bins/{bin_id}/{step}", json=body, headers=w.h("compost_keeper"))
        assert r.status_code in (200, 201), r.text
    return bin_id


def _drop(client, w: World, bin_id: int) -> int:
    from tests.field import payload

    body = {"client_id": _key(), "payload": payload(w, 1), "weight_g": 1500}
    r = client.post(f"/api/v1/compost-bins/{bin_id}/drops", json=body, headers=w.h("volunteer"))
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _claim(client, w: World) -> int:
    bin_id = _bin(client, w, "drop", "close", "ready")
    r = client.post(f"/api/v1/compost-bins/{bin_id}/harvest", json={"compost_g": 2000}, headers=w.h("compost_keeper"))
    assert r.status_code == 201, r.text
    return r.json()["claims"][0]["id"]


def _next_saturday():
    from tests.field import local_day

    today = local_day()
    return today + timedelta(days=(5 - today.weekday()) % 7 or 7)


def _schedule_body() -> dict:
    return {"name": f"回收日{_key()[-6:]}", "rrule": "FREQ=WEEKLY;INTERVAL=2;BYDAY=SA", "starts_on": _next_saturday().isoformat(),
            "start_time": "09:00", "end_time": "11:00", "place": "北门"}


def _schedule(client, w: World) -> int:
    r = client.post(f"/api/v1/communities/{w.community.id}/recycling-schedules", json=_schedule_body(), headers=w.h("committee"))
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _rate(client, w: World) -> str:
    code = f"c_{_key()[-8:].lower()}"
    r = client.put(f"/api/v1/communities/{w.community.id}/recycling-rates/{code}", json={"name": "旧衣", "unit": "kg", "points": 1},
                   headers=w.h("committee"))
    assert r.status_code == 201, r.text
    return code


def _event_today(client, w: World) -> int:
    from tests.field import local_day

    r = client.put(f"/api/v1/communities/{w.community.id}/recycling-rates/paper", json={"name": "废纸", "unit": "kg", "points": 5}, headers=w.h("committee"))
    assert r.status_code in (200, 201), r.text
    body = {"occurs_on": local_day().isoformat(), "start_time": "00:00", "end_time": "23:59", "place": f"广场{_key()[-6:]}"}
    r = client.post(f"/api/v1/communities/{w.community.id}/recycling-events", json=body, headers=w.h("committee"))
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _weigh_in_body(w: World) -> dict:
    from tests.field import payload

    return {"client_id": _key(), "payload": payload(w, 2), "category": "paper", "weight_g": 2000}


def _weigh_in(client, w: World) -> int:
    r = client.post(f"/api/v1/recycling-events/{_event_today(client, w)}/weigh-ins", json=_weigh_in_body(w), headers=w.h("clerk"))
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _team(client, w: World) -> int:
    r = client.post(f"/api/v1/communities/{w.community.id}/volunteer-teams", json={"name": f"队{_key()[-6:]}"}, headers=w.h("committee"))
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _open_shift(client, w: World) -> int:
    r = client.post(f"/api/v1/communities/{w.community.id}/shifts", json={"client_id": _key()}, headers=w.h("supervisor"))
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _activity_body() -> dict:
    from tests.field import local_day

    return {"client_id": _key(), "kind": "lecture", "title": "大讲堂", "held_on": local_day().isoformat(), "participants": 30}


def _activity(client, w: World) -> int:
    r = client.post(f"/api/v1/communities/{w.community.id}/activities", json=_activity_body(), headers=w.h("committee"))
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _media_item(client, w: World) -> int:
    body = {"client_id": _key(), "title": "减废故事", "channel": "视频号", "published_on": "2026-11-02", "reads": 10}
    r = client.post(f"/api/v1/communities/{w.community.id}/media-items", json=body, headers=w.h("committee"))
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _challenge_body() -> dict:
    from tests.field import local_day

    return {"title": f"减塑打卡{_key()[-6:]}", "days_required": 3, "starts_on": (local_day() - timedelta(days=5)).isoformat(),
            "ends_on": (local_day() + timedelta(days=30)).isoformat()}


def _challenge(client, w: World, join: bool = False) -> int:
    r = client.post(f"/api/v1/communities/{w.community.id}/challenges", json=_challenge_body(), headers=w.h("committee"))
    assert r.status_code == 201, r.text
    if join:
        j = client.post(f"/api/v1/challenges/{r.json()['id']}/enrolments", json={"household_id": w.households[0].id}, headers=w.h("resident"))
        assert j.status_code == 201, j.text
    return r.json()["id"]


REPLAYS.update({
    ("POST", c + "/points-rules"): lambda client, w: Call(
        "POST", f"/api/v1/communities/{w.community.id}/points-rules", "committee", {"json": {"checkin_correct": 10, "compost_per_kg": 10}},
    ),
    ("POST", c + "/stations"): lambda client, w: Call("POST", f"/api/v1/communities/{w.community.id}/stations", "committee", {"json": {"name": f"东门{_key()[-6:]}"}}),
    ("PATCH", "/api/v1/stations/{station_id}"): lambda client, w: Call(
        "PATCH", f"/api/v1/stations/{_field(client, w)['station_id']}", "committee", {"json": {"location": "3号楼东侧"}}, True,
    ),
    ("POST", c + "/drop-windows"): lambda client, w: Call(
        "POST", f"/api/v1/communities/{w.community.id}/drop-windows", "committee",
        {"json": {"name": f"夜{_key()[-6:]}", "start_time": "22:00", "end_time": "23:00", "active": False}},
    ),
    ("PATCH", "/api/v1/drop-windows/{window_id}"): lambda client, w: Call(
        "PATCH", f"/api/v1/drop-windows/{_window(client, w)}", "committee", {"json": {"weekdays": "67"}}, True,
    ),
    ("POST", c + "/checkins"): lambda client, w: Call("POST", f"/api/v1/communities/{w.community.id}/checkins", "volunteer", {"json": _scan(client, w, 1)}),
    ("POST", c + "/checkins/batch"): lambda client, w: Call(
        "POST", f"/api/v1/communities/{w.community.id}/checkins/batch", "volunteer",
        {"json": {"scans": [_scan(client, w, 2) | {"scanned_at": utcnow().isoformat()}, _scan(client, w, 3) | {"scanned_at": utcnow().isoformat()}]}},
    ),
    ("POST", "/api/v1/checkins/{checkin_id}/amend"): lambda client, w: Call(
        "POST", f"/api/v1/checkins/{_checkin(client, w, 6)}/amend", "volunteer", {"json": {"result": "incorrect", "reasons": ["mixed"]}}, True,
    ),
    ("POST", "/api/v1/checkins/{checkin_id}/reverse"): lambda client, w: Call(
        "POST", f"/api/v1/checkins/{_checkin(client, w)}/reverse", "supervisor", {"json": {"reason": "扫错门牌"}},
    ),
    ("POST", c + "/compost-sites"): lambda client, w: Call(
        "POST", f"/api/v1/communities/{w.community.id}/compost-sites", "compost_keeper", {"json": {"name": f"堆肥点{_key()[-6:]}"}},
    ),
    ("POST", "/api/v1/compost-sites/{site_id}/bins"): lambda client, w: Call(
        "POST", f"/api/v1/compost-sites/{_site(client, w)}/bins", "compost_keeper", {"json": {"name": "2号箱", "method": "worm", "capacity_l": 100}},
    ),
    ("POST", "/api/v1/compost-bins/{bin_id}/close"): lambda client, w: Call("POST", f"/api/v1/compost-bins/{_bin(client, w)}/close", "compost_keeper", {}),
    ("POST", "/api/v1/compost-bins/{bin_id}/ready"): lambda client, w: Call("POST", f"/api/v1/compost-bins/{_bin(client, w, 'close')}/ready", "compost_keeper", {}),
    ("POST", "/api/v1/compost-bins/{bin_id}/harvest"): lambda client, w: Call(
        "POST", f"/api/v1/compost-bins/{_bin(client, w, 'drop', 'close', 'ready')}/harvest", "compost_keeper", {"json": {"compost_g": 1000}},
    ),
    ("POST", "/api/v1/compost-bins/{bin_id}/reopen"): lambda client, w: Call(
        "POST", f"/api/v1/compost-bins/{_bin(client, w, 'close', 'ready', 'harvest')}/reopen", "compost_keeper", {},
    ),
    ("POST", "/api/v1/compost-bins/{bin_id}/drops"): lambda client, w: Call(
        "POST", f"/api/v1/compost-bins/{_bin(client, w)}/drops", "volunteer", {"json": {"client_id": _key(), "payload": _payload(w), "weight_g": 800}},
    ),
    ("POST", "/api/v1/compost-bins/{bin_id}/readings"): lambda client, w: Call(
        "POST", f"/api/v1/compost-bins/{_bin(client, w)}/readings", "compost_keeper", {"json": {"client_id": _key(), "temperature_c": 52.5}},
    ),
    ("POST", "/api/v1/compost-drops/{drop_id}/reverse"): lambda client, w: Call(
        "POST", f"/api/v1/compost-drops/{_drop(client, w, _bin(client, w))}/reverse", "compost_keeper", {"json": {"reason": "称重有误"}},
    ),
    ("POST", "/api/v1/compost-claims/{claim_id}/collect"): lambda client, w: Call("POST", f"/api/v1/compost-claims/{_claim(client, w)}/collect", "compost_keeper", {}),
    ("PUT", c + "/recycling-rates/{code}"): lambda client, w: Call(
        "PUT", f"/api/v1/communities/{w.community.id}/recycling-rates/milk_carton", "committee",
        {"json": {"name": "牛奶盒", "unit": "item", "points": 1}}, True,
    ),
    # The same group again changes nothing (no audit row).
    ("PUT", c + "/recycling-rates/{code}/waste-group"): lambda client, w: Call(
        "PUT", f"/api/v1/communities/{w.community.id}/recycling-rates/{_rate(client, w)}/waste-group", "committee",
        {"json": {"waste_group": "other"}},
    ),
    ("POST", c + "/recycling-schedules"): lambda client, w: Call(
        "POST", f"/api/v1/communities/{w.community.id}/recycling-schedules", "committee", {"json": _schedule_body()},
    ),
    ("POST", "/api/v1/recycling-schedules/{schedule_id}/extend"): lambda client, w: Call(
        "POST", f"/api/v1/recycling-schedules/{_schedule(client, w)}/extend", "committee", {"json": {"through": (_next_saturday() + timedelta(days=500)).isoformat()}},
    ),
    ("POST", "/api/v1/recycling-schedules/{schedule_id}/exceptions"): lambda client, w: Call(
        "POST", f"/api/v1/recycling-schedules/{_schedule(client, w)}/exceptions", "committee",
        {"json": {"original_date": _next_saturday().isoformat(), "action": "cancel", "note": "因雨取消"}},
    ),
    ("POST", c + "/recycling-events"): lambda client, w: Call(
        "POST", f"/api/v1/communities/{w.community.id}/recycling-events", "committee",
        {"json": {"occurs_on": _next_saturday().isoformat(), "start_time": "09:00", "end_time": "11:00", "place": f"南门{_key()[-6:]}"}},
    ),
    ("PUT", "/api/v1/recycling-events/{event_id}/categories"): lambda client, w: Call(
        "PUT", f"/api/v1/recycling-events/{_event_today(client, w)}/categories", "committee",
        {"json": [{"code": "battery", "name": "电池", "unit": "item", "points": 2}]}, True,
    ),
    ("POST", "/api/v1/recycling-events/{event_id}/weigh-ins"): lambda client, w: Call(
        "POST", f"/api/v1/recycling-events/{_event_today(client, w)}/weigh-ins", "clerk", {"json": _weigh_in_body(w)},
    ),
    ("POST", "/api/v1/recycling-events/{event_id}/backdated-weigh-ins"): lambda client, w: Call(
        "POST", f"/api/v1/recycling-events/{_event_today(client, w)}/backdated-weigh-ins", "committee",
        {"json": {"reason": "纸质登记表补录", "weigh_ins": [_weigh_in_body(w)]}},
    ),
    ("POST", "/api/v1/weigh-ins/{weigh_in_id}/reverse"): lambda client, w: Call(
        "POST", f"/api/v1/weigh-ins/{_weigh_in(client, w)}/reverse", "clerk", {"json": {"reason": "称错了"}},
    ),
    ("POST", "/api/v1/recycling-events/{event_id}/destinations"): lambda client, w: Call(
        "POST", f"/api/v1/recycling-events/{_event_today(client, w)}/destinations", "clerk",
        {"json": {"client_id": _key(), "category": "paper", "quantity_g": 12000, "kind": "collector", "destination": "再生资源回收站"}},
    ),
    ("POST", c + "/volunteer-teams"): lambda client, w: Call(
        "POST", f"/api/v1/communities/{w.community.id}/volunteer-teams", "committee", {"json": {"name": f"盯桶侠{_key()[-6:]}"}},
    ),
    ("POST", "/api/v1/volunteer-teams/{team_id}/members"): lambda client, w: Call(
        "POST", f"/api/v1/volunteer-teams/{_team(client, w)}/members", "committee", {"json": {"user_id": w.users["compost_keeper"]}},
    ),
    ("POST", c + "/shifts"): lambda client, w: Call("POST", f"/api/v1/communities/{w.community.id}/shifts", "clerk", {"json": {"client_id": _key()}}),
    ("POST", "/api/v1/shifts/{shift_id}/sign-out"): lambda client, w: Call("POST", f"/api/v1/shifts/{_open_shift(client, w)}/sign-out", "supervisor", {"json": {}}),
    ("POST", c + "/activities"): lambda client, w: Call("POST", f"/api/v1/communities/{w.community.id}/activities", "committee", {"json": _activity_body()}),
    ("PATCH", "/api/v1/activities/{activity_id}"): lambda client, w: Call(
        "PATCH", f"/api/v1/activities/{_activity(client, w)}", "committee", {"json": {"participants": 45}}, True,
    ),
    ("POST", c + "/challenges"): lambda client, w: Call("POST", f"/api/v1/communities/{w.community.id}/challenges", "committee", {"json": _challenge_body()}),
    ("POST", "/api/v1/challenges/{challenge_id}/enrolments"): lambda client, w: Call(
        "POST", f"/api/v1/challenges/{_challenge(client, w)}/enrolments", "resident", {"json": {"household_id": w.households[0].id}},
    ),
    ("POST", "/api/v1/challenges/{challenge_id}/checkins"): lambda client, w: Call(
        "POST", f"/api/v1/challenges/{_challenge(client, w, join=True)}/checkins", "resident", {"json": {"household_id": w.households[0].id}},
    ),
    # Reports: the same thresholds again change nothing (no audit row); a media item is keyed by its client id.
    ("PUT", c + "/reports/ranking-settings"): lambda client, w: Call(
        "PUT", f"/api/v1/communities/{w.community.id}/reports/ranking-settings", "committee",
        {"json": {"accuracy_pct": 90 + int(_key()[-1], 16) % 10, "participation_pct": 61}},
    ),
    ("PATCH", "/api/v1/media-items/{media_item_id}"): lambda client, w: Call(
        "PATCH", f"/api/v1/media-items/{_media_item(client, w)}", "committee", {"json": {"reads": 2400}},
    ),
    ("POST", c + "/media-items"): lambda client, w: Call(
        "POST", f"/api/v1/communities/{w.community.id}/media-items", "committee",
        {"json": {"client_id": _key(), "title": "垃圾分类进社区", "channel": "微信公众号", "published_on": "2026-11-02", "reads": 1200}},
    ),
})

def _network(client, w: World, partner: bool = False) -> int:
    r = client.post("/api/v1/networks", json={"name": f"网络{_key()}"}, headers=w.h("platform_admin"))
    assert r.status_code == 201, r.text
    if partner:
        added = client.post(f"/api/v1/networks/{r.json()['id']}/partners", json={"organisation_id": w.organisation.id},
                            headers=w.h("platform_admin"))
        assert added.status_code == 200, added.text
    return r.json()["id"]


def _named_activity(client, w: World) -> int:
    activity_id = _activity(client, w)
    r = client.post(f"/api/v1/activities/{activity_id}/attendees", json={"household_ids": [w.households[0].id]}, headers=w.h("committee"))
    assert r.status_code == 200, r.text
    return activity_id


# Networks and attendees: the same network name, partner or household again changes nothing.
REPLAYS.update({
    ("POST", "/api/v1/networks"): lambda client, w: Call(
        "POST", "/api/v1/networks", "platform_admin", {"json": {"name": f"网络{_key()}", "coordinator_organisation_id": w.organisation.id}},
    ),
    ("POST", "/api/v1/networks/{network_id}/partners"): lambda client, w: Call(
        "POST", f"/api/v1/networks/{_network(client, w)}/partners", "platform_admin", {"json": {"organisation_id": w.organisation.id}},
    ),
    ("DELETE", "/api/v1/networks/{network_id}/partners/{organisation_id}"): lambda client, w: Call(
        "DELETE", f"/api/v1/networks/{_network(client, w, partner=True)}/partners/{w.organisation.id}", "platform_admin", {},
    ),
    ("POST", "/api/v1/activities/{activity_id}/attendees"): lambda client, w: Call(
        "POST", f"/api/v1/activities/{_activity(client, w)}/attendees", "committee",
        {"json": {"household_ids": [w.households[0].id, w.households[1].id]}},
    ),
    ("DELETE", "/api/v1/activities/{activity_id}/attendees/{household_id}"): lambda client, w: Call(
        "DELETE", f"/api/v1/activities/{_named_activity(client, w)}/attendees/{w.households[0].id}", "committee", {},
    ),
})

NOT_REPLAYED = {
    ("POST", "/api/v1/auth/wechat/login"): "each sign-in opens a session (refresh_token rows are attempt logs); covered in tests/identity",
    ("POST", "/api/v1/auth/wechat/phone"): "binding is idempotent by phone and household; covered in tests/identity",
    ("POST", "/api/v1/auth/password/login"): "each sign-in opens a session; covered in tests/identity",
    ("POST", "/api/v1/auth/refresh"): "sent again within REFRESH_GRACE_SECONDS it answers the same pair, later it revokes its family (theft detection); covered in tests/identity",
    ("POST", "/api/v1/auth/logout"): "revoking twice is revoking once; covered in tests/identity",
    ("POST", "/api/v1/organisations"): "platform console action without a natural key; not retried by phones",
    ("POST", "/api/v1/communities"): "platform console action without a natural key; not retried by phones",
    ("POST", "/api/v1/communities/{community_id}/rewards"): "catalogue console action without a natural key; not retried by phones",
    ("POST", "/api/v1/households/{household_id}/consent-codes"): "each call issues a fresh single-use code by design; moves nothing",
    ("POST", "/api/v1/me/close"): "sent again, the closed account's token is refused (401) and nothing changes; "
    "covered in tests/identity/test_personal_data.py",
    ("POST", "/api/v1/organisations/{organisation_id}/handover"): "sent again, nothing is left to hand over and nothing is "
    "written (it would take the shared world's community away here); covered in tests/handover",
}


def _payload(w: World) -> str:
    from app.places.service import qr_payload

    with Session(w.engine) as s:
        return qr_payload(s.merge(w.households[0]))


def _mutating_routes() -> set[tuple[str, str]]:
    spec = app.openapi()
    return {(m.upper(), p) for p, item in spec["paths"].items() for m in item if m != "get" and p.startswith("/api/")}


def _header_key_routes() -> set[tuple[str, str]]:
    """The writes whose retry key is the shared Idempotency-Key convention (app.kit.idempotency)."""
    from app.kit.contract import _api_routes, _takes_header_key

    return {(m, r.path) for r in _api_routes(app) if _takes_header_key(r) for m in r.methods}


def test_every_mutating_route_is_replayed():
    missing = _mutating_routes() - set(REPLAYS) - set(NOT_REPLAYED)
    assert not missing, f"add these routes to tests/attack/test_replay.py (REPLAYS or NOT_REPLAYED): {sorted(missing)}"


@pytest.fixture(scope="module")
def shared(migrated_engine):
    """One community for all replays (each replay compares its own before and after)."""
    from fastapi.testclient import TestClient

    from app.core.db import set_engine

    set_engine(migrated_engine)
    with TestClient(app) as client:
        yield client, World.build(client, migrated_engine)


@pytest.mark.parametrize("route", sorted(REPLAYS), ids=lambda r: f"{r[0]} {r[1]}")
def test_replaying_a_write_has_no_second_effect(shared, engine, route):
    client, world = shared
    if route not in _mutating_routes():
        pytest.fail(f"{route} is no longer a route: remove it from REPLAYS")
    call = REPLAYS[route](client, world)
    headers = world.h(call.role)
    shared_key = route in _header_key_routes()  # the shared convention: the phone sends an Idempotency-Key
    if shared_key:
        headers = headers | {"Idempotency-Key": f"replay-{uuid.uuid4().hex}"}
    first = client.request(call.method, call.url, headers=headers, **call.kwargs)
    assert 200 <= first.status_code < 300, (route, first.status_code, first.text[:300])
    after_first = _snapshot(engine)
    second = client.request(call.method, call.url, headers=headers, **call.kwargs)
    assert second.status_code in (200, 201, 204, 404, 409), (route, second.status_code, second.text[:300])
    if shared_key:  # answered as the first time, never a 409 the phone cannot act on
        assert (second.status_code, second.content, second.headers.get("Idempotent-Replayed")) == (
            first.status_code, first.content, "true"), route
    after_second = _snapshot(engine)
    if call.attempt_logged:
        after_first.pop("audit_log"), after_second.pop("audit_log")
    assert after_second == after_first, route
    if first.status_code in (200, 201) and first.headers.get("content-type", "").startswith("application/json"):
        body = first.json()
        if isinstance(body, dict) and "id" in body and second.status_code in (200, 201) and not call.attempt_logged:
            assert second.json()["id"] == body["id"], "a replay answers with the first result"
            if "replayed" in body and not shared_key:  # (the shared convention says so in a header)
                assert (body["replayed"], second.json()["replayed"]) == (False, True)


def test_replaying_many_at_once_posts_once(client, world, engine):
    """The same adjustment sent ten times in a row (a phone retrying on a flaky network)."""
    body = {"points": 7, "reason": "重试", "idempotency_key": _key()}
    url = f"/api/v1/households/{world.households[2].id}/adjustments"
    ids = {client.post(url, json=body, headers=world.h("committee")).json()["id"] for _ in range(10)}
    assert len(ids) == 1
    passbook = client.get(f"/api/v1/households/{world.households[2].id}/passbook", headers=world.h("committee")).json()
    assert passbook["balance"] == 7


def test_a_roster_upload_replayed_with_its_idempotency_key_imports_once(client, world, engine):
    """The dashboard names each upload; resending it (a timeout) answers the first report, adds no row."""
    url = f"/api/v1/communities/{world.community.id}/roster-imports"
    roster = "楼栋,单元,门牌,人数\n1号楼,1,911,2\n".encode()
    headers = world.h("committee") | {"Idempotency-Key": _key()}
    first = client.post(url, files={"file": ("r.csv", roster, "text/csv")}, data={"mode": "valid_rows"}, headers=headers)
    assert first.status_code == 201, first.text
    before = _snapshot(engine)
    with Session(engine) as s:
        reports = s.execute(text("SELECT count(*) FROM roster_import")).scalar_one()
    for _ in range(3):
        again = client.post(url, files={"file": ("r.csv", roster, "text/csv")}, data={"mode": "valid_rows"}, headers=headers)
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"] and again.json()["replayed"] is True
    assert _snapshot(engine) == before
    with Session(engine) as s:
        assert s.execute(text("SELECT count(*) FROM roster_import")).scalar_one() == reports
