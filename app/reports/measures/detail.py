"""The shape of a drill-down (明细): the records behind one figure of a report, as a table a console,
a spreadsheet or a funder's question can read: its columns (with which to total), its rows, and the
figures those rows give, computed as the report computes them. One shape for every measure."""

from __future__ import annotations

from datetime import date, datetime

from sqlmodel import Field, SQLModel

from app.kit.errors import BadRequest
from app.kit.pagination import MAX_LIMIT, decode_cursor, encode_cursor


class DrilldownColumn(SQLModel):
    key: str
    label: str
    kind: str = Field(description="text、int、date、datetime、bool 或 grams（克；合计时换算为 kg）")
    total: bool = Field(default=False, description="合计行对此列求和")


Cell = str | bool | int | float | datetime | date | None


class Drilldown(SQLModel):
    measure: str = Field(description="明细的指标键（月报 figures 中的 records）")
    title: str = Field(description="明细名称")
    figures: dict[str, int | float] = Field(description="指标值（本月或累计）：与月报同一计算，由全部记录得出（不只本页）")
    columns: list[DrilldownColumn]
    rows: list[dict[str, Cell]]
    next_cursor: str | None = Field(default=None, description="下一页的游标；为空时已是最后一页")


def col(key: str, label: str, kind: str = "text", total: bool = False) -> DrilldownColumn:
    return DrilldownColumn(key=key, label=label, kind=kind, total=total)


def page_of(table: Drilldown, cursor: str | None, limit: int) -> Drilldown:
    """A page of a drill-down computed whole (the people measures: a month's activities, attendances,
    communities): rows from the cursor's offset on; the figures stay those of every row."""
    data = decode_cursor(cursor) or {}
    offset = data.get("o", 0)
    if not isinstance(offset, int) or offset < 0:
        raise BadRequest("invalid_cursor", "分页游标无效", "Invalid cursor", "cursor")
    limit = max(1, min(limit, MAX_LIMIT))
    rows = table.rows[offset:offset + limit]
    more = offset + limit < len(table.rows)
    return table.model_copy(update={"rows": rows, "next_cursor": encode_cursor({"o": offset + limit}) if more else None})
