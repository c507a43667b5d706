"""Concurrent uploads: the database, not the code path, keeps one credit per household per window."""

from __future__ import annotations

from functools import partial

from app.core.db import utcnow
from tests.clock import NOON
from tests.field import balance, payload, payloads, scan, setup_field, yesterday_at
from tests.support import race


def test_concurrent_batches_credit_each_scan_once(client, world):
    f = setup_field(client, world)
    codes = payloads(world)
    # Two phones queued scans of the same households in the same window, and each uploads twice.
    a = [scan(f["station_id"], code, yesterday_at(7, 10 + i)) for i, code in enumerate(codes)]
    b = [scan(f["station_id"], code, yesterday_at(8, 10 + i)) for i, code in reversed(list(enumerate(codes)))]
    url = f"/api/v1/communities/{world.community.id}/checkins/batch"
    answers = race(*(partial(client.post, url, json={"scans": batch}, headers=world.h("volunteer")) for batch in [a, b, a, b, a]))
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


def test_simultaneous_single_scans_credit_once(client, world):
    """Single scans take the one-statement path on PostgreSQL: phones scanning the same households at
    once, in both windows, with retries and an offline batch racing them, still credit one scan per
    household per window and leave the ledger consistent."""
    from tests.ledger.helpers import verify_clean

    f = setup_field(client, world)
    c = world.community.id
    codes = payloads(world)
    single = f"/api/v1/communities/{c}/checkins"
    jobs = []
    for phone in range(3):
        for i, code in enumerate(codes):
            body = scan(f["station_id"], code, yesterday_at(7 + phone % 2, 5 + i))
            jobs += [("one", body), ("one", body)]  # each scan sent twice: a retry after a lost answer
            jobs.append(("one", scan(f["station_id"], code, yesterday_at(18, 10 + phone + i))))
    jobs.append(("batch", {"scans": [scan(f["station_id"], code, yesterday_at(19, 30)) for code in codes]}))
    def worker(part: list) -> list:
        return [(kind, body, client.post(single if kind == "one" else f"{single}/batch", json=body, headers=world.h("volunteer")))
                for kind, body in part]

    answers = [a for part in race(*(partial(worker, jobs[n::8]) for n in range(8))) for a in part]
    assert all(r.status_code in (200, 201) for _, _, r in answers), [r.text for _, _, r in answers if r.status_code >= 300]

    by_client: dict[str, set] = {}
    for kind, _body, r in answers:
        results = r.json()["results"] if kind == "batch" else [r.json()]
        for x in results:
            by_client.setdefault(x["client_id"], set()).add((x["status"], x["checkin_id"], x["points"]))
    assert all(len(v) == 1 for v in by_client.values()), "a retried scan got a different answer"
    listed = client.get(f"{single}", params={"limit": 200}, headers=world.h("committee")).json()["items"]
    assert len(listed) == len(by_client)
    for i, h in enumerate(world.households):
        mine = [x for x in listed if x["household_id"] == h.id]
        assert sum(x["credited"] for x in mine) == 2  # morning and evening: one credited scan each
        assert sum(x["points"] for x in mine) == 20
        assert balance(client, world, i) == 20
    verify_clean(world.engine, c)


