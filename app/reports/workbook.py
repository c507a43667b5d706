"""The monthly report (月报) as a workbook a funder can use as is: the network's (or street's,
organisation's) name and the period in every sheet's title, one header row per table, real dates,
totals in their own marked row below the data (never subtotal rows among it), A4 print setup with the
titles repeated on every page and the width fitted, a 说明 sheet with every definition, and a 明细
sheet per measure listing the records behind it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from app.reports.measures.detail import Drilldown, DrilldownColumn
from app.reports.scope import SCOPE_ZH, ScopeKind, month_period

A4 = 9  # XlsxWriter's paper code
HEADER_ROW = 3  # title, period, blank, then the table's one header row


def month_label(month: str) -> str:
    y, m = month.split("-")
    return f"{int(y)}年{int(m)}月"


class _Formats:
    def __init__(self, wb) -> None:
        self.title = wb.add_format({"bold": True, "font_size": 14})
        self.subtitle = wb.add_format({"font_color": "#444444"})
        self.head = wb.add_format({"bold": True, "bg_color": "#E8F0E0", "border": 1, "text_wrap": True, "valign": "vcenter"})
        self.text = wb.add_format({"border": 1})
        self.wrap = wb.add_format({"border": 1, "text_wrap": True, "valign": "top"})
        self.int = wb.add_format({"num_format": "#,##0", "border": 1})
        self.kg = wb.add_format({"num_format": "#,##0.000", "border": 1})
        self.hours = wb.add_format({"num_format": "#,##0.00", "border": 1})
        self.date = wb.add_format({"num_format": "yyyy-mm-dd", "border": 1})
        total = {"bold": True, "top": 2, "bottom": 1, "left": 1, "right": 1, "bg_color": "#F3F3F3"}
        self.total_text = wb.add_format(total)
        self.total_int = wb.add_format(total | {"num_format": "#,##0"})
        self.total_kg = wb.add_format(total | {"num_format": "#,##0.000"})

    def number(self, unit: str, total: bool = False):
        if unit == "kg":
            return self.total_kg if total else self.kg
        if unit == "小时":
            return self.hours
        return self.total_int if total else self.int


def _titles(ws, f: _Formats, report, subtitle: str) -> None:
    period = month_period(report.month)
    scope = SCOPE_ZH[ScopeKind(report.scope)]
    ws.write(0, 0, f"{report.name} {month_label(report.month)}月报 — {subtitle}", f.title)
    ws.write(1, 0, f"统计期间：{period.start.isoformat()} 至 {period.end.isoformat()}　范围：{scope}（{report.name}）"
                   f"　生成时间：{report.generated_at.strftime('%Y-%m-%d %H:%M UTC')}", f.subtitle)


def _print_setup(ws, last_title_row: int, landscape: bool) -> None:
    ws.set_paper(A4)
    if landscape:
        ws.set_landscape()
    else:
        ws.set_portrait()
    ws.repeat_rows(0, last_title_row)  # the title and the table's header on every printed page
    ws.fit_to_pages(1, 0)  # as wide as one page, as long as it takes
    ws.center_horizontally()
    ws.set_margins(left=0.4, right=0.4, top=0.6, bottom=0.6)
    ws.set_footer("&C第 &P 页，共 &N 页")


def _cell(ws, f: _Formats, row: int, col: int, kind: str, value) -> None:
    if value is None or value == "":
        ws.write_blank(row, col, None, f.text)
    elif kind == "date":
        ws.write_datetime(row, col, value if isinstance(value, date) else date.fromisoformat(str(value)), f.date)
    elif kind == "bool":
        ws.write_string(row, col, "是" if value else "", f.text)
    elif kind == "int":
        ws.write_number(row, col, value, f.int)
    else:
        ws.write_string(row, col, str(value), f.text)


def _table(ws, f: _Formats, top: int, columns: Sequence[DrilldownColumn], rows: Sequence[dict], total_label: str | None) -> int:
    """One header row at `top`, the rows, then (when `total_label`) a marked 合计 row summing the
    columns marked `total`. Answers the next free row."""
    ws.write_row(top, 0, [c.label for c in columns], f.head)
    r = top + 1
    for row in rows:
        for col, c in enumerate(columns):
            _cell(ws, f, r, col, c.kind, row.get(c.key))
        r += 1
    if total_label is not None:
        for col, c in enumerate(columns):
            if col == 0:
                ws.write_string(r, 0, total_label, f.total_text)
            elif c.total:
                ws.write_number(r, col, sum(int(row.get(c.key) or 0) for row in rows), f.total_int)
            else:
                ws.write_blank(r, col, None, f.total_text)
        r += 1
    return r


def _widths(ws, columns: Sequence[DrilldownColumn]) -> None:
    for col, c in enumerate(columns):
        ws.set_column(col, col, 12 if c.kind == "date" else 10 if c.kind in ("int", "bool") else 18)


def _summary_sheet(wb, f: _Formats, report) -> None:
    ws = wb.add_worksheet("月报")
    _titles(ws, f, report, "项目总体情况")
    ws.write_row(HEADER_ROW, 0, ("指标", "单位", "本月", "累计（项目开始至本月末）"), f.head)
    ws.set_column(0, 0, 36)
    ws.set_column(1, 1, 8)
    ws.set_column(2, 3, 18)
    row = HEADER_ROW + 1
    for fig in report.figures:
        ws.write(row, 0, fig.label, f.text)
        ws.write(row, 1, fig.unit, f.text)
        for col, v in ((2, fig.this_month), (3, fig.cumulative)):
            if v is None:
                ws.write(row, col, "未记录", f.text)
            else:
                ws.write_number(row, col, v, f.number(fig.unit))
        row += 1
    if report.waste_by_category:
        # The categories in a table of their own, their total in a marked row: selecting a column
        # never counts a kilogram twice.
        row += 1
        ws.write_row(row, 0, ("垃圾分类减量", "单位", "本月", "累计（项目开始至本月末）"), f.head)
        row += 1
        for fig in report.waste_by_category:
            ws.write(row, 0, fig.label, f.text)
            ws.write(row, 1, fig.unit, f.text)
            ws.write_number(row, 2, fig.this_month, f.kg)
            ws.write_number(row, 3, fig.cumulative, f.kg)
            row += 1
        ws.write(row, 0, "合计", f.total_text)
        ws.write(row, 1, "kg", f.total_text)
        for col, attr in ((2, "this_month"), (3, "cumulative")):
            grams = sum(round(getattr(c, attr) * 1000) for c in report.waste_by_category)
            ws.write_number(row, col, grams / 1000, f.total_kg)
        row += 1
    ws.write(row + 1, 0, "所有数字由系统记录计算；各指标的定义见“说明”，每个指标背后的记录见“明细”各表。")
    ws.freeze_panes(HEADER_ROW + 1, 0)
    _print_setup(ws, HEADER_ROW, landscape=False)


ACTIVITY_COLUMNS = (
    DrilldownColumn(key="street", label="街道", kind="text"),
    DrilldownColumn(key="community", label="社区", kind="text"),
    DrilldownColumn(key="organisation", label="机构", kind="text"),
    DrilldownColumn(key="held_on", label="日期", kind="date"),
    DrilldownColumn(key="title", label="活动", kind="text"),
    DrilldownColumn(key="place", label="地点", kind="text"),
    DrilldownColumn(key="participants", label="参与人次", kind="int", total=True),
    DrilldownColumn(key="named", label="已登记参与者", kind="int", total=True),
    DrilldownColumn(key="direct_beneficiaries", label="直接受益人次", kind="int", total=True),
    DrilldownColumn(key="indirect_beneficiaries", label="间接受益人次", kind="int", total=True),
    DrilldownColumn(key="volunteers", label="志愿者人次", kind="int", total=True),
    DrilldownColumn(key="leaflets", label="宣传品", kind="int", total=True),
    DrilldownColumn(key="media_items", label="媒体报道", kind="int", total=True),
    DrilldownColumn(key="media_reads", label="阅读量（月末）", kind="int", total=True),
)
GROUP_COLUMNS = (
    DrilldownColumn(key="street", label="街道", kind="text"),
    DrilldownColumn(key="community", label="社区", kind="text"),
    DrilldownColumn(key="organisation", label="机构", kind="text"),
    DrilldownColumn(key="activities", label="活动场次", kind="int", total=True),
    *ACTIVITY_COLUMNS[6:],
)
# A back-dated activity (recorded after its late window, 补录) is marked in a column of its own, last on
# the activity sheet: the title a person reads stays as entered.
BACKDATED_COLUMN = DrilldownColumn(key="backdated", label="补录", kind="text")


def _activities_sheets(wb, f: _Formats, report) -> None:
    """One row per activity with a 合计 row under them; the per-community, per-organisation sums in a
    sheet of their own (with its own 合计)."""
    lines, groups = [], []
    for g in report.activities:
        place = {"street": g.street, "community": g.community, "organisation": g.organisation}
        groups.append(place | g.totals)
        lines += [place | a.model_dump() | {"backdated": "补录" if a.backdated else None} for a in g.activities]
    for name, columns, rows, what in (("活动", (*ACTIVITY_COLUMNS, BACKDATED_COLUMN), lines, "本月活动"),
                                      ("按社区机构汇总", GROUP_COLUMNS, groups, "按社区和机构汇总")):
        ws = wb.add_worksheet(name)
        _titles(ws, f, report, what)
        _widths(ws, columns)
        _table(ws, f, HEADER_ROW, columns, rows, f"合计（{len(lines)}场）")
        ws.freeze_panes(HEADER_ROW + 1, 0)
        _print_setup(ws, HEADER_ROW, landscape=True)


def _definitions_sheet(wb, f: _Formats, report) -> None:
    ws = wb.add_worksheet("说明")
    _titles(ws, f, report, "说明：指标的定义")
    ws.write_row(HEADER_ROW, 0, ("指标", "定义"), f.head)
    ws.set_column(0, 0, 24)
    ws.set_column(1, 1, 90)
    row = HEADER_ROW + 1
    for d in report.definitions:
        ws.write(row, 0, d.term, f.wrap)
        ws.write(row, 1, d.text, f.wrap)
        row += 1
    _print_setup(ws, HEADER_ROW, landscape=False)


def _detail_sheet(wb, f: _Formats, report, detail: Drilldown) -> None:
    ws = wb.add_worksheet(f"明细-{detail.title}")
    _titles(ws, f, report, f"明细：{detail.title}")
    _widths(ws, detail.columns)
    summable = any(c.total for c in detail.columns)
    _table(ws, f, HEADER_ROW, detail.columns, detail.rows, f"合计（{len(detail.rows)}条）" if summable else None)
    ws.freeze_panes(HEADER_ROW + 1, 0)
    _print_setup(ws, HEADER_ROW, landscape=len(detail.columns) > 8)


def _waste_sheet(wb, f: _Formats, report, sheet) -> None:
    """A waste measure's 明细 sheet (app.reports.measures.waste.DetailSheet): the records its figure
    counts, one header row, the total (equal to the figure) in its own marked row below."""
    ws = wb.add_worksheet(sheet.name)
    _titles(ws, f, report, sheet.name)
    ws.write_row(HEADER_ROW, 0, [h for h, _ in sheet.columns], f.head)
    for col, (_, kind) in enumerate(sheet.columns):
        ws.set_column(col, col, 12 if kind in ("date", "kg") else 10 if kind == "int" else 16)
    formats = {"text": f.text, "int": f.int, "kg": f.kg, "date": f.date}
    row = HEADER_ROW + 1
    for values in sheet.rows:
        for col, (v, (_, kind)) in enumerate(zip(values, sheet.columns, strict=True)):
            if v is None or v == "":
                ws.write_blank(row, col, None, formats[kind])
            elif kind == "date":
                ws.write_datetime(row, col, v, formats[kind])
            else:
                ws.write(row, col, v, formats[kind])
        row += 1
    if sheet.total is not None:
        for col, (v, (_, kind)) in enumerate(zip(sheet.total, sheet.columns, strict=False)):
            fmt = f.total_kg if kind == "kg" else f.total_int if kind == "int" else f.total_text
            if v is None or v == "":
                ws.write_blank(row, col, None, f.total_text)
            else:
                ws.write(row, col, v, fmt)
    ws.freeze_panes(HEADER_ROW + 1, 0)
    _print_setup(ws, HEADER_ROW, landscape=True)


def write(report, path: str, details: Sequence[Drilldown] = (), waste_details=()) -> None:
    import xlsxwriter

    wb = xlsxwriter.Workbook(path, {"strings_to_formulas": False})  # titles and places are text (app.kit.cells)
    f = _Formats(wb)
    _summary_sheet(wb, f, report)
    _activities_sheets(wb, f, report)
    _definitions_sheet(wb, f, report)
    for sheet in waste_details:
        _waste_sheet(wb, f, report, sheet)
    for detail in details:
        _detail_sheet(wb, f, report, detail)
    wb.close()
