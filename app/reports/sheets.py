"""Point totals as CSV (UTF-8 with BOM, for Excel) or XLSX (XlsxWriter, constant memory), streamed.

Rows come in community → building order, so building and community subtotals are closed as soon as
the next one starts: nothing grows with the number of households.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Iterable, Iterator

import xlsxwriter

from app.reports.totals import CATEGORIES, FIGURES, FIRST_FIGURE, HEADERS_ZH, Subtotal

ID_HEADERS = ("社区", "小区", "楼栋", "单元", "门牌")
GRAM_FIGURES = {f"g_{c}" for c, _ in CATEGORIES}
CHUNK = 64 * 1024


def walk(rows: Iterable) -> Iterator[tuple[str, object]]:
    """Yield ("household", row), then ("building", Subtotal) / ("community", Subtotal) as each closes,
    and finally ("total", Subtotal). Each row is added once, to its building; a closing building is
    rolled into its community and a closing community into the total."""
    building: Subtotal | None = None
    community: Subtotal | None = None
    total = Subtotal(("总计",))
    current_building = current_community = None
    for row in rows:
        if row.community_id != current_community or row.building_id != current_building:
            if building is not None:
                community.add(building.values, building.households)
                yield "building", building
            if row.community_id != current_community:
                if community is not None:
                    total.add(community.values, community.households)
                    yield "community", community
                community = Subtotal((row.community,))
                current_community = row.community_id
            building = Subtotal((row.community, row.compound, row.building))
            current_building = row.building_id
        building.add(row[FIRST_FIGURE:])
        yield "household", row
    if building is not None:
        community.add(building.values, building.households)
        yield "building", building
    if community is not None:
        total.add(community.values, community.households)
        yield "community", community
    yield "total", total


# --- CSV --------------------------------------------------------------------------------------

CSV_HEADERS = ("层级", *ID_HEADERS, "户数", *(HEADERS_ZH[f] for f in FIGURES))


KG_AT = tuple(i for i, f in enumerate(FIGURES) if f in GRAM_FIGURES)


def _figures(values) -> list:
    out = list(values)
    for i in KG_AT:
        out[i] = out[i] / 1000
    return out


def csv_stream(rows: Iterable) -> Iterator[bytes]:
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\r\n")
    buf.write("\ufeff")
    out.writerow(CSV_HEADERS)
    for level, item in walk(rows):
        if level == "household":
            out.writerow(
                ["户", item.community, item.compound, item.building, item.unit, item.door_plate, 1,
                 *_figures(item[FIRST_FIGURE:])]
            )
        elif level == "building":
            community, compound, building = item.label
            out.writerow(["楼栋小计", community, compound, building, "", "", item.households, *_figures(item.values)])
        elif level == "community":
            out.writerow(["社区合计", item.label[0], "", "", "", "", item.households, *_figures(item.values)])
        else:
            out.writerow(["总计", "", "", "", "", "", item.households, *_figures(item.values)])
        if buf.tell() >= CHUNK:
            yield buf.getvalue().encode("utf-8")
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue().encode("utf-8")


# --- XLSX -------------------------------------------------------------------------------------

def write_xlsx(path: str, rows: Iterable, *, title: str, period: str, generated: str) -> None:
    """Four sheets: households, building subtotals, community subtotals (with the grand total), notes."""
    wb = xlsxwriter.Workbook(path, {"constant_memory": True})
    head = wb.add_format({"bold": True, "bg_color": "#E8F0E0", "border": 1, "text_wrap": True, "valign": "vcenter"})
    points = wb.add_format({"num_format": "#,##0"})
    kg = wb.add_format({"num_format": "#,##0.000"})
    bold_points = wb.add_format({"num_format": "#,##0", "bold": True})
    bold_kg = wb.add_format({"num_format": "#,##0.000", "bold": True})

    def sheet(name: str, ids: tuple[str, ...]):
        ws = wb.add_worksheet(name)
        headers = (*ids, *(HEADERS_ZH[f] for f in FIGURES))
        ws.write_row(0, 0, headers, head)
        ws.set_row(0, 32)
        ws.freeze_panes(1, len(ids))
        ws.set_column(0, len(ids) - 1, 12)
        first = len(ids)
        for i, f in enumerate(FIGURES):
            ws.set_column(first + i, first + i, 11 if f in GRAM_FIGURES else 10, kg if f in GRAM_FIGURES else points)
        return ws, first

    households, h_first = sheet("户明细", ID_HEADERS)
    buildings, b_first = sheet("楼栋小计", ("社区", "小区", "楼栋", "户数"))
    communities, c_first = sheet("社区合计", ("社区", "户数"))
    notes = wb.add_worksheet("说明")
    h_row = b_row = c_row = 1
    write_number = households.write_number
    write_string = households.write_string
    for level, item in walk(rows):
        if level == "household":
            # Column formats carry the number formats: cells are written bare (much faster).
            write_string(h_row, 0, item.community)
            write_string(h_row, 1, item.compound)
            write_string(h_row, 2, item.building)
            write_string(h_row, 3, item.unit)
            write_string(h_row, 4, item.door_plate)
            for col, v in enumerate(_figures(item[FIRST_FIGURE:]), start=h_first):
                write_number(h_row, col, v)
            h_row += 1
        elif level == "building":
            buildings.write_row(b_row, 0, (*item.label, item.households))
            for col, v in enumerate(_figures(item.values), start=b_first):
                buildings.write_number(b_row, col, v)
            b_row += 1
        else:
            bold = level == "total"
            communities.write_row(c_row, 0, (item.label[0], item.households))
            for i, v in enumerate(_figures(item.values)):
                fmt = (bold_kg if i in KG_AT else bold_points) if bold else None
                communities.write_number(c_row, c_first + i, v, fmt)
            c_row += 1
    notes.set_column(0, 0, 14)
    notes.set_column(1, 1, 60)
    for i, (k, v) in enumerate(
        (
            ("报表", "积分汇总（按户）"),
            ("范围", title),
            ("统计区间", period),
            ("生成时间", generated),
            ("说明", "住户仅以楼栋、单元和门牌标识，不含姓名与电话。期末积分 = 期初积分 + 获得合计 − 兑换消耗 − 过期清零；冲正记录计入原来源。"),
        )
    ):
        notes.write_string(i, 0, k)
        notes.write_string(i, 1, v)
    wb.close()


def xlsx_stream(rows: Iterable, **meta: str) -> Iterator[bytes]:
    """Build the workbook in a temporary file (XlsxWriter needs one in constant-memory mode), then stream it."""
    fd, path = tempfile.mkstemp(suffix=".xlsx", prefix="jianfei-export-")
    os.close(fd)
    try:
        write_xlsx(path, rows, **meta)
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk
    finally:
        os.unlink(path)
