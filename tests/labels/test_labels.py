"""Door-plate label PDFs through the HTTP API and the command line: pages, text, QR payloads, scope."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader
from sqlmodel import Session
from typer.testing import CliRunner

from app.cli import app
from app.places.service import qr_payload


def _pdf(content: bytes) -> PdfReader:
    assert content.startswith(b"%PDF-")
    return PdfReader(io.BytesIO(content))


def _text(reader: PdfReader) -> str:
    return "\n".join(page.extract_text() for page in reader.pages)


def _add_households(client, world, building_id: int, n: int) -> list[int]:
    ids = []
    for i in range(n):
        r = client.post(
            f"/api/v1/communities/{world.community.id}/households",
            json={"building_id": building_id, "unit": "2", "door_plate": f"{10 + i // 2}0{i % 2 + 1}"},
            headers=world.h("committee"),
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    return ids


def test_building_sheet_has_every_door_plate_on_a4_pages(client, world):
    building = world.buildings[0]
    _add_households(client, world, building.id, 10)  # 4 + 10 = 14 households: two pages of 12
    r = client.get(f"/api/v1/buildings/{building.id}/labels", headers=world.h("committee"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    reader = _pdf(r.content)
    assert len(reader.pages) == 2
    width, height = float(reader.pages[0].mediabox.width), float(reader.pages[0].mediabox.height)
    assert abs(width - 595.3) < 1 and abs(height - 841.9) < 1  # A4 in points
    text = _text(reader)
    for plate in ("1号楼 1单元 101", "1号楼 1单元 401", "1号楼 2单元 1001", "1号楼 2单元 1402"):
        assert plate in text
    assert world.community.name in text
    assert "2号楼" not in text  # another building's households are not printed
    codes = {h.public_code for h in world.households if h.building_id == building.id}
    assert all(code in text for code in codes)
    # Sorted as people count: 1单元 101 before 1单元 401 before 2单元 1001.
    assert text.index("1单元 101") < text.index("1单元 401") < text.index("2单元 1001")

    audit = client.get(f"/api/v1/communities/{world.community.id}/audit", headers=world.h("committee")).json()["items"]
    assert any(a["action"] == "labels.print" and a["detail"]["labels"] == 14 for a in audit)


def test_moved_out_households_get_no_label(client, world):
    gone = world.households[1]
    client.patch(f"/api/v1/households/{gone.id}", json={"status": "moved_out"}, headers=world.h("committee"))
    r = client.get(f"/api/v1/buildings/{world.buildings[0].id}/labels", headers=world.h("org_admin"))
    assert r.status_code == 200
    assert gone.public_code not in _text(_pdf(r.content))


def test_chosen_households_one_per_page(client, world):
    chosen = [world.households[0].id, world.households[5].id, world.households[0].id]
    r = client.post(
        f"/api/v1/communities/{world.community.id}/labels",
        json={"household_ids": chosen, "layout": "single"},
        headers=world.h("committee"),
    )
    assert r.status_code == 200, r.text
    reader = _pdf(r.content)
    assert len(reader.pages) == 2  # duplicates printed once
    assert "1号楼 1单元 101" in reader.pages[0].extract_text()
    assert "2号楼 1单元 201" in reader.pages[1].extract_text()


def _qr_modules(page) -> set[tuple[int, int]]:
    """Dark modules of the QR code drawn on a page, read back from the PDF's filled rectangles."""
    from pypdf.generic import ContentStream

    rects = []
    for operands, op in ContentStream(page.get_contents(), page.pdf).operations:
        if op == b"re":
            rects.append(tuple(float(v) for v in operands))  # one-per-page layout: only QR runs are filled
    module = min(h for *_, h in rects) - 0.05
    left = min(x for x, *_ in rects)
    top = max(y + h for _, y, _, h in rects)
    cells = set()
    for x, y, w, h in rects:
        row = round((top - (y + h)) / module)
        first = round((x - left) / module)
        for col in range(first, first + round((w - 0.05) / module)):
            cells.add((row, col))
    return cells


