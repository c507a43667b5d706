"""One rule for every entry point: each case's scans go through the single-scan route, its lean ASGI
twin, an offline upload (scan by scan, and all in one upload) and the demo generator's replay in a
session, and every entry point gives the same outcomes — status, reason, points, which check a
duplicate repeats and its grade, replays — and the same passbook.
"""

from __future__ import annotations

import uuid

import pytest
from sqlmodel import Session

from app.checkins import service
from app.checkins.models import ScanIn
from app.core.db import utcnow
from app.core.security import sign_code
from app.identity.auth import principal_from_token
from app.places.service import QR_PREFIX
from tests.clock import NOON
from tests.field import balance, make_member, payload, setup_field, yesterday_at

ENTRY_POINTS = ["route", "twin", "upload each", "one upload", "generator"]

# Each scan: (household, grade, when: "m" morning window / "m2" later in it / "x" outside, extra).
# Households are placeholders: "h" a household of its own for the case, "own" the volunteer's own,
# "foreign" one of another community, "forged" a tampered code, "unknown" a genuine code of no household.
# Expected per scan: (status, reason, points, index of the scan a duplicate repeats, its grade, replayed).
CASES = {
    "correct": ([("h", "correct", "m")], [("accepted", None, 10, None, None, False)]),
    "incorrect then correct": (
        [("h", "incorrect", "m"), ("h", "correct", "m2")],
        [("accepted", None, 0, None, None, False), ("duplicate", None, 0, 0, "incorrect", False)],
    ),
    "correct then incorrect": (
        [("h", "correct", "m"), ("h", "incorrect", "m2")],
        [("accepted", None, 10, None, None, False), ("duplicate", None, 0, 0, "correct", False)],
    ),
    "incorrect twice": (
        [("h", "incorrect", "m"), ("h", "incorrect", "m2")],
        [("accepted", None, 0, None, None, False), ("duplicate", None, 0, 0, "incorrect", False)],
    ),
    "correct twice": (
        [("h", "correct", "m"), ("h", "correct", "m2")],
        [("accepted", None, 10, None, None, False), ("duplicate", None, 0, 0, "correct", False)],
    ),
    "sent again": (
        [("h", "correct", "m"), ("h", "correct", "m", "resend")],
        [("accepted", None, 10, None, None, False), ("accepted", None, 10, None, None, True)],
    ),
    "forged code": ([("forged", "correct", "m")], [("rejected", "forged_code", 0, None, None, False)]),
    "unknown code": ([("unknown", "correct", "m")], [("rejected", "unknown_code", 0, None, None, False)]),
    "own household": ([("own", "correct", "m")], [("rejected", "own_household", 0, None, None, False)]),
    "another community's household": ([("foreign", "correct", "m")], [("rejected", "other_community", 0, None, None, False)]),
    "moved out": ([("moved", "correct", "m")], [("rejected", "moved_out", 0, None, None, False)]),
    "unknown station": ([("h", "correct", "m", "station")], [("rejected", "unknown_station", 0, None, None, False)]),
    "outside every window": ([("h", "correct", "x")], [("rejected", "outside_window", 0, None, None, False)]),
    "rejected, then accepted": (
        [("h", "correct", "x"), ("h", "incorrect", "m")],
        [("rejected", "outside_window", 0, None, None, False), ("accepted", None, 0, None, None, False)],
    ),
}


@pytest.fixture
def world(client, engine):
    from tests.support import World

    return World.build(client, engine, households_per_building=40)


def _bodies(world, other_world, f, scans, households):
    """The request bodies of a case's scans, each household placeholder resolved."""
    genuine_nowhere = f"{QR_PREFIX}.ZZZZZZZZ.{sign_code('ZZZZZZZZ')}"
    out = []
    for spec in scans:
        who, grade, when, *extra = spec
        if "resend" in extra:
            out.append(dict(out[-1]))
            continue
        code = {
            "forged": lambda: _forge(payload(world, 0)),
            "unknown": lambda: genuine_nowhere,
            "own": lambda: payload(world, len(world.households) - 1),
            "moved": lambda: payload(world, len(world.households) - 2),
            "foreign": lambda: payload(other_world, 0),
            "h": lambda: payload(world, households[0]),
        }[who]()
        at = {"m": yesterday_at(7, 30), "m2": yesterday_at(7, 45), "x": yesterday_at(11)}[when]
        body = {
            "client_id": uuid.uuid4().hex, "payload": code, "result": grade, "scanned_at": at.isoformat(),
            "station_id": f["station_id"] + (100000 if "station" in extra else 0),
        }
        if grade == "incorrect":
            body["reasons"] = ["mixed"]
        out.append(body)
    return out


def _forge(code: str) -> str:
    """The code with its signature's first character changed: never a valid signature."""
    prefix, public, signature = code.split(".")
    swapped = "A" if signature[0] != "A" else "B"
    return f"{prefix}.{public}.{swapped}{signature[1:]}"


