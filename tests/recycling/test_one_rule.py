"""One rule for every entry point: each case's weigh-ins go through the single weigh-in route, a batch
of one weigh-in each, one batch of all the case's weigh-ins, and the demo generator's service call
(its session, under the simulated clock), and every entry point gives the same outcomes — status,
error, points, which weigh-in a replay repeats, a walk-in's points cheque — and the same passbook.
"""

from __future__ import annotations

from contextlib import nullcontext

import pytest
from sqlmodel import Session

from app.core.db import simulated_clock, utcnow
from app.identity.auth import principal_from_token
from app.kit.errors import DomainError
from app.recycling import service as recycling
from app.recycling.models import WeighInCreate
from tests.field import balance, cid, forged, local_day, make_member, payload, unknown_code
from tests.recycling.test_recycling import _events, _rates, _schedule, _today_event
from tests.support import race

ENTRY_POINTS = ["route", "batch of one", "one batch", "generator"]

# Each case: the event ("open" today, "future", "cancelled", "closed" five days ago) and its
# weigh-ins: (who, category, amount, extra). Who: "h" a household of its own for the case, "walk" a
# walk-in (points cheque), "own" the clerk's own household, "foreign" one of another community's,
# "forged" a tampered code, "unknown" a genuine code of no household. Amount: grams for a category by
# weight, items for one by count, None for neither. Rates: paper 5 a kg, milk cartons 1 each, clothes
# 2 a kg; daily cap 30.
# Expected per weigh-in: (HTTP status, error code, points, index of the first weigh-in with the same
# id, index of the first with the same cheque code).
CASES = {
    "by weight": ("open", [("h", "paper", 2400)], [(201, None, 12, 0, None)]),
    "by count": ("open", [("h", "milk_carton", 7)], [(201, None, 7, 0, None)]),
    "sent again": ("open", [("h", "paper", 2400), ("h", "paper", 2400, "resend")], [(201, None, 12, 0, None), (200, None, 12, 0, None)]),
    "daily cap reached": (
        "open",
        [("h", "paper", 5000), ("h", "paper", 2000), ("h", "clothes", 3000)],
        [(201, None, 25, 0, None), (201, None, 5, 1, None), (201, None, 0, 2, None)],
    ),
    "walk-in": ("open", [("walk", "clothes", 3000)], [(201, None, 6, 0, 0)]),
    "walk-in sent again": ("open", [("walk", "clothes", 3000), ("walk", "clothes", 3000, "resend")], [(201, None, 6, 0, 0), (200, None, 6, 0, 0)]),
    "walk-in beside a household": ("open", [("walk", "paper", 1000), ("h", "paper", 1000)], [(201, None, 5, 0, 0), (201, None, 5, 1, None)]),
    "forged code": ("open", [("forged", "paper", 1000)], [(400, "forged_code", 0, None, None)]),
    "unknown code": ("open", [("unknown", "paper", 1000)], [(404, "unknown_code", 0, None, None)]),
    "own household": ("open", [("own", "paper", 1000)], [(403, "own_household", 0, None, None)]),
    "another community's household": ("open", [("foreign", "paper", 1000)], [(403, "other_community", 0, None, None)]),
    "category not taken": ("open", [("h", "glass", 1000)], [(400, "unknown_category", 0, None, None)]),
    "count missing": ("open", [("h", "milk_carton", None)], [(400, "count_required", 0, None, None)]),
    "event not started": ("future", [("h", "paper", 1000)], [(409, "event_not_started", 0, None, None)]),
    "event cancelled": ("cancelled", [("h", "paper", 1000)], [(409, "event_cancelled", 0, None, None)]),
    "event closed": ("closed", [("h", "paper", 1000)], [(409, "event_closed", 0, None, None)]),
}


@pytest.fixture
def world(client, engine):
    from tests.support import World

    return World.build(client, engine, households_per_building=35)


def _events_by_state(client, world) -> dict[str, int]:
    c, h = world.community.id, world.h("committee")
    s = _schedule(client, world)
    first = _events(client, world)[0]
    r = client.post(f"/api/v1/recycling-schedules/{s['id']}/exceptions", json={"original_date": first["original_date"], "action": "cancel"}, headers=h)
    assert r.status_code == 201, r.text
    out = {"open": _today_event(client, world)["id"], "cancelled": first["id"]}
    for state, day in (("future", local_day(-1)), ("closed", local_day(5))):
        body = {"occurs_on": day.isoformat(), "start_time": "09:00", "end_time": "11:00", "place": "社区广场"}
        if state == "closed":  # a day closed more than 3 days ago is back-dated by the committee (补录)
            body["backdate_reason"] = "纸质登记补录"
        r = client.post(f"/api/v1/communities/{c}/recycling-events", json=body, headers=h)
        assert r.status_code == 201, r.text
        out[state] = r.json()["id"]
    return out