def test_acts_racing_after_a_reversal_share_the_freed_cap_once(client, world, clock):
    from tests.checkins.test_checkins import _all_day_with_cap, _paper_day, _post
    from tests.field import cid, payload

    clock.set_local(NOON)  # the test's "today" stays one local day
    f = _all_day_with_cap(client, world, 20)
    first = _post(client, world, scan(f["station_id"], payload(world, 4), utcnow()))
    assert first.json()["points"] == 10
    eid = _paper_day(client, world)
    code = payload(world, 4)
    weigh = {"payload": code, "category": "paper", "weight_g": 1600}  # 8 points each
    url = f"/api/v1/recycling-events/{eid}/weigh-ins"
    n = 6
    weigh_in = lambda: client.post(url, json={"client_id": cid()} | weigh, headers=world.h("clerk"))  # noqa: E731
    # The mistaken check-in is reversed while the weigh-ins arrive.
    reverse = partial(client.post, f"/api/v1/checkins/{first.json()['checkin_id']}/reverse", json={"reason": "扫错"},
                      headers=world.h("supervisor"))
    answers = race(*([weigh_in] * n), reverse)
    assert all(r.status_code in (200, 201) for r in answers), [r.text for r in answers]
    granted = sum(r.json()["points"] for r in answers[:n])
    # Whatever the order, the day's credited points never pass the cap, and once the reversal is in,
    # the freed 10 are there to earn: never more than 20 in all, never less than the cap allows.
    assert balance(client, world, 4) == granted <= 20
    extra = client.post(url, json={"client_id": cid()} | weigh, headers=world.h("clerk")).json()["points"]
    assert granted + extra == min(20, granted + 8)


def _statement_scans(client) -> tuple[float, float]:
    """(statements, scans) the bin-side writer has run so far, from the metrics page."""
    found = {}
    for line in client.get("/metrics").text.splitlines():
        for name in ("checkin_statement_scans_count", "checkin_statement_scans_sum"):
            if line.startswith(name + " "):
                found[name] = float(line.split()[1])
    return found.get("checkin_statement_scans_count", 0.0), found.get("checkin_statement_scans_sum", 0.0)


def test_scans_arriving_together_share_statements_and_keep_their_own_outcomes(client, world, other_world, clock):
    """Single scans from many phones at once, in two communities with different daily caps, are
    written several to a statement (app.checkins.writer), and each gets what it would have had alone:
    a household's second scan in its window is a duplicate, a re-sent scan is answered as the first,
    the cap of its own community cuts its points, and the ledger adds up."""
    from tests.checkins.test_checkins import _all_day_with_cap
    from tests.ledger.helpers import verify_clean

    clock.set_local(NOON)  # the test's "today" stays one local day
    fields = {w.community.id: _all_day_with_cap(client, w, cap) for w, cap in ((world, 5), (other_world, 100))}
    jobs = []
    for w in (world, other_world):
        station = fields[w.community.id]["station_id"]
        for code in payloads(w):
            first = scan(station, code, utcnow())
            jobs += [(w, first), (w, first), (w, scan(station, code, utcnow()))]
    jobs = jobs[0::3] + jobs[1::3] + jobs[2::3]  # the re-sends and second scans come later, mixed
    before = _statement_scans(client)

    def phone(part: list) -> list:
        return [(w, body, client.post(f"/api/v1/communities/{w.community.id}/checkins", json=body, headers=w.h("volunteer")))
                for w, body in part]

    answers = [a for part in race(*(partial(phone, jobs[n::12]) for n in range(12))) for a in part]
    assert all(r.status_code in (200, 201) for _, _, r in answers), [r.text for _, _, r in answers if r.status_code >= 300]

    statements, scans = (a - b for a, b in zip(_statement_scans(client), before, strict=True))
    assert 0 < statements < scans, (statements, scans)  # some statements carried several scans

    by_client: dict[str, set] = {}
    credited: dict[int, list] = {}
    for _w, body, r in answers:
        x = r.json()
        by_client.setdefault(body["client_id"], set()).add((x["status"], x["checkin_id"], x["points"]))
        if r.status_code == 201:
            credited.setdefault(x["household_id"], []).append(x["points"])
    assert all(len(v) == 1 for v in by_client.values()), "a re-sent scan got a different answer"
    for w, points in ((world, 5), (other_world, 10)):
        for i, h in enumerate(w.households):
            assert credited[h.id] == [points]  # one credited scan, its community's cap applied
            assert balance(client, w, i) == points
        verify_clean(w.engine, w.community.id)


