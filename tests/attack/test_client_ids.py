"""A client id is its sender's: the same id sent by another user is a conflict (409 client_id_taken),
never the first sender's record as an answer — for every write a phone retries with a client id."""

from __future__ import annotations

import uuid

from tests.field import local_day


def test_an_activity_and_a_shift_refuse_a_client_id_another_user_sent(client, world):
    c = world.community.id
    activity = {"client_id": f"act-{uuid.uuid4().hex}", "kind": "lecture", "title": "垃圾分类大讲堂",
                "held_on": local_day().isoformat(), "participants": 12}
    first = client.post(f"/api/v1/communities/{c}/activities", json=activity, headers=world.h("committee"))
    assert first.status_code == 201, first.text
    r = client.post(f"/api/v1/communities/{c}/activities", json=activity, headers=world.h("org_admin"))
    assert r.status_code == 409 and r.json()["error"]["code"] == "client_id_taken"
    again = client.post(f"/api/v1/communities/{c}/activities", json=activity, headers=world.h("committee"))
    assert again.status_code in (200, 201) and again.json()["id"] == first.json()["id"]

    shift = {"client_id": f"shift-{uuid.uuid4().hex}"}
    mine = client.post(f"/api/v1/communities/{c}/shifts", json=shift, headers=world.h("supervisor"))
    assert mine.status_code == 201, mine.text
    r = client.post(f"/api/v1/communities/{c}/shifts", json=shift, headers=world.h("volunteer"))
    assert r.status_code == 409 and r.json()["error"]["code"] == "client_id_taken"
