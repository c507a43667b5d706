"""The passbook through the HTTP API: balance, statement with running balance, totals, printable page."""

from __future__ import annotations

import uuid
from datetime import timedelta

from app.core.db import utcnow
from tests.ledger.helpers import earn, verify_clean


def test_statement_reads_like_a_bank_passbook(client, world, engine):
    h = world.households[0]  # the `resident` user's household
    now = utcnow()
    earn(engine, h, 10, when=now - timedelta(days=3))
    earn(engine, h, 5, when=now - timedelta(days=2), source="compost", grams=2300, category="kitchen")
    earn(engine, h, 7, when=now - timedelta(days=1), source="recycling", grams=4100, category="paper")
    r = client.post(
        f"/api/v1/households/{h.id}/adjustments",
        json={"points": -4, "reason": "重复登记扣回", "idempotency_key": uuid.uuid4().hex},
        headers=world.h("committee"),
    )
    assert r.status_code == 201, r.text
    assert r.json()["balance_after"] == 18

    page = client.get(f"/api/v1/households/{h.id}/statement", headers=world.h("resident")).json()
    assert page["balance"] == 18
    lines = page["items"]
    assert [(x["points_in"], x["points_out"], x["balance_after"]) for x in lines] == [(0, 4, 18), (7, 0, 22), (5, 0, 15), (10, 0, 10)]
    assert lines[0]["memo"].startswith("人工调整") and lines[0]["source"] == "adjustment"
    assert lines[2]["quantity_g"] == 2300 and lines[2]["category"] == "kitchen"

    only_compost = client.get(f"/api/v1/households/{h.id}/statement", params={"source": "compost"}, headers=world.h("resident")).json()
    assert [x["points_in"] for x in only_compost["items"]] == [5]

    totals = client.get(f"/api/v1/households/{h.id}/statement/totals", headers=world.h("resident")).json()
    assert totals["points_in"] == 22 and totals["points_out"] == 4
    assert totals["points_by_source"] == {"checkin": 10, "compost": 5, "recycling": 7, "adjustment": -4}
    # Kilograms are the records' (weigh-ins, drops, check-ins: tests/reports/test_waste_measures.py), never
    # the ledger's: these credits were posted without any record behind them.
    assert totals["grams_by_category"] == {} and set(totals["grams_by_group"].values()) == {0}

    html = client.get(f"/api/v1/households/{h.id}/statement?format=html", headers=world.h("clerk"))
    assert html.status_code == 200 and "减废存折" in html.text and "重复登记扣回" in html.text and "18" in html.text
    verify_clean(engine, world.community.id)


