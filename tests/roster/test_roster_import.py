"""Roster import through the HTTP API: validation report, modes, re-import, encodings, XLSX, scope."""

from __future__ import annotations

import csv
import io
import uuid

from openpyxl import Workbook

from tests.support import auth


def _phone() -> str:
    """A new mobile number (not from `random`: pytest-randomly seeds it alike for every test)."""
    n = uuid.uuid4().int
    return f"13{5 + n % 5}{n // 5 % 10**8:08d}"


def _csv(rows: list[list[object]], encoding: str = "utf-8-sig") -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode(encoding)


def _xlsx(rows: list[list[object]]) -> bytes:
    wb = Workbook()
    ws = wb.active
    for r in rows:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def upload(client, world, data: bytes, role: str = "committee", filename: str = "roster.csv", key: str | None = "fresh", **form):
    """One upload as the dashboard sends it: a new Idempotency-Key per user action (key=None: no header)."""
    form = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in form.items()}
    key = uuid.uuid4().hex if key == "fresh" else key
    return client.post(
        f"/api/v1/communities/{world.community.id}/roster-imports",
        files={"file": (filename, data, "application/octet-stream")},
        data=form,
        headers=world.h(role) | ({"Idempotency-Key": key} if key else {}),
    )


def households(client, world, **params) -> list[dict]:
    items, cursor = [], None
    while True:
        q = {"limit": 200, **params} | ({"cursor": cursor} if cursor else {})
        body = client.get(f"/api/v1/communities/{world.community.id}/households", params=q, headers=world.h("committee")).json()
        items += body["items"]
        cursor = body["next_cursor"]
        if not cursor:
            return items


def by_plate(items: list[dict]) -> dict[tuple[str, str, str], dict]:
    return {(h["building_name"], h["unit"], h["door_plate"]): h for h in items}


BAD_FILE = [
    ["楼栋", "单元", "门牌", "人数", "电话", "姓名"],
    ["1号楼", "2", "501", "3", "", "张三"],  # row 2: fine
    ["1号楼", "2", "", "3", "", "李四"],  # row 3: no door plate
    ["1号楼", "2", "501", "2", "", "王五"],  # row 4: duplicate of row 2
    ["1号楼", "2", "502", "3", "12345", "赵六"],  # row 5: bad phone
    ["9号楼", "1", "101", "3", "", "钱七"],  # row 6: unknown building
    ["2号楼", "1", "601", "0", "", "孙八"],  # row 7: members not positive
    ["2号楼", "1", "602", "两", "", "周九"],  # row 8: members not a number
]


def test_dry_run_reports_every_problem_by_row_and_column_and_stores_nothing(client, world):
    before = len(households(client, world))
    r = upload(client, world, _csv(BAD_FILE))
    assert r.status_code == 201, r.text
    report = r.json()
    assert report["mode"] == "dry_run" and report["applied"] is False
    assert report["rows"] == 7 and report["valid_rows"] == 1 and report["created"] == 1
    problems = {(e["row"], e["column"], e["code"]) for e in report["errors"]}
    assert problems == {
        (3, "门牌", "missing_door_plate"),
        (4, "门牌", "duplicate_household"),
        (5, "电话", "invalid_phone"),
        (6, "楼栋", "unknown_building"),
        (7, "人数", "invalid_members"),
        (8, "人数", "invalid_members"),
    }
    messages = {e["row"]: e["message"] for e in report["errors"]}
    assert messages[3] == "缺少门牌号" and "第2行" in messages[4] and "9号楼" in messages[6]
    assert "12345" not in r.text  # the bad number is not echoed
    assert len(households(client, world)) == before

    en = client.get(f"/api/v1/roster-imports/{report['id']}", headers=world.h("committee", **{"Accept-Language": "en"}))
    assert en.status_code == 200
    assert {e["row"]: e["message"] for e in en.json()["errors"]}[3] == "Door plate is missing"


