"""Check-ins by the typed hand-entry code (手工输入码), single and offline, recorded as typed (the other
entry points: tests/places/test_typed_codes.py)."""

from __future__ import annotations

import pytest

from tests.field import payload, scan, setup_field, yesterday_at


def _spaced(code: str) -> str:
    return f" {code[:4].lower()} - {code[4:]} "


@pytest.mark.parametrize("path", ["fast", "route"])
def test_single_and_batch_check_ins_take_typed_codes_and_record_them_as_typed(client, route_only, world, path):
    http = client if path == "fast" else route_only
    f = setup_field(http, world)
    c = world.community.id
    r = http.post(f"/api/v1/communities/{c}/checkins", json=scan(f["station_id"], _spaced(world.households[1].public_code), yesterday_at(7, 30)), headers=world.h("volunteer"))
    assert r.status_code == 201, r.text
    assert r.json()["household_id"] == world.households[1].id and r.json()["points"] == 10
    batch = [
        scan(f["station_id"], world.households[2].public_code.lower(), yesterday_at(7, 31)),
        scan(f["station_id"], payload(world, 3), yesterday_at(7, 32)),
        scan(f["station_id"], "ZZZZ-ZZZZ", yesterday_at(7, 33)),
    ]
    r = http.post(f"/api/v1/communities/{c}/checkins/batch", json={"scans": batch}, headers=world.h("volunteer"))
    assert r.status_code == 200, r.text
    assert [(x["status"], x["reason"], x["household_id"]) for x in r.json()["results"]] == [
        ("accepted", None, world.households[2].id), ("accepted", None, world.households[3].id), ("rejected", "unknown_code", None),
    ]
    listed = http.get(f"/api/v1/communities/{c}/checkins", params={"limit": 10}, headers=world.h("committee")).json()["items"]
    typed = {x["household_id"]: x["typed"] for x in listed}
    assert typed == {world.households[1].id: True, world.households[2].id: True, world.households[3].id: False, None: True}