def test_statement_pages_by_cursor_and_period(client, world, engine):
    h = world.households[0]
    now = utcnow()
    for i in range(7):
        earn(engine, h, i + 1, when=now - timedelta(days=10 - i))
    seen, cursor = [], None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = client.get(f"/api/v1/households/{h.id}/statement", params=params, headers=world.h("resident")).json()
        seen += [x["points_in"] for x in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [7, 6, 5, 4, 3, 2, 1]
    day = (now - timedelta(days=8)).date().isoformat()  # UTC date; community is UTC+8, pick a wide window
    period = client.get(
        f"/api/v1/households/{h.id}/statement",
        params={"start": (now - timedelta(days=9)).date().isoformat(), "end": day},
        headers=world.h("resident"),
    ).json()
    assert 1 <= len(period["items"]) <= 3 and all(x["points_in"] in (1, 2, 3) for x in period["items"])
    bad = client.get(f"/api/v1/households/{h.id}/statement", params={"start": "2026-02-01", "end": "2026-01-01"}, headers=world.h("resident"))
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_period"


def test_passbook_is_private(client, world, other_world):
    h = world.households[1]  # not the resident's household
    assert client.get(f"/api/v1/households/{h.id}/passbook", headers=world.h("resident")).status_code == 403
    assert client.get(f"/api/v1/households/{h.id}/passbook", headers=world.h("volunteer")).status_code == 403
    assert client.get(f"/api/v1/households/{h.id}/passbook", headers=other_world.h("clerk")).status_code == 403
    r = client.get(f"/api/v1/households/{h.id}/passbook", headers=world.h("clerk"))
    assert r.status_code == 200 and r.json()["balance"] == 0


def test_adjustments_need_a_reason_and_cannot_overdraw(client, world, engine):
    h = world.households[2]
    earn(engine, h, 3)
    url = f"/api/v1/households/{h.id}/adjustments"
    no_reason = client.post(url, json={"points": 5, "reason": "", "idempotency_key": uuid.uuid4().hex}, headers=world.h("committee"))
    assert no_reason.status_code == 422 and no_reason.json()["error"]["field"] == "reason"
    over = client.post(url, json={"points": -4, "reason": "扣回", "idempotency_key": uuid.uuid4().hex}, headers=world.h("committee", **{"Accept-Language": "en"}))
    assert over.status_code == 409 and over.json()["error"]["code"] == "insufficient_points"
    assert over.json()["error"]["message"] == "Insufficient points"
    assert client.post(url, json={"points": 5, "reason": "奖励", "idempotency_key": uuid.uuid4().hex}, headers=world.h("volunteer")).status_code == 403
    key = uuid.uuid4().hex
    first = client.post(url, json={"points": 2, "reason": "活动奖励", "idempotency_key": key}, headers=world.h("committee"))
    again = client.post(url, json={"points": 2, "reason": "活动奖励", "idempotency_key": key}, headers=world.h("committee"))
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"] and again.json()["replayed"] is True
    assert client.get(f"/api/v1/households/{h.id}/passbook", headers=world.h("committee")).json()["balance"] == 5
    audit = client.get(f"/api/v1/communities/{world.community.id}/audit", headers=world.h("committee")).json()["items"]
    adjustments = [a for a in audit if a["action"] == "ledger.adjust"]
    assert len(adjustments) == 1 and adjustments[0]["detail"]["reason"] == "活动奖励"
    verify_clean(engine, world.community.id)


def test_corrections_are_reversals_once_only(client, world, engine):
    h = world.households[3]
    entry = earn(engine, h, 8, source="compost", grams=1000, category="kitchen")
    url = f"/api/v1/ledger/entries/{entry}/reverse"
    r = client.post(url, json={"reason": "称重录错", "idempotency_key": uuid.uuid4().hex}, headers=world.h("committee"))
    assert r.status_code == 201, r.text
    assert r.json()["reverses_entry_id"] == entry and r.json()["balance_after"] == 0
    twice = client.post(url, json={"reason": "再来一次", "idempotency_key": uuid.uuid4().hex}, headers=world.h("committee"))
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "already_reversed"
    back = client.post(f"/api/v1/ledger/entries/{r.json()['id']}/reverse", json={"reason": "冲正的冲正", "idempotency_key": uuid.uuid4().hex}, headers=world.h("committee"))
    assert back.status_code == 409
    totals = client.get(f"/api/v1/households/{h.id}/statement/totals", headers=world.h("committee")).json()
    assert totals["grams_by_category"] == {} and totals["points_by_source"] == {}
    lines = client.get(f"/api/v1/households/{h.id}/statement", headers=world.h("committee")).json()["items"]
    assert [(x["points_in"], x["points_out"], x["balance_after"]) for x in lines] == [(0, 8, 0), (8, 0, 8)]
    verify_clean(engine, world.community.id)


def test_replayed_credit_moves_nothing(client, world, engine):
    h = world.households[4]
    key = f"checkin:{uuid.uuid4().hex}"
    a = earn(engine, h, 6, key=key)
    b = earn(engine, h, 6, key=key)
    assert a == b
    assert client.get(f"/api/v1/households/{h.id}/passbook", headers=world.h("committee")).json()["balance"] == 6