def test_valid_rows_import_writes_them_and_offers_the_error_file(client, world, engine):
    phone = _phone()
    rows = [r[:] for r in BAD_FILE]
    rows[1][4] = phone
    r = upload(client, world, _csv(rows), mode="valid_rows")
    assert r.status_code == 201, r.text
    report = r.json()
    assert report["applied"] is True and report["created"] == 1 and report["error_count"] == 6
    new = by_plate(households(client, world))[("1号楼", "2", "501")]
    assert new["members"] == 3 and new["phone_masked"] == f"{phone[:3]}****{phone[-4:]}"
    assert phone not in str(households(client, world))

    errors = client.get(report["errors_url"], headers=world.h("committee"))
    assert errors.status_code == 200 and errors.headers["content-type"].startswith("text/csv")
    assert errors.content.startswith(b"\xef\xbb\xbf")
    lines = list(csv.reader(io.StringIO(errors.content.decode("utf-8-sig"))))
    assert lines[0] == ["行号", "列", "问题"] and len(lines) == 7
    assert ["3", "门牌", "缺少门牌号"] in lines
    en = client.get(report["errors_url"], headers=world.h("committee", **{"Accept-Language": "en"}))
    assert list(csv.reader(io.StringIO(en.content.decode("utf-8-sig"))))[0] == ["row", "column", "problem"]

    audit = client.get(f"/api/v1/communities/{world.community.id}/audit", headers=world.h("committee")).json()["items"]
    entry = next(a for a in audit if a["action"] == "roster.import")
    assert entry["detail"]["created"] == 1 and entry["actor_user_id"] == world.users["committee"]
    assert phone not in str(audit) and "张三" not in str(audit)

    # The resident with that phone finds the household on binding: the stored hash is the real one.
    tokens = client.post("/api/v1/auth/wechat/login", json={"code": f"code-{uuid.uuid4().hex[:8]}"}).json()
    bound = client.post("/api/v1/auth/wechat/phone", json={"code": f"phone-{phone}"}, headers=auth(tokens["access_token"]))
    assert bound.status_code == 200 and bound.json()["household_ids"] == [new["id"]]


def test_reimport_creates_nothing_and_changed_rows_update(client, world):
    p1, p2 = _phone(), _phone()
    rows = [["building", "unit", "door_plate", "members", "phone"], ["1号楼", "3", "101", 2, p1], ["2号楼", "3", "102", 4, p2]]
    first = upload(client, world, _csv(rows), mode="valid_rows").json()
    assert (first["created"], first["updated"], first["unchanged"]) == (2, 0, 0)
    count = len(households(client, world))
    codes = {k: h["public_code"] for k, h in by_plate(households(client, world)).items()}

    again = upload(client, world, _csv(rows), mode="valid_rows").json()
    assert (again["created"], again["updated"], again["unchanged"], again["error_count"]) == (0, 0, 2, 0)
    assert len(households(client, world)) == count

    p3 = _phone()
    rows[1][3] = 5  # members changed
    rows[2][4] = p3  # phone changed
    changed = upload(client, world, _csv(rows), mode="valid_rows").json()
    assert (changed["created"], changed["updated"], changed["unchanged"]) == (0, 2, 0)
    now = by_plate(households(client, world))
    assert now[("1号楼", "3", "101")]["members"] == 5
    assert now[("2号楼", "3", "102")]["phone_masked"] == f"{p3[:3]}****{p3[-4:]}"
    assert {k: h["public_code"] for k, h in now.items()} == codes  # the door codes never change

    # Blank phone and members cells leave the stored values alone.
    rows[1][3], rows[1][4] = "", ""
    blank = upload(client, world, _csv(rows), mode="valid_rows").json()
    assert blank["updated"] == 0 and blank["unchanged"] == 2
    assert by_plate(households(client, world))[("1号楼", "3", "101")]["members"] == 5


def test_gbk_csv_and_utf8_without_bom(client, world):
    rows = [["楼栋", "单元", "门牌号", "家庭人数", "联系电话"], ["1号楼", "1单元", "701室", "3", ""]]
    for encoding in ("gbk", "utf-8"):
        r = upload(client, world, _csv(rows, encoding), mode="dry_run")
        assert r.status_code == 201, r.text
        assert r.json()["error_count"] == 0 and r.json()["created"] == 1, encoding
    done = upload(client, world, _csv(rows, "gbk"), mode="valid_rows").json()
    assert done["created"] == 1
    assert ("1号楼", "1", "701") in by_plate(households(client, world))


