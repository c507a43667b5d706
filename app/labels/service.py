"""Door-plate labels: A4 PDF pages of household QR codes to print, cut and stick on doors.

Two layouts: `sheet`, a 3 × 4 grid of 60 mm labels per A4 page with dashed cut lines, and `single`,
one large label per page for print shops and laminated plates. Each label carries the QR code (the
signed payload the volunteers' scanner reads), the door plate in Chinese ("3号楼 1单元 302"), the
community name and the short code to type in when a camera fails. The QR code is drawn as vector
squares with high error correction (Q, 25 %) so a scuffed or rained-on label still scans.
Fonts: the TrueType font at settings.label_font_path (WenQuanYi Micro Hei from Debian's
fonts-wqy-microhei, installed in the image) is embedded, subset, so every viewer and printer shows
the same glyphs; without it, ReportLab's CID font STSong-Light, which the viewer has to supply.
"""

from __future__ import annotations

import logging
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from sqlmodel import Session, select

from app.audit import service as audit
from app.core.config import get_settings
from app.identity.auth import Principal
from app.kit.errors import not_found
from app.places import service as places
from app.places.models import Building, Community, Household, HouseholdStatus

MAX_LABELS = 3000  # per request: a large compound, about 250 pages
FONT = "STSong-Light"  # the fallback: a standard CID font, not embedded
EMBEDDED = "LabelCJK"  # the registered name prefix of the embedded TrueType font
log = logging.getLogger(__name__)
MM = 72 / 25.4  # points per millimetre


class LabelLayout(StrEnum):
    sheet = "sheet"  # 3 × 4 labels of 60 mm on each A4 page
    single = "single"  # one label per A4 page


@dataclass(frozen=True)
class Label:
    door_plate: str  # 3号楼 1单元 302
    community: str
    code: str  # the household's public code, typed in when the camera fails
    payload: str  # what the QR code holds

    @property
    def sort_key(self) -> tuple:
        return (self.community, *(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", self.door_plate)))


def door_plate_text(building: str, unit: str, door_plate: str) -> str:
    parts = [building]
    if unit:
        parts.append(unit if unit.endswith("单元") else f"{unit}单元")
    parts.append(door_plate)
    return " ".join(p for p in parts if p)


def labels_for(session: Session, households: list[Household]) -> list[Label]:
    buildings = places.building_names(session, {h.building_id for h in households})
    community_ids = {h.community_id for h in households}
    communities = dict(session.exec(select(Community.id, Community.name).where(Community.id.in_(community_ids))).all()) if community_ids else {}
    labels = [
        Label(
            door_plate=door_plate_text(buildings.get(h.building_id, ""), h.unit, h.door_plate),
            community=communities.get(h.community_id, ""),
            code=h.public_code,
            payload=places.qr_payload(h),
        )
        for h in households
    ]
    return sorted(labels, key=lambda label: label.sort_key)


# --- drawing -----------------------------------------------------------------------------------

def _font() -> str:
    """The registered name of the font the labels are set in: the embedded TrueType when its file
    is there, else the CID fallback."""
    from reportlab.pdfbase import pdfmetrics

    settings = get_settings()
    path, index = settings.label_font_path, settings.label_font_index
    if path and Path(path).is_file():
        name = f"{EMBEDDED}-{index}-{zlib.crc32(path.encode()):08x}"  # one registration per file and face
        if name in pdfmetrics.getRegisteredFontNames():
            return name
        try:
            from reportlab.pdfbase.ttfonts import TTFont

            pdfmetrics.registerFont(TTFont(name, path, subfontIndex=index))
            return name
        except Exception:  # an unreadable or non-TrueType file: print with the fallback rather than fail
            log.warning("label font %s unusable, falling back to %s", path, FONT, exc_info=True)
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont

    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT))
    return FONT


def _draw_qr(canvas, payload: str, x: float, y: float, size: float) -> None:
    """The QR code as filled squares (runs merged per row), `size` points wide including the quiet zone."""
    import segno

    qr = segno.make(payload, error="q", micro=False, boost_error=False)
    rows = [list(r) for r in qr.matrix_iter(border=4)]
    module = size / len(rows)
    for j, row in enumerate(rows):
        top = y + size - (j + 1) * module
        i = 0
        while i < len(row):
            if row[i]:
                start = i
                while i < len(row) and row[i]:
                    i += 1
                # A hair of overlap so viewers do not show seams between modules.
                canvas.rect(x + start * module, top, (i - start) * module + 0.05, module + 0.05, stroke=0, fill=1)
            else:
                i += 1


def _fit(canvas_text_width, text: str, font: str, size: float, width: float) -> float:
    while size > 6 and canvas_text_width(text, font, size) > width:
        size -= 0.5
    return size


