"""One rule for every entry point: each case's drops go through the single-drop route, a batch of one
drop each, one batch of all the case's drops, and the demo generator's service call (its session,
under the simulated clock), and every entry point gives the same outcomes — status, error, points,
which drop a replay repeats — and the same passbook.
"""

from __future__ import annotations

from contextlib import nullcontext
from datetime import timedelta

import pytest
from sqlmodel import Session

from app.compost import service as compost
from app.compost.models import CompostDropCreate
from app.core.db import simulated_clock, utcnow
from app.identity.auth import principal_from_token
from app.kit.errors import DomainError
from tests.compost.test_compost import _bin
from tests.field import balance, cid, forged, make_member, payload, unknown_code
from tests.support import race

ENTRY_POINTS = ["route", "batch of one", "one batch", "generator"]

# Each case: the bin ("open" or "closed", curing) and its drops: (household, grams, when, extra).
# Households are placeholders: "h" a household of its own for the case, "own" the volunteer's own,
# "foreign" one of another community's, "forged" a tampered code, "unknown" a genuine code of no
# household. When: "now" (no time sent), "old" four days ago, "future" in an hour.
# Expected per drop: (HTTP status, error code, points, index of the first drop with the same id).
# The community's rules: 10 points a kg, daily cap 30.
CASES = {
    "accepted": ("open", [("h", 2300, "now")], [(201, None, 23, 0)]),
    "two drops in a day": ("open", [("h", 1200, "now"), ("h", 800, "now")], [(201, None, 12, 0), (201, None, 8, 1)]),
    "sent again": ("open", [("h", 800, "now"), ("h", 800, "now", "resend")], [(201, None, 8, 0), (200, None, 8, 0)]),
    "daily cap reached": (
        "open",
        [("h", 2000, "now"), ("h", 2000, "now"), ("h", 2000, "now")],
        [(201, None, 20, 0), (201, None, 10, 1), (201, None, 0, 2)],
    ),
    "forged code": ("open", [("forged", 900, "now")], [(400, "forged_code", 0, None)]),
    "unknown code": ("open", [("unknown", 900, "now")], [(404, "unknown_code", 0, None)]),
    "own household": ("open", [("own", 900, "now")], [(403, "own_household", 0, None)]),
    "another community's household": ("open", [("foreign", 900, "now")], [(403, "other_community", 0, None)]),
    "too old": ("open", [("h", 900, "old")], [(422, "too_old", 0, None)]),
    "in the future": ("open", [("h", 900, "future")], [(422, "in_future", 0, None)]),
    "bin not accepting": ("closed", [("h", 900, "now")], [(409, "bin_not_accepting", 0, None)]),
}


@pytest.fixture
def world(client, engine):
    from tests.support import World

    return World.build(client, engine, households_per_building=25)


def _bodies(world, other_world, drops, household):
    out: list[dict] = []
    for who, grams, when, *extra in drops:
        if "resend" in extra:
            out.append(dict(out[-1]))
            continue
        code = {
            "h": lambda: payload(world, household),
            "own": lambda: payload(world, len(world.households) - 1),
            "foreign": lambda: payload(other_world, 0),
            "forged": lambda: forged(payload(world, 0)),
            "unknown": unknown_code,
        }[who]()
        body = {"client_id": cid(), "payload": code, "weight_g": grams}
        if when != "now":
            body["dropped_at"] = (utcnow() + {"old": timedelta(days=-4), "future": timedelta(hours=1)}[when]).isoformat()
        out.append(body)
    return out


def _send(entry, client, world, headers, bin_id, bodies) -> list[tuple[int, str | None, dict | None]]:
    """Each drop's (HTTP status, error code, drop) as the entry point answers it; a service's refusal
    as the status and code of its error, for every drop of the refused batch."""
    if entry == "route":
        out = []
        for b in bodies:
            r = client.post(f"/api/v1/compost-bins/{bin_id}/drops", json=b, headers=headers)
            ok = r.status_code < 400
            out.append((r.status_code, None if ok else r.json()["error"]["code"], r.json() if ok else None))
        return out
    principal = principal_from_token(headers["Authorization"].split()[1])
    drops = [CompostDropCreate.model_validate(b) for b in bodies]
    out = []
    with Session(world.engine, expire_on_commit=False) as s:
        for group in [[d] for d in drops] if entry == "batch of one" else [drops]:
            try:
                with simulated_clock(utcnow()) if entry == "generator" else nullcontext():
                    answers = compost.record_drops(s, principal, bin_id, group)
            except DomainError as e:
                out += [(e.status_code, e.code, None)] * len(group)
                s.rollback()
            else:
                out += [(201 if created else 200, None, d.model_dump(mode="json")) for d, created in answers]
    return out