def test_xlsx_with_numbers_and_a_title_line(client, world):
    phone = _phone()
    data = _xlsx([
        ["玫瑰里小区住户花名册"],
        ["Building", "Unit", "Door plate", "Members", "Phone", "Name"],
        ["2号楼", 1, 803, 2, int(phone), "Zhang"],
        ["2", 1, 804.0, 3.0, None, None],  # "2" means 2号楼; Excel's floats are whole numbers
        [None, None, None, None, None, None],  # blank line: skipped
    ])
    r = upload(client, world, data, filename="roster.xlsx", mode="all_or_nothing")
    assert r.status_code == 201, r.text
    assert r.json()["applied"] is True and r.json()["created"] == 2, r.text
    got = by_plate(households(client, world))
    assert got[("2号楼", "1", "803")]["phone_masked"] == f"{phone[:3]}****{phone[-4:]}"
    assert got[("2号楼", "1", "804")]["members"] == 3


def test_all_or_nothing_refuses_a_file_with_any_problem(client, world):
    before = len(households(client, world))
    r = upload(client, world, _csv(BAD_FILE), mode="all_or_nothing")
    assert r.status_code == 201 and r.json()["applied"] is False and r.json()["error_count"] == 6
    assert len(households(client, world)) == before
    audit = client.get(f"/api/v1/communities/{world.community.id}/audit", headers=world.h("committee")).json()["items"]
    assert any(a["action"] == "roster.check" for a in audit)


def test_unknown_buildings_can_be_created_under_a_compound(client, world):
    rows = [["楼栋", "门牌"], ["12", "101"], ["12号楼", "102"], ["东楼", "101"]]
    needs_compound = upload(client, world, _csv(rows), mode="valid_rows", create_buildings=True)
    assert needs_compound.status_code == 400 and needs_compound.json()["error"]["field"] == "compound_id"

    dry = upload(client, world, _csv(rows), compound_id=world.compound.id, create_buildings=True).json()
    assert dry["buildings_created"] == 2 and dry["created"] == 3 and dry["applied"] is False
    buildings = client.get(f"/api/v1/compounds/{world.compound.id}/buildings", headers=world.h("committee")).json()["items"]
    assert {b["name"] for b in buildings} == {"1号楼", "2号楼"}

    done = upload(client, world, _csv(rows), mode="valid_rows", compound_id=world.compound.id, create_buildings=True).json()
    assert done["applied"] and done["buildings_created"] == 2 and done["created"] == 3
    buildings = client.get(f"/api/v1/compounds/{world.compound.id}/buildings", headers=world.h("committee")).json()["items"]
    assert {b["name"] for b in buildings} == {"1号楼", "2号楼", "12号楼", "东楼"}
    assert ("12号楼", "", "102") in by_plate(households(client, world))


def test_not_a_roster_is_a_clear_error(client, world):
    r = upload(client, world, _csv([["a", "b"], ["1", "2"]]))
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_roster_file"
    assert "楼栋" in r.json()["error"]["message"]
    empty = upload(client, world, b"")
    assert empty.status_code == 400
    xls = upload(client, world, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, filename="old.xls")
    assert xls.status_code == 400 and ".xlsx" in xls.json()["error"]["message"]


def test_only_managers_of_the_community_may_import(client, world, other_world):
    data = _csv([["楼栋", "门牌"], ["1号楼", "901"]])
    for role in ("volunteer", "clerk", "street_viewer", "resident"):
        assert upload(client, world, data, role=role, mode="valid_rows").status_code == 403, role
    r = upload(client, world, data, role="org_admin", mode="valid_rows")
    assert r.status_code == 201 and r.json()["created"] == 1
    assert client.get(f"/api/v1/roster-imports/{r.json()['id']}", headers=other_world.h("committee")).status_code == 403
    assert client.get(f"/api/v1/roster-imports/{r.json()['id']}/errors?format=csv", headers=world.h("volunteer")).status_code == 403


