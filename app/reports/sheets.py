"""Point totals as CSV (UTF-8 with BOM, for Excel) or XLSX (rustpy-xlsxwriter, constant memory), streamed.

Rows come from one statement (totals.report_query) with the building and community subtotals already
in place, in output order: nothing here grows with the number of households.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Iterable, Iterator

from sqlmodel import Session

from app.kit.sql import copy_csv
from app.reports.totals import FIGURES, GRAM_FIGURES, HEADERS_ZH, LEVEL_ZH, Level

ID_HEADERS = ("社区", "小区", "楼栋", "单元", "门牌")
CHUNK = 64 * 1024

# --- CSV --------------------------------------------------------------------------------------

CSV_HEADERS = ("层级", *ID_HEADERS, "户数", *(HEADERS_ZH[f] for f in FIGURES))


def csv_stream(session: Session, stmt) -> Iterator[bytes]:
    """The BOM and the header, then the statement's rows (report_query(as_csv=True)) as CSV lines.

    The server writes the lines (COPY … TO STDOUT) and they pass through untouched."""
    head = io.StringIO()
    csv.writer(head, lineterminator="\n").writerow(CSV_HEADERS)
    yield ("\ufeff" + head.getvalue()).encode("utf-8")
    yield from copy_csv(session, stmt, CHUNK)


# --- XLSX -------------------------------------------------------------------------------------

# XlsxWriter spends ~9 µs of Python per cell turning it into XML (1.5 M cells for a 60,000-household
# street: 15–30 s on this machine whatever the calling pattern); rustpy-xlsxwriter (rust_xlsxwriter
# underneath) takes whole rows from a generator and writes them in constant memory, about 3× faster
# per cell including building the row dicts. Column formats carry the number formats.
NOTES = (
    "住户仅以楼栋、单元和门牌标识，不含姓名与电话。期末积分（含预约冻结） = 期初积分 + 获得合计 − 兑换消耗 − 过期清零；兑换消耗按兑付（交付）时计，预约冻结的积分另列；冲正、取消、过期释放计入发生的月份和原来源，已结束月份的数字不再改变。"
    "减量(kg)来自称重、堆肥投放和带重量的正确督导记录（与月报同一口径，冲正的不计）；走访居民领取积分支票后计入领取的住户，"
    "未领取的计入社区合计中的“走访居民（积分支票未领取）”行。"
)


HEADER_ROW = 3  # the title, the period, a blank row, then each table's one header row


def write_xlsx(path: str, rows: Iterable, *, title: str, period: str, generated: str) -> None:
    """Four sheets: households, building subtotals, community subtotals (with the grand total), notes.
    Each table sheet carries the scope and the period in its title rows and prints on A4, fitted to
    the page's width, with the titles and the header repeated on every page.

    `rows` are report_query's, in order. The household sheet is written while they stream; the subtotal
    rows among them are kept (one small row per building) for the sheets written after it."""
    from rustpy_xlsxwriter import Format, write_worksheets

    figure_headers = tuple(HEADERS_ZH[f] for f in FIGURES)
    kg_headers = {HEADERS_ZH[f] for f in FIGURES if f in GRAM_FIGURES}
    h_headers = (*ID_HEADERS, *figure_headers)
    b_headers = ("社区", "小区", "楼栋", "户数", *figure_headers)
    c_headers = ("社区", "户数", *figure_headers)
    buildings: list[dict] = []
    communities: list[dict] = []
    done = False

    def households() -> Iterator[dict]:
        nonlocal done
        for row in rows:
            if row[-1] == Level.household:  # zip stops at the household sheet's last column
                yield dict(zip(h_headers, row, strict=False))
                continue
            *ids, n, level = row
            figures = ids[len(ID_HEADERS):]
            if level == Level.building:
                buildings.append(dict(zip(b_headers, (*ids[:3], n, *figures), strict=True)))
            else:
                name = {Level.total: "总计", Level.walk_ins: f"{ids[0]}·{LEVEL_ZH[Level.walk_ins]}"}.get(level, ids[0])
                communities.append(dict(zip(c_headers, (name, n, *figures), strict=True)))
        done = True

    def after_households(kept: list[dict]) -> Iterator[dict]:
        # Sheets are written in order: this runs once the household sheet has consumed every row.
        assert done, "the household sheet must be written first"
        yield from kept

    points = Format().set_num_format("#,##0")
    kg = Format().set_num_format("#,##0.000")
    head = Format().set_bold().set_background_color("#E8F0E0").set_border("thin").set_text_wrap().set_align("vcenter")

    def formats(headers: tuple[str, ...]) -> dict:
        return {h: (kg if h in kg_headers else points) for h in headers if h in figure_headers or h == "户数"}

    def widths(headers: tuple[str, ...]) -> dict:
        return {h: (11 if h in kg_headers else 10) if h in figure_headers else 12 for h in headers}

    sheets = ("户明细", "楼栋小计", "社区合计", "说明")
    tables = {sheets[0]: ("按户明细", h_headers), sheets[1]: ("楼栋小计", b_headers), sheets[2]: ("社区合计", c_headers)}
    title_format = Format().set_bold().set_font_size(14)

    def titles(name: str) -> list:
        what, headers = tables[name]
        last = len(headers) - 1
        return [(0, 0, 0, last, f"积分汇总 — {what}　{title}", title_format),
                (1, 0, 1, last, f"统计区间：{period}　生成时间：{generated}")]

    page = {"paper_size": 9, "landscape": True, "repeat_rows": (0, HEADER_ROW), "fit_to_pages": (1, 0),
            "center_horizontally": True, "footer": "&C第 &P 页，共 &N 页"}
    notes = [
        {"项目": k, "内容": v}
        for k, v in (("报表", "积分汇总（按户）"), ("范围", title), ("统计区间", period), ("生成时间", generated), ("说明", NOTES))
    ]
    write_worksheets(
        [
            (sheets[0], households()),
            (sheets[1], after_households(buildings)),
            (sheets[2], after_households(communities)),
            (sheets[3], notes),
        ],
        path,
        freeze_panes={sheets[0]: {"row": HEADER_ROW + 1, "col": len(ID_HEADERS)}, sheets[1]: {"row": HEADER_ROW + 1, "col": 4},
                      sheets[2]: {"row": HEADER_ROW + 1, "col": 2}},
        header_format=dict.fromkeys(sheets, head),
        header_row=dict.fromkeys(tables, HEADER_ROW),
        merge_ranges={name: titles(name) for name in tables},
        page_setup=dict.fromkeys(tables, page),
        row_heights={name: {HEADER_ROW: 32} for name in tables},
        column_formats={sheets[0]: formats(h_headers), sheets[1]: formats(b_headers), sheets[2]: formats(c_headers)},
        column_widths={sheets[0]: widths(h_headers), sheets[1]: widths(b_headers), sheets[2]: widths(c_headers),
                       sheets[3]: {"项目": 14, "内容": 60}},
    )


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
