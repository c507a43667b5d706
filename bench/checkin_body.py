"""Check-in requests for the ingest benchmark: a station and an all-day drop window, then one scan per household."""

from __future__ import annotations

from typing import Any


def prepare(client, world: dict) -> dict[str, Any]:
    """Creates what a check-in needs through the API (as the committee); returns the shared body fields."""
    headers = {"Authorization": f"Bearer {world['tokens']['committee']}"}
    c = world["community_id"]
    r = client.post(f"/api/v1/communities/{c}/stations", json={"name": "压测投放点"}, headers=headers)
    assert r.status_code == 201, r.text
    station_id = r.json()["id"]
    window = {"name": "全天", "start_time": "00:00", "end_time": "23:59"}
    r = client.post(f"/api/v1/communities/{c}/drop-windows", json=window, headers=headers)
    assert r.status_code == 201, r.text
    return {"station_id": station_id}


def checkin_body(world: dict, shared: dict[str, Any], household_id: int) -> dict[str, Any]:
    # "{KEY}" is replaced by wrk with a key unique to the run, thread and request.
    return {
        "client_id": "bench.{KEY}",
        "payload": world["payloads"][household_id],
        "station_id": shared["station_id"],
        "category": "kitchen",
        "result": "correct",
    }
