"""One retry convention (app.kit.idempotency): a write sent again with its Idempotency-Key is
answered as the first time and done once, per user; another body under the key is refused."""

from __future__ import annotations

import threading
import uuid

from sqlalchemy import text


def _key() -> str:
    return f"k-{uuid.uuid4().hex}"


def _stations(client, world) -> list[dict]:
    return client.get(f"/api/v1/communities/{world.community.id}/stations", headers=world.h("committee")).json()["items"]


def test_a_create_sent_again_with_its_key_is_answered_as_the_first_time(client, world):
    url, key = f"/api/v1/communities/{world.community.id}/stations", _key()
    h = world.h("committee") | {"Idempotency-Key": key}
    first = client.post(url, json={"name": "东门"}, headers=h)
    again = client.post(url, json={"name": "东门"}, headers=h)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert [s["name"] for s in _stations(client, world)] == ["东门"]
    # Without the key the same create is the documented conflict, as before.
    assert client.post(url, json={"name": "东门"}, headers=world.h("committee")).status_code == 409


def test_a_key_is_one_users_and_one_requests(client, world, engine):
    url, key = f"/api/v1/communities/{world.community.id}/rewards", _key()
    item = {"name": "环保袋", "price_points": 5, "stock": 10}
    first = client.post(url, json=item, headers=world.h("committee") | {"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    other = client.post(url, json=item | {"price_points": 6}, headers=world.h("committee") | {"Idempotency-Key": key})
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
    # Another user's request under the same key is theirs: done.
    theirs = client.post(url, json=item | {"name": "布袋"}, headers=world.h("org_admin") | {"Idempotency-Key": key})
    assert theirs.status_code == 201 and theirs.json()["id"] != first.json()["id"]
    with engine.connect() as conn:
        names = conn.execute(text("SELECT name FROM reward_item WHERE community_id = :c ORDER BY id"), {"c": world.community.id}).scalars().all()
    assert names == ["环保袋", "布袋"]
    bad = client.post(url, json=item, headers=world.h("committee") | {"Idempotency-Key": "short"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_idempotency_key"


def test_the_same_key_at_the_same_instant_does_it_once(client, world):
    url, key = f"/api/v1/communities/{world.community.id}/compost-sites", _key()
    h = world.h("committee") | {"Idempotency-Key": key}
    answers: list = []
    barrier = threading.Barrier(6)

    def send() -> None:
        barrier.wait()
        answers.append(client.post(url, json={"name": "花园堆肥点"}, headers=h))

    threads = [threading.Thread(target=send) for _ in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    done = [a for a in answers if a.status_code == 201]
    assert done and {a.json()["id"] for a in done} == {done[0].json()["id"]}
    assert all(a.status_code == 201 or (a.status_code, a.json()["error"]["code"]) == (409, "request_in_progress") for a in answers)
    sites = client.get(url, headers=world.h("committee")).json()["items"]
    assert [s["name"] for s in sites] == ["花园堆肥点"]


def test_kept_answers_are_forgotten_after_a_day(client, world, engine, clock):
    from sqlmodel import Session

    from app.kit.idempotency import purge

    url, key = f"/api/v1/communities/{world.community.id}/stations", _key()
    h = world.h("committee") | {"Idempotency-Key": key}
    assert client.post(url, json={"name": "北门"}, headers=h).status_code == 201
    clock.advance(hours=25)
    with Session(engine) as s:
        assert purge(s) >= 1
    # The key is free again: the create runs anew and meets the station made the first time.
    h = world.h("committee") | {"Idempotency-Key": key}
    assert client.post(url, json={"name": "北门"}, headers=h).status_code == 409