def test_the_scans_statement_goes_with_postgresqls_own_placeholders():
    """psycopg keeps its parsing of named placeholders only for texts up to 4 KiB, and the bin-side
    statement is longer: the hot path sends it through a raw cursor, with $n placeholders, unparsed."""
    from psycopg import _queries

    from app.checkins import scan

    assert len(scan.SQL) > _queries.MAX_CACHED_STATEMENT_LENGTH  # else the named form would do
    assert "%(" not in scan.RAW_SQL and "$1" in scan.RAW_SQL and "$2" in scan.RAW_SQL


def test_a_scan_held_up_by_a_long_write_does_not_hold_up_the_others(client, world, engine, clock):
    """A process writes its scans one statement at a time; a scan whose household's balance row is
    locked by a longer write (an upload, a reversal) gives up after the pool's lock_timeout and takes
    the general path, which waits for the write — the scans of other households are answered meanwhile."""
    import threading

    from sqlalchemy import text

    from tests.checkins.test_checkins import _all_day_with_cap

    clock.set_local(NOON)  # the test's "today" stays one local day
    f = _all_day_with_cap(client, world, 100)
    url = f"/api/v1/communities/{world.community.id}/checkins"
    first = client.post(url, json=scan(f["station_id"], payload(world, 0)), headers=world.h("volunteer"))
    assert first.status_code == 201, first.text  # household 0 has a balance row now; its window slot is taken
    # A second window, so that household 0 can earn again and must touch its balance row.
    h = world.h("committee")
    assert client.patch(f"/api/v1/drop-windows/{f['morning']}", json={"end_time": "00:00:01"}, headers=h).status_code == 200
    r = client.patch(f"/api/v1/drop-windows/{f['evening']}", json={"start_time": "00:00:01", "end_time": "23:59:59.999999", "active": True}, headers=h)
    assert r.status_code == 200, r.text

    blocker = engine.connect()
    held = blocker.begin()
    blocker.execute(text("SELECT 1 FROM ledger_account WHERE household_id = :h FOR UPDATE"), {"h": world.households[0].id})
    answers: dict[str, object] = {}
    others_done = threading.Event()

    def post(name: str, index: int) -> None:
        answers[name] = client.post(url, json=scan(f["station_id"], payload(world, index)), headers=world.h("volunteer"))

    held_up = threading.Thread(target=post, args=("held", 0))
    held_up.start()

    def others() -> None:
        for i in (1, 2, 3):
            post(f"other{i}", i)
        others_done.set()

    threading.Thread(target=others).start()
    try:
        # The other households' scans are answered while the write still holds household 0's row.
        assert others_done.wait(20), "scans of other households waited for a lock they do not need"
        assert "held" not in answers
    finally:
        held.commit()
        blocker.close()
    held_up.join(20)
    assert answers["held"].status_code == 201 and answers["held"].json()["points"] == 10, answers["held"].text
    assert all(answers[f"other{i}"].status_code == 201 for i in (1, 2, 3))
    assert balance(client, world, 0) == 20