def _draw_label(canvas, label: Label, x: float, y: float, w: float, h: float, scale: float) -> None:
    """One label in the box (x, y, w, h); `scale` 1 is the 60 mm sheet label."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    font = _font()
    pad = 3 * MM * scale
    qr_size = min(w - 2 * pad, h * 0.68)
    qr_y = y + h - pad - qr_size
    _draw_qr(canvas, label.payload, x + (w - qr_size) / 2, qr_y, qr_size)
    cx = x + w / 2
    plate_size = _fit(stringWidth, label.door_plate, font, 14 * scale, w - 2 * pad)
    community_size = _fit(stringWidth, label.community, font, 9 * scale, w - 2 * pad)
    code_size = 7 * scale
    baseline = qr_y - plate_size * 1.1
    canvas.setFont(font, plate_size)
    canvas.drawCentredString(cx, baseline, label.door_plate)
    baseline -= community_size * 1.5
    canvas.setFont(font, community_size)
    canvas.drawCentredString(cx, baseline, label.community)
    baseline -= code_size * 1.6
    canvas.setFont(font, code_size)
    canvas.drawCentredString(cx, baseline, f"手工输入码 {label.code}")


def render_pdf(labels: list[Label], layout: LabelLayout, progress: Callable[[int, int], None] | None = None) -> bytes:
    import io

    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen.canvas import Canvas

    buf = io.BytesIO()
    canvas = Canvas(buf, pagesize=A4, invariant=1)
    canvas.setTitle("门牌二维码")
    canvas.setCreator("jianfei")
    page_w, page_h = A4
    total = len(labels)
    if layout == LabelLayout.single:
        for n, label in enumerate(labels, start=1):
            w, h = 170 * MM, 230 * MM
            _draw_label(canvas, label, (page_w - w) / 2, (page_h - h) / 2, w, h, scale=3.2)
            canvas.showPage()
            if progress:
                progress(n, total)
    else:
        cols, rows = 3, 4
        w, h = 60 * MM, 66 * MM
        left, bottom = (page_w - cols * w) / 2, (page_h - rows * h) / 2
        per_page = cols * rows
        for start in range(0, total, per_page):
            for k, label in enumerate(labels[start : start + per_page]):
                col, row = k % cols, k // cols
                x, y = left + col * w, bottom + (rows - 1 - row) * h
                canvas.saveState()
                canvas.setStrokeGray(0.7)
                canvas.setLineWidth(0.3)
                canvas.setDash(2, 2)
                canvas.rect(x, y, w, h, stroke=1, fill=0)
                canvas.restoreState()
                _draw_label(canvas, label, x, y, w, h, scale=1)
            canvas.showPage()
            if progress:
                progress(min(start + per_page, total), total)
    if total == 0:
        canvas.showPage()  # a valid, blank page rather than an unreadable file
    canvas.save()
    return buf.getvalue()


# --- who may print what ------------------------------------------------------------------------

def _record(session: Session, actor_user_id: int | None, request_id: str | None, community_id: int, obj_type: str, obj_id, count: int, layout: LabelLayout, via: str) -> None:
    audit.record(
        session,
        actor_user_id=actor_user_id,
        action="labels.print",
        object_type=obj_type,
        object_id=obj_id,
        community_id=community_id,
        request_id=request_id,
        detail={"labels": count, "layout": layout.value, "via": via},
    )


def building_households(session: Session, building_id: int) -> list[Household]:
    """The active households of a building (moved-out ones need no label)."""
    return list(
        session.exec(
            select(Household).where(Household.building_id == building_id, Household.status == HouseholdStatus.active)
        ).all()
    )


def listed_households(session: Session, community_id: int, household_ids: list[int]) -> list[Household]:
    wanted = set(household_ids)
    found = list(session.exec(select(Household).where(Household.id.in_(wanted), Household.community_id == community_id)).all()) if wanted else []
    if len(found) != len(wanted):
        raise not_found("住户", "Household", "household_ids")
    return found


def building_labels(
    session: Session, principal: Principal, building_id: int, layout: LabelLayout
) -> tuple[bytes, str]:
    building: Building = places.get_building(session, building_id)
    households = building_households(session, building_id)
    pdf = render_pdf(labels_for(session, households), layout)
    _record(session, principal.user_id, principal.request_id, building.community_id, "building", building.id, len(households), layout, "api")
    session.commit()
    return pdf, f"labels-building-{building.id}.pdf"


def household_labels(
    session: Session, principal: Principal, community_id: int, household_ids: list[int], layout: LabelLayout
) -> tuple[bytes, str]:
    households = listed_households(session, community_id, household_ids)
    pdf = render_pdf(labels_for(session, households), layout)
    _record(session, principal.user_id, principal.request_id, community_id, "community", community_id, len(households), layout, "api")
    session.commit()
    return pdf, f"labels-community-{community_id}.pdf"


def operator_labels(
    session: Session,
    *,
    building_id: int | None,
    household_ids: list[int],
    layout: LabelLayout,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[bytes, int]:
    """For the command line (an operator on the server): labels of a building and/or listed households."""
    households: list[Household] = []
    community_ids: set[int] = set()
    if building_id is not None:
        building = places.get_building(session, building_id)
        households += building_households(session, building_id)
        community_ids.add(building.community_id)
    if household_ids:
        seen = {h.id for h in households}
        for hid in dict.fromkeys(household_ids):
            h = places.get_household(session, hid)
            community_ids.add(h.community_id)
            if h.id not in seen:
                households.append(h)
    pdf = render_pdf(labels_for(session, households), layout, progress)
    for community_id in community_ids:
        count = sum(1 for h in households if h.community_id == community_id)
        _record(session, None, None, community_id, "community", community_id, count, layout, "cli")
    session.commit()
    return pdf, len(households)