def test_the_printed_qr_code_is_the_households_signed_payload(client, world, engine):
    import segno

    household = world.households[3]
    r = client.post(
        f"/api/v1/communities/{world.community.id}/labels",
        json={"household_ids": [household.id], "layout": "single"},
        headers=world.h("committee"),
    )
    with Session(engine) as s:
        payload = qr_payload(s.merge(household))
    expected = segno.make(payload, error="q", micro=False, boost_error=False)
    dark = {(j, i) for j, row in enumerate(expected.matrix_iter(border=0)) for i, v in enumerate(row) if v}
    drawn = _qr_modules(_pdf(r.content).pages[0])
    # The finder pattern's dark corner sits at (0, 0), so the drawn grid lines up with segno's exactly.
    assert drawn == dark


def test_labels_scope(client, world, other_world):
    url = f"/api/v1/buildings/{world.buildings[0].id}/labels"
    for role in ("volunteer", "clerk", "street_viewer", "resident"):
        assert client.get(url, headers=world.h(role)).status_code == 403, role
    assert client.get(url, headers=other_world.h("committee")).status_code == 403
    foreign = client.post(
        f"/api/v1/communities/{world.community.id}/labels",
        json={"household_ids": [other_world.households[0].id]},
        headers=world.h("committee"),
    )
    assert foreign.status_code == 404 and foreign.json()["error"]["field"] == "household_ids"
    empty = client.post(f"/api/v1/communities/{world.community.id}/labels", json={"household_ids": []}, headers=world.h("committee"))
    assert empty.status_code == 422


def test_cli_prints_a_building_and_households(client, world, tmp_path):
    out = tmp_path / "labels.pdf"
    runner = CliRunner()
    r = runner.invoke(app, ["labels", "--building", str(world.buildings[1].id), "--household", str(world.households[0].id), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "5 labels" in r.output
    reader = _pdf(out.read_bytes())
    assert len(reader.pages) == 1
    text = _text(reader)
    assert "2号楼 1单元 401" in text and "1号楼 1单元 101" in text

    single = tmp_path / "single.pdf"
    r = runner.invoke(app, ["labels", "-b", str(world.buildings[1].id), "--per-page", "-o", str(single)])
    assert r.exit_code == 0 and len(_pdf(single.read_bytes()).pages) == 4

    assert runner.invoke(app, ["labels", "-o", str(out)]).exit_code == 2
    missing = runner.invoke(app, ["labels", "--household", "999999999", "-o", str(out)])
    assert missing.exit_code == 2 and "住户不存在" in missing.output


def _font_objects(content: bytes) -> tuple[set[str], bool]:
    """(the base font names of the PDF, whether a TrueType font file is embedded in it)."""
    reader = _pdf(content)
    names, embedded = set(), False
    for page in reader.pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            names.add(str(font["/BaseFont"]))
            for desc in [d.get_object() for d in font.get("/DescendantFonts", [])] + [font]:
                descriptor = desc.get("/FontDescriptor")
                if descriptor is not None and "/FontFile2" in descriptor.get_object():
                    embedded = True
    return names, embedded


def test_labels_embed_the_cjk_truetype_font_when_it_is_installed(client, world):
    from pathlib import Path

    from app.core.config import get_settings

    path = get_settings().label_font_path
    if not Path(path).is_file():
        pytest.skip(f"{path} not installed (apt install fonts-wqy-microhei)")
    r = client.get(f"/api/v1/buildings/{world.buildings[0].id}/labels", headers=world.h("committee"))
    assert r.status_code == 200, r.text
    names, embedded = _font_objects(r.content)
    assert embedded, names  # the glyphs travel with the file: every viewer prints the same
    assert any("WenQuanYi" in n or "MicroHei" in n for n in names), names
    assert not any("STSong" in n for n in names)
    assert "1号楼 1单元 101" in _text(_pdf(r.content))  # and the text is still real text


def test_labels_fall_back_to_the_cid_font_without_a_font_file(client, world, monkeypatch):
    from app.core.config import get_settings

    monkeypatch.setattr(get_settings(), "label_font_path", "/nonexistent/font.ttc")
    r = client.get(f"/api/v1/buildings/{world.buildings[0].id}/labels", headers=world.h("committee"))
    assert r.status_code == 200, r.text
    names, embedded = _font_objects(r.content)
    assert not embedded and any("STSong-Light" in n for n in names), names
    assert "1号楼 1单元 101" in _text(_pdf(r.content))