def test_the_bin_side_caches_are_refreshed_ahead_of_expiry_while_scans_go_on(client, world, engine, monkeypatch, clock):
    """The setup and rules caches of the bin-side path are read again in the background shortly before
    they expire, while the scan that noticed goes on with them: under load they never expire (each
    scan arriving at an expiry used to wait for its own reload, a stall of the whole process every 5 s).
    The refresh reads the database: a station closed behind the process's back is closed after it."""
    import time

    from sqlalchemy import text

    from app.checkins import setup
    from app.core.db import engine_key
    from app.rules import service as rules
    from tests.checkins.test_checkins import _all_day_with_cap

    clock.set_local(NOON)  # the test's "today" stays one local day
    f = _all_day_with_cap(client, world, 100)
    c, url = world.community.id, engine_key(engine)
    # Far from expiry however slow the machine, yet inside the refresh-ahead margin: the scans below
    # find the caches fresh but expiring, not cold.
    monkeypatch.setattr(setup.SETUPS, "seconds", 60.0)
    monkeypatch.setattr(rules.RULES, "seconds", 60.0)
    monkeypatch.setattr(setup.FILLS, "refresh_ahead", 120.0)
    setup.SETUPS.invalidate(c)  # filled by the first scan, which waits for it: no refresh under way after it
    rules.RULES.invalidate(c)
    scans = f"/api/v1/communities/{c}/checkins"
    assert client.post(scans, json=scan(f["station_id"], payload(world, 0)), headers=world.h("volunteer")).status_code == 201
    with engine.begin() as conn:  # not through the API, which would drop the cache itself
        conn.execute(text("UPDATE station SET active = false WHERE id = :s"), {"s": f["station_id"]})
    filled = (setup.SETUPS.expires_at(url, c), rules.RULES.expires_at(url, c))

    r = client.post(scans, json=scan(f["station_id"], payload(world, 1)), headers=world.h("volunteer"))
    assert r.status_code == 201, r.text  # answered from the cached setup, the refresh under way
    deadline = time.monotonic() + 5
    while setup.FILLS.busy((url, c)) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert setup.SETUPS.expires_at(url, c) != filled[0] and rules.RULES.expires_at(url, c) != filled[1]  # read again
    assert f["station_id"] not in setup.SETUPS.peek(url, c).stations
    r = client.post(scans, json=scan(f["station_id"], payload(world, 2)), headers=world.h("volunteer"))
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_station", r.text


def test_scans_finding_the_caches_cold_wait_for_one_fill(client, world, monkeypatch, clock):
    from app.checkins import setup
    from app.rules import service as rules
    from tests.checkins.test_checkins import _all_day_with_cap

    clock.set_local(NOON)  # the test's "today" stays one local day
    f = _all_day_with_cap(client, world, 100)
    c = world.community.id
    setup.SETUPS.invalidate(c)
    rules.RULES.invalidate(c)
    fills = []
    real = setup.warm_caches
    monkeypatch.setattr(setup, "warm_caches", lambda *args: fills.append(args) or real(*args))
    url = f"/api/v1/communities/{c}/checkins"
    answers = race(*(partial(client.post, url, json=scan(f["station_id"], code), headers=world.h("volunteer"))
                     for code in payloads(world)))
    assert [r.status_code for r in answers] == [201] * len(answers), [r.text for r in answers]
    assert fills == [(c, False)]


def test_a_setup_read_before_a_change_is_not_cached_after_it(client, world, engine, monkeypatch, clock):
    """A read of the setup that began before a committee's change (a refresh in a worker thread) must
    not put what it read back after the change dropped the cache: the next scan sees the change."""
    from sqlmodel import Session

    from app.checkins import setup
    from app.core.db import engine_key
    from tests.checkins.test_checkins import _all_day_with_cap

    clock.set_local(NOON)  # the test's "today" stays one local day
    f = _all_day_with_cap(client, world, 100)
    real = setup.Setup

    def built_as_the_station_closes(*args):
        built = real(*args)  # read while the station was open
        r = client.patch(f"/api/v1/stations/{f['station_id']}", json={"active": False}, headers=world.h("committee"))
        assert r.status_code == 200, r.text
        return built

    monkeypatch.setattr(setup, "Setup", built_as_the_station_closes)
    with Session(engine) as session:
        stale = setup.load_setup(session, world.community.id, refresh=True)
    monkeypatch.undo()
    assert f["station_id"] in stale.stations  # what the read saw …
    assert setup.SETUPS.peek(engine_key(engine), world.community.id) is None  # … is not cached after the change
    r = client.post(f"/api/v1/communities/{world.community.id}/checkins", json=scan(f["station_id"], payload(world, 0)),
                    headers=world.h("volunteer"))
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_station", r.text


