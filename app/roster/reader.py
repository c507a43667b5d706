"""Read a roster spreadsheet (XLSX, or CSV in UTF-8 with or without BOM, or GBK) into plain rows.

Committees keep rosters in Excel on Chinese Windows, so a CSV saved from there is GBK, numbers come
as numbers (302, 13800001111, 3.0) and a title line may sit above the header. This module only turns
the file into (row number, {field: text}); the rules live in service.py.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, time

from app.kit.errors import BadRequest

FIELDS = ("compound", "building", "unit", "door_plate", "members", "phone", "name")
REQUIRED = ("building", "door_plate")

# Header spellings seen in committee spreadsheets, by field; compared after normalising.
HEADERS: dict[str, tuple[str, ...]] = {
    "compound": ("小区", "小区名称", "compound"),
    "building": ("楼栋", "楼栋号", "楼号", "楼", "幢", "栋", "building", "bldg", "buildingname"),
    "unit": ("单元", "单元号", "unit"),
    "door_plate": ("门牌", "门牌号", "房号", "房间号", "室", "户号", "doorplate", "door", "room", "roomno"),
    "members": ("人数", "家庭人数", "户人数", "人口", "人口数", "members", "householdsize", "size"),
    "phone": ("电话", "手机", "手机号", "手机号码", "联系电话", "联系方式", "phone", "mobile", "tel", "telephone"),
    "name": ("姓名", "户主", "户主姓名", "联系人", "name", "contact"),
}
_LOOKUP = {spelling: f for f, spellings in HEADERS.items() for spelling in spellings}

MAX_BYTES = 20 * 1024 * 1024
MAX_ROWS = 50_000
HEADER_SEARCH_ROWS = 10
# An XLSX is a ZIP of XML: a few KB can expand to gigabytes. Checked before anything is inflated, from
# the sizes the archive declares (zipfile never inflates a member past its declared size).
MAX_UNCOMPRESSED = 200 * 1024 * 1024
MAX_MEMBERS = 500
MAX_COLUMNS = 30  # a roster has seven; cells further right are not read
MAX_SHEET_ROWS = MAX_ROWS + 1_000  # rows read at most, blank ones included
MAX_MERGED_CELLS = 20 * MAX_ROWS  # cells covered by merged ranges, all ranges together


@dataclass
class Sheet:
    columns: dict[str, str]  # field → header text as written in the file (for the report)
    rows: list[tuple[int, dict[str, str]]]  # (spreadsheet row number, field → cell text)
    # Row number → fields whose cell Excel turned into a date ("3-1" typed into a General cell).
    dates: dict[int, set[str]] = field(default_factory=dict)


def _norm_header(value: object) -> str:
    text = _cell_text(value).lower()
    for ch in " \t\r\n_-*：:()（）\ufeff":
        text = text.replace(ch, "")
    return text


def _cell_text(value: object) -> str:
    """Cell value as the committee sees it: 302 not 302.0, 13800001111 not 1.38e10."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return repr(value)
    # Full-width digits and letters typed in a Chinese input method are the same door plate.
    return unicodedata.normalize("NFKC", str(value)).strip()


def _bad_file(zh: str, en: str) -> BadRequest:
    return BadRequest("invalid_roster_file", zh, en, "file")


def _decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        # Excel's "Unicode Text" export: UTF-16 with BOM, tab-separated.
        return data.decode("utf-16")
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="strict")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        # GB18030 is a superset of GBK (Excel's "CSV" on Chinese Windows).
        return data.decode("gb18030")
    except UnicodeDecodeError:
        raise _bad_file(
            "无法识别文件编码，请保存为 UTF-8 或 GBK 编码的 CSV，或 XLSX 文件",
            "Unrecognised text encoding: save the file as CSV (UTF-8 or GBK) or XLSX",
        ) from None


def _csv_rows(data: bytes) -> Iterator[list[object]]:
    text = _decode(data)
    sample = text[:4096]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    yield from csv.reader(io.StringIO(text, newline=""), dialect)


def _too_big() -> BadRequest:
    return _bad_file(
        f"Excel 文件解压后过大或结构异常（解压后最多 {MAX_UNCOMPRESSED // 2**20} MB），请另存为新的 .xlsx 或 CSV",
        f"The Excel file expands too far or is malformed ({MAX_UNCOMPRESSED // 2**20} MB uncompressed at most): save it anew as .xlsx or CSV",
    )


def _check_archive(data: bytes) -> None:
    """Refuse a ZIP that would inflate past MAX_UNCOMPRESSED, or hold too many members, before any is read."""
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError):
        raise _bad_file("无法读取该 Excel 文件，请确认是 .xlsx 格式", "Could not read this Excel file (.xlsx expected)") from None
    if len(members) > MAX_MEMBERS or sum(m.file_size for m in members) > MAX_UNCOMPRESSED:
        raise _too_big()