def _outcomes(answers) -> list[tuple]:
    ids = [d["id"] if d else None for _, _, d in answers]
    return [(status, code, d["points"] if d else 0, ids.index(d["id"]) if d else None) for status, code, d in answers]


def test_every_entry_point_decides_every_drop_alike(client, world, other_world):
    r = client.post(f"/api/v1/communities/{world.community.id}/points-rules", json={"compost_per_kg": 10, "daily_cap": 30}, headers=world.h("committee"))
    assert r.status_code == 201, r.text
    bins = {"open": _bin(client, world)["id"], "closed": _bin(client, world)["id"]}
    assert client.post(f"/api/v1/compost-bins/{bins['closed']}/close", headers=world.h("compost_keeper")).status_code == 200
    headers = make_member(world, "volunteer", len(world.households) - 1)
    assert len(world.households) > len(ENTRY_POINTS) * len(CASES)
    seen: dict[str, dict[str, tuple]] = {}
    household = 0
    for entry in ENTRY_POINTS:
        for name, (bin_state, drops, expected) in CASES.items():
            bodies = _bodies(world, other_world, drops, household)
            got = _outcomes(_send(entry, client, world, headers, bins[bin_state], bodies))
            assert got == expected, (entry, name, got)
            seen.setdefault(name, {})[entry] = (tuple(got), balance(client, world, household))
            household += 1
    for name, by_entry in seen.items():
        assert len(set(by_entry.values())) == 1, (name, by_entry)
    fed = client.get(f"/api/v1/compost-bins/{bins['open']}", headers=world.h("committee")).json()["fed_g"]
    created = sum(g for _, drops, want in CASES.values() for (_, g, *_), w in zip(drops, want, strict=True) if w[0] == 201)
    assert fed == len(ENTRY_POINTS) * created  # a refused drop fed nothing, a replay nothing twice


def test_a_drop_sent_at_once_from_two_phones_is_recorded_once(client, world):
    """The same client id racing through the route and a batch: one drop created, every answer is it."""
    bin_id = _bin(client, world)["id"]
    body = {"client_id": cid(), "payload": payload(world, 1), "weight_g": 1500}
    principal = principal_from_token(world.h("volunteer")["Authorization"].split()[1])

    def batch():
        with Session(world.engine, expire_on_commit=False) as s:
            drop, created = compost.record_drops(s, principal, bin_id, [CompostDropCreate.model_validate(body)])[0]
        return 201 if created else 200, drop.model_dump(mode="json")

    def route():
        r = client.post(f"/api/v1/compost-bins/{bin_id}/drops", json=body, headers=world.h("volunteer"))
        return r.status_code, r.json()

    answers = race(*[route, batch] * 3)
    assert sorted(status for status, _ in answers) == [200] * 5 + [201]
    assert len({d["id"] for _, d in answers}) == 1 and balance(client, world, 1) == 15


def test_a_client_id_another_user_sent_is_refused(client, world):
    """A drop's client id sent again by another user is a conflict, never that user's drop."""
    bin_id = _bin(client, world)["id"]
    body = {"client_id": cid(), "payload": payload(world, 1), "weight_g": 1500}
    first = client.post(f"/api/v1/compost-bins/{bin_id}/drops", json=body, headers=world.h("volunteer"))
    assert first.status_code == 201
    r = client.post(f"/api/v1/compost-bins/{bin_id}/drops", json=body | {"payload": payload(world, 2)}, headers=world.h("compost_keeper"))
    assert r.status_code == 409 and r.json()["error"]["code"] == "client_id_taken" and "id" not in r.json()
    again = client.post(f"/api/v1/compost-bins/{bin_id}/drops", json=body, headers=world.h("volunteer"))
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert balance(client, world, 1) == 15 and balance(client, world, 2) == 0
