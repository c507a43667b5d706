"""Every code-like input, fuzzed through the HTTP API: door-plate payloads (resolve, a scan, an upload),
consent codes, cheque codes, cursors, idempotency keys and client ids. Whatever the text — any
Unicode, control characters, huge, empty, almost genuine — the answer is a documented 4xx in the
one error shape (or a success), never a 500."""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.field import payload, setup_field, yesterday_at

# Text a phone, a scanner or an attacker may send: any code point but the surrogates JSON cannot carry,
# near-genuine shapes, and long runs.
ANY_TEXT = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=300),
    st.text(string.ascii_letters + string.digits + ".-_:=+/ ", max_size=80),
    st.from_regex(r"JF1\.[A-Z0-9]{0,12}\.[A-Z2-7]{0,20}[é\x00\u202e]?", fullmatch=True),
    st.builds(lambda n: "A" * n, st.integers(0, 5000)),
)
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _fine(r) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:300])
    if r.status_code >= 400:
        body = r.json()["error"]
        assert set(body) >= {"code", "message", "field", "request_id"}, body


@pytest.fixture
def field(client, world):
    return setup_field(client, world)


@FUZZ
@given(code=ANY_TEXT)
def test_door_plate_payloads(client, world, field, code):
    c, h = world.community.id, world.h("volunteer")
    _fine(client.post("/api/v1/scan/resolve", json={"payload": code}, headers=h))
    scan = {"client_id": "fuzz-" + "x" * 8, "payload": code, "station_id": field["station_id"], "result": "correct",
            "scanned_at": yesterday_at(7, 30).isoformat()}
    _fine(client.post(f"/api/v1/communities/{c}/checkins", json=scan, headers=h))
    genuine = scan | {"client_id": "fuzz-genuine", "payload": payload(world, 1)}
    _fine(client.post(f"/api/v1/communities/{c}/checkins/batch", json={"scans": [scan | {"client_id": "fuzz-batch-1"}, genuine]}, headers=h))


@FUZZ
@given(code=ANY_TEXT)
def test_consent_and_cheque_codes(client, world, code):
    c = world.community.id
    counter = {"consent_code": code, "items": [{"item_id": 1, "quantity": 1}], "idempotency_key": "fuzz-counter-1"}
    _fine(client.post(f"/api/v1/communities/{c}/counter-redemptions", json=counter, headers=world.h("clerk")))
    _fine(client.post(f"/api/v1/households/{world.households[0].id}/voucher-claims", json={"code": code}, headers=world.h("resident")))


@FUZZ
@given(cursor=ANY_TEXT)
def test_cursors(client, world, cursor):
    c = world.community.id
    for url in (f"/api/v1/communities/{c}/checkins", f"/api/v1/households/{world.households[0].id}/statement",
                f"/api/v1/communities/{c}/vouchers"):
        _fine(client.get(url, params={"cursor": cursor}, headers=world.h("committee")))


@FUZZ
@given(key=ANY_TEXT)
def test_idempotency_keys_and_client_ids(client, world, field, key):
    c = world.community.id
    try:
        header = {"Idempotency-Key": key.encode("latin-1").decode("latin-1")} if key.isprintable() and key.isascii() else {}
    except UnicodeError:
        header = {}
    r = client.post(f"/api/v1/communities/{c}/roster-imports", headers=world.h("committee") | header,
                    files={"file": ("roster.csv", "楼栋,门牌\n1号楼,101\n".encode(), "text/csv")}, data={"mode": "dry_run"})
    _fine(r)
    scan = {"client_id": key, "payload": payload(world, 2), "station_id": field["station_id"], "result": "incorrect",
            "reasons": ["mixed"], "scanned_at": yesterday_at(7, 30).isoformat()}
    _fine(client.post(f"/api/v1/communities/{c}/checkins", json=scan, headers=world.h("volunteer")))
    adjustment = {"points": 1, "reason": "fuzz", "idempotency_key": key}
    _fine(client.post(f"/api/v1/households/{world.households[3].id}/adjustments", json=adjustment, headers=world.h("committee")))