def _xlsx_rows(data: bytes) -> Iterator[list[object]]:
    from openpyxl import load_workbook

    _check_archive(data)
    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:
        raise _bad_file("无法读取该 Excel 文件，请确认是 .xlsx 格式", "Could not read this Excel file (.xlsx expected)") from None
    try:
        ws = wb.active or wb.worksheets[0]
        followers = _merged_followers(ws)
        tops: dict[tuple[int, int], object] = {}
        for r, row in enumerate(ws.iter_rows(max_row=MAX_SHEET_ROWS, max_col=MAX_COLUMNS, values_only=True), start=1):
            values = list(row)
            if followers:
                for c, value in enumerate(values, start=1):
                    if (r, c) in followers:
                        values[c - 1] = tops.get(followers[(r, c)])
                    elif value is not None:
                        tops[(r, c)] = value
            yield values
    finally:
        wb.close()


_MERGE = re.compile(rb"<(?:\w+:)?mergeCell\b[^>]*\bref=\"([A-Z]{1,3}[0-9]{1,7}:[A-Z]{1,3}[0-9]{1,7})\"")


def _merge_refs(src) -> Iterator[str]:
    """The `ref` of every mergeCell in the sheet XML, read in chunks (the XML may be hundreds of MB;
    the merged ranges follow the data at its end)."""
    tail = b""
    while chunk := src.read(1 << 20):
        text = tail + chunk
        end = 0
        for m in _MERGE.finditer(text):
            end = m.end()
            yield m.group(1).decode()
        tail = text[max(end, len(text) - 4096):]  # a tag cut by the chunk's end is read with the next


def _merged_followers(ws) -> dict[tuple[int, int], tuple[int, int]]:
    """Cells covered by a merged range → the range's top-left cell, whose value they show in Excel.

    Committees merge the 楼栋 cell over all of a building's rows; openpyxl's read-only mode keeps
    only the top-left value, so the ranges are read from the sheet's XML (a regex is ~100× faster than
    parsing it). Only the cells that are read count (MAX_SHEET_ROWS × MAX_COLUMNS); a file whose
    ranges cover more than MAX_MERGED_CELLS of them is refused rather than expanded.
    """
    from openpyxl.utils.cell import range_boundaries

    followers: dict[tuple[int, int], tuple[int, int]] = {}
    try:
        with ws._get_source() as src:  # openpyxl's handle on the sheet XML
            for ref in _merge_refs(src):
                min_col, min_row, max_col, max_row = range_boundaries(ref)
                max_row, max_col = min(max_row, MAX_SHEET_ROWS), min(max_col, MAX_COLUMNS)
                if max(0, max_row - min_row + 1) * max(0, max_col - min_col + 1) + len(followers) > MAX_MERGED_CELLS:
                    raise _too_big()
                for r in range(min_row, max_row + 1):
                    for c in range(min_col, max_col + 1):
                        if (r, c) != (min_row, min_col):
                            followers[(r, c)] = (min_row, min_col)
    except (AttributeError, KeyError, ValueError, TypeError):
        return {}
    return followers


def is_xlsx(data: bytes) -> bool:
    return data[:4] == b"PK\x03\x04"


def read_roster(data: bytes) -> Sheet:
    """Parse the file; raises BadRequest (stores nothing) when it is not a roster at all."""
    if not data:
        raise _bad_file("文件为空", "The file is empty")
    if len(data) > MAX_BYTES:
        raise _bad_file("文件过大（最大 20 MB）", "The file is too large (20 MB at most)")
    if data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        raise _bad_file("不支持旧版 .xls 文件，请在 Excel 中另存为 .xlsx 或 CSV", "Old .xls files are not supported: save as .xlsx or CSV")
    source = _xlsx_rows(data) if is_xlsx(data) else _csv_rows(data)

    columns: dict[str, str] | None = None
    positions: dict[str, int] = {}
    rows: list[tuple[int, dict[str, str]]] = []
    dates: dict[int, set[str]] = {}
    try:
        for number, raw in enumerate(source, start=1):
            if columns is None:
                if number > HEADER_SEARCH_ROWS:
                    break
                found = {}
                for i, cell in enumerate(raw):
                    field = _LOOKUP.get(_norm_header(cell))
                    if field and field not in found:
                        found[field] = i
                if all(f in found for f in REQUIRED):
                    positions = found
                    columns = {f: _cell_text(raw[i]) for f, i in found.items()}
                continue
            cells = {f: (_cell_text(raw[i]) if i < len(raw) else "") for f, i in positions.items()}
            if not any(cells.values()):
                continue  # blank line
            rows.append((number, cells))
            dated = {f for f, i in positions.items() if i < len(raw) and isinstance(raw[i], date | time)}
            if dated:
                dates[number] = dated
            if len(rows) > MAX_ROWS:
                raise _bad_file(f"行数过多（最多 {MAX_ROWS} 行），请拆分文件", f"Too many rows ({MAX_ROWS} at most): split the file")
    except csv.Error:
        raise _bad_file("CSV 文件格式有误", "Malformed CSV file") from None
    if columns is None:
        raise _bad_file(
            "找不到表头：需要至少包含「楼栋」和「门牌」两列（可选：单元、人数、电话、姓名）",
            "No header row found: the file needs at least the columns building and door_plate "
            "(optional: unit, members, phone, name)",
        )
    return Sheet(columns=columns, rows=rows, dates=dates)