def test_a_compound_column_tells_same_named_buildings_apart(client, world):
    c = world.community.id
    second = client.post(f"/api/v1/communities/{c}/compounds", json={"name": "二期"}, headers=world.h("committee")).json()
    assert client.post(f"/api/v1/compounds/{second['id']}/buildings", json={"name": "1号楼"}, headers=world.h("committee")).status_code == 201

    plain = upload(client, world, _csv([["楼栋", "门牌"], ["1号楼", "808"]])).json()
    assert [e["code"] for e in plain["errors"]] == ["ambiguous_building"]
    chosen = upload(client, world, _csv([["楼栋", "门牌"], ["1号楼", "808"]]), compound_id=second["id"]).json()
    assert chosen["error_count"] == 0

    rows = [["小区", "楼栋", "门牌"], ["二期", "1号楼", "808"], ["一期", "1号楼", "808"], ["三期", "1号楼", "809"], ["二期", "5", "101"]]
    report = upload(client, world, _csv(rows), mode="valid_rows", create_buildings=True).json()
    assert report["created"] == 3 and report["buildings_created"] == 1
    assert [(e["row"], e["column"], e["code"]) for e in report["errors"]] == [(4, "小区", "unknown_compound")]
    buildings = client.get(f"/api/v1/compounds/{second['id']}/buildings", headers=world.h("committee")).json()["items"]
    assert {b["name"] for b in buildings} == {"1号楼", "5号楼"}
    first = client.get(f"/api/v1/compounds/{world.compound.id}/buildings", headers=world.h("committee")).json()["items"]
    assert {b["name"] for b in first} == {"1号楼", "2号楼"}


def test_export_edit_and_import_back(client, world):
    from openpyxl import load_workbook

    r = client.get(f"/api/v1/communities/{world.community.id}/roster", headers=world.h("committee"))
    assert r.status_code == 200 and r.content[:2] == b"PK"
    wb = load_workbook(io.BytesIO(r.content))
    ws = wb.active
    rows = [list(row) for row in ws.iter_rows(values_only=True)]
    assert rows[0][:6] == ["小区", "楼栋", "单元", "门牌", "人数", "电话"]
    assert len(rows) == 1 + len(world.households)
    first = world.households[0]
    phone = world.phones[first.id]
    assert rows[1][:5] == ["一期", "1号楼", "1", "101", 3] and rows[1][5] in (None, "")
    assert rows[1][6] == f"{phone[:3]}****{phone[-4:]}" and phone not in str(rows)

    ws.cell(row=2, column=5, value=6)  # one family grew
    buf = io.BytesIO()
    wb.save(buf)
    back = upload(client, world, buf.getvalue(), filename="roster.xlsx", mode="all_or_nothing").json()
    assert back["applied"] and back["error_count"] == 0
    assert (back["created"], back["updated"], back["unchanged"]) == (0, 1, len(world.households) - 1)
    household = client.get(f"/api/v1/households/{first.id}", headers=world.h("committee")).json()
    assert household["members"] == 6 and household["phone_masked"] == f"{phone[:3]}****{phone[-4:]}"

    audit = client.get(f"/api/v1/communities/{world.community.id}/audit", headers=world.h("committee")).json()["items"]
    assert any(a["action"] == "roster.export" and a["detail"]["households"] == len(world.households) for a in audit)
    assert client.get(f"/api/v1/communities/{world.community.id}/roster", headers=world.h("volunteer")).status_code == 403


def test_import_history_newest_first(client, world):
    data = _csv([["楼栋", "门牌"], ["1号楼", "101"]])
    ids = [upload(client, world, data, filename=f"v{i}.csv").json()["id"] for i in range(3)]
    url = f"/api/v1/communities/{world.community.id}/roster-imports"
    page = client.get(url, params={"limit": 2}, headers=world.h("committee")).json()
    assert [i["id"] for i in page["items"]] == ids[::-1][:2] and page["items"][0]["filename"] == "v2.csv"
    rest = client.get(url, params={"limit": 2, "cursor": page["next_cursor"]}, headers=world.h("committee")).json()
    assert [i["id"] for i in rest["items"]] == [ids[0]] and rest["next_cursor"] is None
    assert client.get(url, headers=world.h("clerk")).status_code == 403


def test_merged_building_cells_and_excel_unicode_text(client, world):
    wb = Workbook()
    ws = wb.active
    ws.append(["名单"])
    ws.append(["楼栋", "单元", "门牌", "人数"])
    for door in ("901", "902", "903"):
        ws.append(["2号楼" if door == "901" else None, "1" if door == "901" else None, door, 2])
    ws.append([None, None, "904", 2])  # not merged: a genuinely blank building
    ws.merge_cells("A3:A5")
    ws.merge_cells("B3:B5")
    buf = io.BytesIO()
    wb.save(buf)
    report = upload(client, world, buf.getvalue(), filename="merged.xlsx").json()
    assert report["created"] == 3
    assert [(e["row"], e["code"]) for e in report["errors"]] == [(6, "missing_building")]

    text = "楼栋\t门牌\n1号楼\t905\n".encode("utf-16")
    assert upload(client, world, text, filename="roster.txt").json()["created"] == 1