def _outcome(result: dict, ids: list[int | None]) -> tuple:
    dup = result.get("duplicate_of")
    first = ids.index(dup) if dup is not None and dup in ids else None
    return (result["status"], result.get("reason"), result["points"], first, result.get("first_result"), result["replayed"])


def _send(entry, client, route_only, world, headers, bodies):
    """Each scan's result as the entry point answers it (a single scan's refusal as its error code)."""
    c = world.community.id
    if entry in ("route", "twin"):
        http = route_only if entry == "route" else client
        out = []
        for b in bodies:
            r = http.post(f"/api/v1/communities/{c}/checkins", json=b, headers=headers)
            if r.status_code >= 400:
                out.append({"status": "rejected", "reason": r.json()["error"]["code"], "points": 0, "replayed": False})
            else:
                assert r.status_code == (200 if r.json()["status"] == "duplicate" or r.json()["replayed"] else 201)
                out.append(r.json())
        return out
    if entry == "upload each":
        return [client.post(f"/api/v1/communities/{c}/checkins/batch", json={"scans": [b]}, headers=headers).json()["results"][0] for b in bodies]
    if entry == "one upload":
        r = client.post(f"/api/v1/communities/{c}/checkins/batch", json={"scans": bodies}, headers=headers)
        assert r.status_code == 200, r.text
        return r.json()["results"]
    principal = principal_from_token(headers["Authorization"].split()[1])
    with Session(world.engine, expire_on_commit=False) as s:
        return [r.model_dump(mode="json") for r in service.record_scans(s, principal, c, [ScanIn.model_validate(b) for b in bodies])]


def test_every_entry_point_decides_every_case_alike(client, route_only, world, other_world):
    f = setup_field(client, world)
    headers = make_member(world, "volunteer", len(world.households) - 1)
    moved = world.households[len(world.households) - 2].id
    assert client.patch(f"/api/v1/households/{moved}", json={"status": "moved_out"}, headers=world.h("committee")).status_code == 200
    assert len(world.households) - 2 > len(ENTRY_POINTS) * len(CASES)
    seen: dict[str, dict[str, tuple]] = {}
    household = 0
    for entry in ENTRY_POINTS:
        for name, (scans, expected) in CASES.items():
            bodies = _bodies(world, other_world, f, scans, [household])
            results = _send(entry, client, route_only, world, headers, bodies)
            ids = [r.get("checkin_id") for r in results]
            got = [_outcome(r, ids) for r in results]
            if entry == "one upload" and name == "sent again":
                # In one upload a client id sent twice is one scan: the second is its replay.
                expected = [expected[0], expected[0][:5] + (True,)]
            assert got == expected, (entry, name, got)
            seen.setdefault(name, {})[entry] = (tuple(got), balance(client, world, household))
            household += 1
    for name, by_entry in seen.items():
        assert len(set(by_entry.values())) == 1, (name, by_entry)


def test_re_scanning_an_incorrectly_sorted_bag_counts_one_check(client, world):
    """Three households scanned twice each (incorrect→correct, correct→incorrect, incorrect→incorrect):
    three checks, one of them correct, and only that one earned points."""
    f = setup_field(client, world)
    c, h = world.community.id, world.h("volunteer")
    grades = [("incorrect", "correct"), ("correct", "incorrect"), ("incorrect", "incorrect")]
    for i, pair in enumerate(grades):
        for at, grade in zip((yesterday_at(7, 30), yesterday_at(7, 50)), pair, strict=True):
            body = {"client_id": uuid.uuid4().hex, "payload": payload(world, i), "station_id": f["station_id"],
                    "result": grade, "scanned_at": at.isoformat()} | ({"reasons": ["mixed"]} if grade == "incorrect" else {})
            assert client.post(f"/api/v1/communities/{c}/checkins", json=body, headers=h).status_code in (200, 201)
    day = yesterday_at(0).date().isoformat()
    stats = client.get(f"/api/v1/communities/{c}/checkins/stats", params={"start": day, "end": day}, headers=world.h("committee")).json()
    assert (stats["checks"], stats["correct"], stats["accuracy"], stats["participating_households"]) == (3, 1, 0.3333, 3)
    assert [balance(client, world, i) for i in range(3)] == [0, 10, 0]


