"""Door-plate QR codes: signed payloads, forged ones rejected, scans scoped to the community."""

from __future__ import annotations

import io

from sqlmodel import Session

from app.places.service import qr_payload


def _payload(engine, household) -> str:
    with Session(engine) as s:
        return qr_payload(s.merge(household))


def test_qr_images(client, world):
    hid = world.households[0].id
    svg = client.get(f"/api/v1/households/{hid}/qr?format=svg", headers=world.h("committee"))
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml") and b"<svg" in svg.content
    png = client.get(f"/api/v1/households/{hid}/qr?format=png", headers=world.h("committee"))
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get(f"/api/v1/households/{hid}/qr", params={"format": "gif"}, headers=world.h("committee")).status_code == 422
    assert client.get(f"/api/v1/households/{hid}/qr.svg", headers=world.h("committee")).status_code == 404  # no path extensions


def test_scan_resolves_genuine_codes_only(client, world, engine):
    household = world.households[3]
    payload = _payload(engine, household)
    r = client.post("/api/v1/scan/resolve", json={"payload": payload}, headers=world.h("volunteer"))
    assert r.status_code == 200 and r.json()["id"] == household.id and r.json()["building_name"] == "1号楼"
    prefix, code, sig = payload.split(".")
    other_code = world.households[4].public_code
    for forged in (f"{prefix}.{other_code}.{sig}", f"{prefix}.{code}.{sig[:-1]}{'B' if sig[-1] != 'B' else 'C'}", f"{prefix}.hello", f"{prefix}.{code}"):
        bad = client.post("/api/v1/scan/resolve", json={"payload": forged}, headers=world.h("volunteer"))
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "forged_code", forged
    # Text that is no payload is read as a typed hand-entry code (tests/places/test_typed_codes.py).
    typed = client.post("/api/v1/scan/resolve", json={"payload": "hello"}, headers=world.h("volunteer"))
    assert typed.status_code == 404 and typed.json()["error"]["code"] == "unknown_code"


def test_scan_in_another_community_is_refused(client, world, other_world, engine):
    payload = _payload(engine, world.households[0])
    r = client.post("/api/v1/scan/resolve", json={"payload": payload}, headers=other_world.h("volunteer"))
    assert r.status_code == 403


def test_qr_payload_decodes_from_the_png(client, world, engine):
    """The PNG really carries the signed payload (decoded by reading segno's matrix back)."""
    import segno

    payload = _payload(engine, world.households[0])
    png = client.get(f"/api/v1/households/{world.households[0].id}/qr?format=png", headers=world.h("committee")).content
    expected = io.BytesIO()
    segno.make(payload, error="m").save(expected, kind="png", scale=8, border=2)
    assert png == expected.getvalue()