def test_excel_dates_and_full_width_digits(client, world):
    from datetime import datetime

    data = _xlsx([["楼栋", "单元", "门牌"], ["1号楼", "1", datetime(2026, 3, 1)], ["１号楼", "１", "３０５"]])
    report = upload(client, world, data, filename="roster.xlsx", mode="valid_rows").json()
    assert [(e["row"], e["column"], e["code"]) for e in report["errors"]] == [(2, "门牌", "date_cell")]
    assert "文本" in report["errors"][0]["message"]
    assert report["created"] == 1
    assert ("1号楼", "1", "305") in by_plate(households(client, world))


def _import_rows(engine) -> int:
    from sqlalchemy import text
    from sqlmodel import Session

    with Session(engine) as s:
        return s.execute(text("SELECT count(*) FROM roster_import")).scalar_one()


def test_a_retried_upload_returns_the_first_report(client, world, engine):
    data = _csv([["楼栋", "单元", "门牌", "人数"], ["1号楼", "2", "801", 2], ["1号楼", "2", "802", 3]])
    before = _import_rows(engine)
    first = upload(client, world, data, key="upload-7f3a9c01", mode="valid_rows")
    assert first.status_code == 201 and first.json()["created"] == 2 and first.json()["replayed"] is False
    again = upload(client, world, data, key="upload-7f3a9c01", mode="valid_rows")
    assert again.status_code == 200 and again.json()["replayed"] is True
    assert {k: v for k, v in again.json().items() if k != "replayed"} == {k: v for k, v in first.json().items() if k != "replayed"}
    assert _import_rows(engine) == before + 1
    other = upload(client, world, data + b"1\xe5\x8f\xb7\xe6\xa5\xbc,2,803,1\n", key="upload-7f3a9c01", mode="valid_rows")
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"

    # A phone sending no key: the same file, mode and options resent straight away is the same upload.
    data2 = _csv([["楼栋", "单元", "门牌", "人数"], ["1号楼", "2", "811", 2]])
    a = upload(client, world, data2, key=None, mode="valid_rows")
    b = upload(client, world, data2, key=None, mode="valid_rows")
    assert (a.status_code, b.status_code) == (201, 200) and a.json()["id"] == b.json()["id"] and b.json()["created"] == 1
    dry = upload(client, world, data2, key=None)  # another mode is another request
    assert dry.status_code == 201 and dry.json()["id"] != a.json()["id"]
    again_later = upload(client, world, data2, key=None, mode="valid_rows")  # after another import: a new check
    assert again_later.status_code == 201 and (again_later.json()["created"], again_later.json()["unchanged"]) == (0, 1)
    assert _import_rows(engine) == before + 4
    assert len([h for h in households(client, world) if h["door_plate"] in ("801", "802", "811")]) == 3


def test_concurrent_copies_of_an_upload_import_once(client, world, engine):
    import threading

    before = _import_rows(engine)
    for n, key in enumerate(["upload-race-0001", None]):
        data = _csv([["楼栋", "单元", "门牌", "人数"]] + [["1号楼", "5", f"{n}{i:02d}", 1] for i in range(40)])
        copies = 4
        barrier = threading.Barrier(copies)
        answers: list = [None] * copies

        def send(i: int, data=data, key=key, answers=answers, barrier=barrier) -> None:
            barrier.wait()
            answers[i] = upload(client, world, data, key=key, mode="valid_rows")

        threads = [threading.Thread(target=send, args=(i,)) for i in range(copies)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(r.status_code for r in answers) == [200, 200, 200, 201], [r.text[:200] for r in answers]
        assert len({r.json()["id"] for r in answers}) == 1 and {r.json()["created"] for r in answers} == {40}
        assert _import_rows(engine) == before + n + 1
    assert len([h for h in households(client, world) if h["unit"] == "5"]) == 80