def _bodies(world, other_world, weigh_ins, household):
    out: list[dict] = []
    for who, category, amount, *extra in weigh_ins:
        if "resend" in extra:
            out.append(dict(out[-1]))
            continue
        body: dict = {"client_id": cid(), "category": category}
        if who == "walk":
            body["walk_in"] = True
        else:
            body["payload"] = {
                "h": lambda: payload(world, household),
                "own": lambda: payload(world, len(world.households) - 1),
                "foreign": lambda: payload(other_world, 0),
                "forged": lambda: forged(payload(world, 0)),
                "unknown": unknown_code,
            }[who]()
        if amount is not None:
            body["count" if category == "milk_carton" else "weight_g"] = amount
        out.append(body)
    return out


def _send(entry, client, world, headers, event_id, bodies) -> list[tuple[int, str | None, dict | None]]:
    """Each weigh-in's (HTTP status, error code, weigh-in) as the entry point answers it; a service's
    refusal as the status and code of its error, for every weigh-in of the refused batch."""
    if entry == "route":
        out = []
        for b in bodies:
            r = client.post(f"/api/v1/recycling-events/{event_id}/weigh-ins", json=b, headers=headers)
            ok = r.status_code < 400
            out.append((r.status_code, None if ok else r.json()["error"]["code"], r.json() if ok else None))
        return out
    principal = principal_from_token(headers["Authorization"].split()[1])
    weigh_ins = [WeighInCreate.model_validate(b) for b in bodies]
    out = []
    with Session(world.engine, expire_on_commit=False) as s:
        for group in [[w] for w in weigh_ins] if entry == "batch of one" else [weigh_ins]:
            try:
                with simulated_clock(utcnow()) if entry == "generator" else nullcontext():
                    answers = recycling.record_weigh_ins(s, principal, event_id, group)
            except DomainError as e:
                out += [(e.status_code, e.code, None)] * len(group)
                s.rollback()
            else:
                out += [(201 if created else 200, None, w.model_dump(mode="json")) for w, created in answers]
    return out


def _outcomes(answers) -> list[tuple]:
    ids = [w["id"] if w else None for _, _, w in answers]
    codes = [w["voucher_code"] if w else None for _, _, w in answers]
    return [
        (status, code, w["points"] if w else 0, ids.index(w["id"]) if w else None,
         codes.index(w["voucher_code"]) if w and w["voucher_code"] else None)
        for status, code, w in answers
    ]


def test_every_entry_point_decides_every_weigh_in_alike(client, world, other_world):
    _rates(client, world)
    r = client.post(f"/api/v1/communities/{world.community.id}/points-rules", json={"daily_cap": 30}, headers=world.h("committee"))
    assert r.status_code == 201, r.text
    events = _events_by_state(client, world)
    headers = make_member(world, "clerk", len(world.households) - 1)
    assert len(world.households) > len(ENTRY_POINTS) * len(CASES)
    seen: dict[str, dict[str, tuple]] = {}
    household = 0
    for entry in ENTRY_POINTS:
        for name, (event, weigh_ins, expected) in CASES.items():
            bodies = _bodies(world, other_world, weigh_ins, household)
            got = _outcomes(_send(entry, client, world, headers, events[event], bodies))
            assert got == expected, (entry, name, got)
            seen.setdefault(name, {})[entry] = (tuple(got), balance(client, world, household))
            household += 1
    for name, by_entry in seen.items():
        assert len(set(by_entry.values())) == 1, (name, by_entry)
    created = sum(o[0] == 201 for _, _, want in CASES.values() for o in want)
    totals = client.get(f"/api/v1/recycling-events/{events['open']}/totals", headers=world.h("committee")).json()["items"]
    assert sum(t["weigh_ins"] for t in totals) == len(ENTRY_POINTS) * created  # a refusal records nothing, a replay nothing twice
    report = client.get(f"/api/v1/communities/{world.community.id}/ledger/verify", headers=world.h("committee")).json()
    assert report["balance_mismatches"] == [] and report["unbalanced_entries"] == []  # the cheques' entries balance too


def test_a_walk_in_sent_at_once_from_two_tablets_gets_one_cheque(client, world):
    """The same client id racing through the route and a batch: one weigh-in and one cheque, every
    answer shows them."""
    _rates(client, world)
    event_id = _today_event(client, world)["id"]
    body = {"client_id": cid(), "walk_in": True, "category": "clothes", "weight_g": 4000}
    principal = principal_from_token(world.h("clerk")["Authorization"].split()[1])

    def batch():
        with Session(world.engine, expire_on_commit=False) as s:
            w, created = recycling.record_weigh_ins(s, principal, event_id, [WeighInCreate.model_validate(body)])[0]
        return 201 if created else 200, w.model_dump(mode="json")

    def route():
        r = client.post(f"/api/v1/recycling-events/{event_id}/weigh-ins", json=body, headers=world.h("clerk"))
        return r.status_code, r.json()

    answers = race(*[route, batch] * 3)
    assert sorted(status for status, _ in answers) == [200] * 5 + [201]
    assert len({(w["id"], w["voucher_id"], w["voucher_code"], w["points"]) for _, w in answers}) == 1
    assert answers[0][1]["voucher_code"] and answers[0][1]["points"] == 8