def test_a_failed_cache_fill_is_logged_and_the_scan_still_answered(client, world, engine, monkeypatch, caplog, clock):
    """The database failing while the bin-side caches are filled costs no scan its answer (it takes the
    general path), the failure is logged with its cause, and the refresh ahead of expiry is not tried
    again by every following scan."""
    import logging
    import time

    from app.checkins import setup
    from app.core.db import engine_key
    from app.kit import cache
    from app.rules import service as rules
    from tests.checkins.test_checkins import _all_day_with_cap

    clock.set_local(NOON)  # the test's "today" stays one local day
    f = _all_day_with_cap(client, world, 100)
    c = world.community.id
    key = (engine_key(engine), c)
    # Far from expiry however slow the machine, once filled (below, by the general path).
    monkeypatch.setattr(setup.SETUPS, "seconds", 60.0)
    monkeypatch.setattr(rules.RULES, "seconds", 60.0)
    monkeypatch.setattr(setup.FILLS, "retry_seconds", 0.0)  # the cold fill's pause is not what is tested
    setup.SETUPS.invalidate(c)
    rules.RULES.invalidate(c)
    fills = []

    def failing(*args):
        fills.append(args)
        raise RuntimeError("database went away")

    monkeypatch.setattr(setup, "warm_caches", failing)
    url = f"/api/v1/communities/{c}/checkins"
    with caplog.at_level(logging.WARNING, logger=cache.log.name):
        r = client.post(url, json=scan(f["station_id"], payload(world, 0)), headers=world.h("volunteer"))
    assert r.status_code == 201 and r.json()["points"] == 10, r.text
    assert fills == [(c, False)]
    failed = [rec for rec in caplog.records if rec.getMessage().startswith("cache fill failed")]
    assert failed and "database went away" in str(failed[0].exc_info[1])

    # The general path filled the caches meanwhile; make them expiring: one refresh is tried, it fails,
    # and the scans right after it do not start another.
    monkeypatch.setattr(setup.FILLS, "refresh_ahead", 120.0)
    monkeypatch.setattr(setup.FILLS, "retry_seconds", 60.0)
    for i in (1, 2, 3):
        r = client.post(url, json=scan(f["station_id"], payload(world, i)), headers=world.h("volunteer"))
        assert r.status_code == 201, r.text
        deadline = time.monotonic() + 5
        while setup.FILLS.busy(key) and time.monotonic() < deadline:
            time.sleep(0.01)
    assert fills == [(c, False), (c, True)]


def test_rules_read_before_a_new_version_are_not_cached_after_it(client, world, engine, monkeypatch, clock):
    """The rules' twin of the setup test above: a read of the rule versions that began before a
    committee published a new one does not put the old versions back into the cache."""
    from sqlmodel import Session

    from app.core.db import engine_key, utcnow
    from app.rules import service as rules
    from tests.checkins.test_checkins import _all_day_with_cap

    clock.set_local(NOON)  # the test's "today" stays one local day
    f = _all_day_with_cap(client, world, 100)
    c = world.community.id
    real = rules.Rules
    published = []

    def built_as_a_version_is_published(*args, **kwargs):
        built = real(*args, **kwargs)  # read before the new version
        if not published:
            published.append(True)
            r = client.post(f"/api/v1/communities/{c}/points-rules", json={"checkin_correct": 3},
                            headers=world.h("committee"))
            assert r.status_code == 201, r.text
        return built

    monkeypatch.setattr(rules, "Rules", built_as_a_version_is_published)
    with Session(engine) as session:
        stale = rules.resolver(session, c, refresh=True)
    monkeypatch.undo()
    assert published and stale(utcnow()).checkin_correct == 10  # what the read saw …
    assert rules.cached_resolver(engine_key(engine), c) is None  # … is not cached
    r = client.post(f"/api/v1/communities/{c}/checkins", json=scan(f["station_id"], payload(world, 0)),
                    headers=world.h("volunteer"))
    assert r.status_code == 201 and r.json()["points"] == 3, r.text