def test_a_re_grade_amends_the_first_check_and_its_points_follow(client, world):
    """二次分拣: graded incorrect, the resident re-sorts, the volunteer re-grades it correct — the check
    earns its points; re-graded incorrect again, they are reversed. No second check, ever."""
    f = setup_field(client, world)
    c, h = world.community.id, world.h("volunteer")
    first = {"client_id": uuid.uuid4().hex, "payload": payload(world, 0), "station_id": f["station_id"], "result": "incorrect",
             "reasons": ["bag_not_removed"], "scanned_at": yesterday_at(7, 30).isoformat()}
    checkin_id = client.post(f"/api/v1/communities/{c}/checkins", json=first, headers=h).json()["checkin_id"]
    amend = f"/api/v1/checkins/{checkin_id}/amend"

    r = client.post(amend, json={"result": "correct"}, headers=h)
    assert r.status_code == 200, r.text
    assert (r.json()["result"], r.json()["points"], r.json()["reasons"]) == ("correct", 10, [])
    assert client.post(amend, json={"result": "correct"}, headers=h).json()["points"] == 10  # re-sent: nothing more
    assert balance(client, world, 0) == 10

    again = first | {"client_id": uuid.uuid4().hex, "result": "correct", "reasons": [], "scanned_at": yesterday_at(7, 40).isoformat()}
    dup = client.post(f"/api/v1/communities/{c}/checkins", json=again, headers=h).json()
    assert (dup["status"], dup["duplicate_of"], dup["first_result"], dup["points"]) == ("duplicate", checkin_id, "correct", 0)

    r = client.post(amend, json={"result": "incorrect", "reasons": ["mixed"]}, headers=h)
    assert (r.json()["result"], r.json()["points"]) == ("incorrect", 0)
    assert balance(client, world, 0) == 0
    r = client.post(amend, json={"result": "correct"}, headers=h)
    assert r.json()["points"] == 10 and balance(client, world, 0) == 10

    listed = client.get(f"/api/v1/communities/{c}/checkins", params={"household_id": world.households[0].id, "status": "accepted"},
                        headers=world.h("committee")).json()["items"]
    assert [x["id"] for x in listed] == [checkin_id]
    assert client.post(amend, json={"result": "correct"}, headers=world.h("resident")).status_code == 403
    assert client.post(f"/api/v1/checkins/{dup['checkin_id']}/amend", json={"result": "incorrect", "reasons": ["mixed"]},
                       headers=h).json()["error"]["code"] == "not_amendable"
    r = client.post(f"/api/v1/checkins/{checkin_id}/reverse", json={"reason": "扫错户"}, headers=world.h("committee"))
    assert r.status_code == 200 and balance(client, world, 0) == 0


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_a_client_id_another_user_sent_is_refused_never_answered_with_their_scan(client, route_only, world, other_world, entry):
    """The same client id from a different user is a conflict: the caller learns nothing of the
    other's scan (household, check-in id) and the other's scan stays as it was."""
    f = setup_field(client, world)
    first = _bodies(world, other_world, f, [("h", "correct", "m")], [0])[0]
    mine = client.post(f"/api/v1/communities/{world.community.id}/checkins", json=first, headers=world.h("volunteer")).json()
    again = first | {"payload": payload(world, 1)}
    got = _send(entry, client, route_only, world, world.h("supervisor"), [again])[0]
    assert (got["status"], got["reason"], got.get("checkin_id"), got.get("household_id"), got["points"]) == (
        "rejected", "client_id_taken", None, None, 0)
    assert balance(client, world, 0) == 10 and balance(client, world, 1) == 0
    resent = client.post(f"/api/v1/communities/{world.community.id}/checkins", json=first, headers=world.h("volunteer")).json()
    assert (resent["checkin_id"], resent["replayed"]) == (mine["checkin_id"], True)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_a_refused_replay_never_uses_the_daily_cap(client, route_only, world, other_world, clock, entry):
    """A client id sent before is not written again, so it must not count against the cap: another
    user's reuse of it for a household whose slot is free is refused, and that household's own scan
    still earns its full points."""
    clock.set_local(NOON)  # the test's "today" stays one local day
    f = setup_field(client, world)
    c, h = world.community.id, world.h("committee")
    client.patch(f"/api/v1/drop-windows/{f['evening']}", json={"active": False}, headers=h)
    r = client.patch(f"/api/v1/drop-windows/{f['morning']}", json={"start_time": "00:00", "end_time": "23:59:59.999999"}, headers=h)
    assert r.status_code == 200, r.text
    r = client.post(f"/api/v1/communities/{c}/points-rules", json={"checkin_correct": 10, "daily_cap": 10}, headers=h)
    assert r.status_code == 201, r.text
    first, own = (_bodies(world, other_world, f, [("h", "correct", "m")], [i])[0] | {"scanned_at": utcnow().isoformat()} for i in (0, 1))
    assert client.post(f"/api/v1/communities/{c}/checkins", json=first, headers=world.h("volunteer")).json()["points"] == 10
    got = _send(entry, client, route_only, world, world.h("supervisor"), [first | {"payload": own["payload"]}])[0]
    assert (got["status"], got["reason"]) == ("rejected", "client_id_taken")
    got = _send(entry, client, route_only, world, world.h("volunteer"), [own])[0]
    assert (got["status"], got["points"]) == ("accepted", 10)
