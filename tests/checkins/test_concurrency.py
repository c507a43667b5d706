"""Concurrent uploads: the database, not the code path, keeps one credit per household per window."""

from __future__ import annotations

import threading

from tests.field import balance, payloads, scan, setup_field, yesterday_at


def test_concurrent_batches_credit_each_scan_once(client, world, backend):
    f = setup_field(client, world)
    codes = payloads(world)
    # Two phones queued scans of the same households in the same window, and each uploads twice.
    a = [scan(f["station_id"], code, yesterday_at(7, 10 + i)) for i, code in enumerate(codes)]
    b = [scan(f["station_id"], code, yesterday_at(8, 10 + i)) for i, code in reversed(list(enumerate(codes)))]
    url = f"/api/v1/communities/{world.community.id}/checkins/batch"
    batches = [a, b, a, b, a]
    barrier = threading.Barrier(len(batches))
    answers: list = [None] * len(batches)

    def upload(n: int) -> None:
        barrier.wait()
        answers[n] = client.post(url, json={"scans": batches[n]}, headers=world.h("volunteer"))

    threads = [threading.Thread(target=upload, args=(n,)) for n in range(len(batches))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers if r.status_code != 200]

    # Each client id got one answer, whichever upload stored it, and every copy agrees.
    seen: dict[str, tuple] = {}
    for r in answers:
        for x in r.json()["results"]:
            key = (x["status"], x["checkin_id"])
            assert seen.setdefault(x["client_id"], key) == key
    accepted = [cid for cid, (status, _) in seen.items() if status == "accepted"]
    assert len(accepted) == len(codes)
    assert len(seen) == 2 * len(codes)
    for i in range(len(codes)):
        assert balance(client, world, i) == 10
    listed = client.get(
        f"/api/v1/communities/{world.community.id}/checkins", params={"limit": 200}, headers=world.h("committee")
    ).json()["items"]
    assert len(listed) == 2 * len(codes)
    assert sum(c["credited"] for c in listed) == len(codes)
