"""Report workflows: check who asks, write the audit row, hand back a stream that reads on its own session."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from urllib.parse import quote

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.audit import service as audit
from app.core.db import get_reports_engine, utcnow
from app.identity.auth import Principal
from app.kit.sql import stream_tuples
from app.reports import rollup, sheets
from app.reports.measures import people, points, programme
from app.reports.measures.detail import Drilldown, page_of
from app.reports.scope import SCOPE_ZH, Period, Scope, ScopeKind, month_period, period_of, resolve
from app.reports.totals import Rollup, report_query


class ExportFormat(StrEnum):
    csv = "csv"
    xlsx = "xlsx"


MEDIA_TYPES = {
    ExportFormat.csv: "text/csv; charset=utf-8",
    ExportFormat.xlsx: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


# Set in the export's own transaction on PostgreSQL (bench/bench_export.py gives PostgreSQL's COPY of the
# same statement the same settings). work_mem: the aggregate's sorts and the subtotals' work table stay in
# memory (a few tens of MB for a street). jit off: the statement's cost is far above the JIT thresholds, so
# PostgreSQL compiled its ~170 expressions with inlining and optimisation first — 1.4–2.9 s on the
# 61,928-household street for a live statement whose execution is 2–4 s; its time goes to index lookups
# and hashing, which JIT does not speed up (read from the roll-up, the whole statement takes ~1.4 s).
PG_EXPORT_SETTINGS = ("SET LOCAL work_mem = '64MB'", "SET LOCAL jit = off")


@dataclass
class Export:
    filename: str
    media_type: str
    body: Iterator[bytes]

    @property
    def headers(self) -> dict[str, str]:
        ascii_name = self.filename.encode("ascii", "replace").decode().replace("?", "_")
        return {"Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(self.filename)}"}


def begin_export(session: Session, scope: Scope, period: Period) -> Rollup | None:
    """Open the export's transaction; the roll-up it may read (reports.rollup), read in its snapshot.

    REPEATABLE READ, so that the roll-up's watermark, its rows and the journal after it are
    read at one moment (a refresh committing between them would count entries twice), and the settings."""
    session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
    for setting in PG_EXPORT_SETTINGS:
        session.execute(text(setting))
    return rollup.current(session, scope.tz.key, period)


def totals_body(engine: Engine, scope: Scope, period: Period, fmt: ExportFormat) -> Iterator[bytes]:
    """The export's bytes, read with a session of its own (the request's session is gone once streaming starts)."""
    lo, hi = period.bounds(scope.tz)
    with Session(engine) as session:
        rolled = begin_export(session, scope, period)
        if fmt == ExportFormat.csv:
            yield from sheets.csv_stream(session, report_query(scope.community_ids, lo, hi, as_csv=True, rollup=rolled))
        else:
            yield from sheets.xlsx_stream(
                stream_tuples(session, report_query(scope.community_ids, lo, hi, rollup=rolled)),
                title=f"{SCOPE_ZH[scope.kind]}：{scope.name}",
                period=period.label,
                generated=utcnow().astimezone(scope.tz).strftime("%Y-%m-%d %H:%M"),
            )


def export_totals(
    session: Session,
    principal: Principal | None,
    kind: ScopeKind,
    scope_id: int,
    fmt: ExportFormat,
    *,
    month: str | None = None,
    start: date | None = None,
    end: date | None = None,
    request_id: str | None = None,
) -> Export:
    """Point totals per household for a scope and period. The audit row commits before any byte is sent."""
    scope = resolve(session, kind, scope_id)  # principal None: the operator's CLI, still audited
    period = period_of(month, start, end, scope.tz)
    audit.record(
        session,
        actor_user_id=principal.user_id if principal else None,
        action="reports.export_totals",
        object_type=kind.value,
        object_id=scope_id,
        community_id=scope.audit_community_id,
        request_id=request_id,
        detail={"format": fmt.value, "start": period.start.isoformat(), "end": period.end.isoformat(),
                "communities": len(scope.community_ids)},
    )
    session.commit()
    filename = f"积分汇总_{scope.name}_{period.start.isoformat()}_{period.end.isoformat()}.{fmt.value}"
    return Export(filename, MEDIA_TYPES[fmt], totals_body(get_reports_engine(), scope, period, fmt))



# --- the monthly report (月报) -------------------------------------------------------------------

class MonthlyFormat(StrEnum):
    json = "json"
    xlsx = "xlsx"
    html = "html"


_templates = None


def _render_monthly(report) -> str:
    global _templates
    from pathlib import Path

    from jinja2 import Environment, FileSystemLoader, select_autoescape

    from app.reports.monthly import month_label

    if _templates is None:
        _templates = Environment(loader=FileSystemLoader(Path(__file__).resolve().parents[1] / "templates"),
                                 autoescape=select_autoescape())
    return _templates.get_template("monthly_report.html").render(
        r=report, month=month_label(report.month), scope=SCOPE_ZH[ScopeKind(report.scope)],
        main=report.figures, generated=report.generated_at.strftime("%Y-%m-%d %H:%M UTC"),
    )


def monthly_report(session: Session, principal: Principal | None, kind: ScopeKind, scope_id: int, month: str | None,
                   fmt: MonthlyFormat, request_id: str | None = None):
    """The report as a model (json), XLSX bytes or a printable page; audited like every export."""
    import os
    import tempfile

    from app.reports import monthly

    if month is None:
        month = utcnow().astimezone(resolve(session, kind, scope_id).tz).strftime("%Y-%m")
    report = monthly.build(session, kind, scope_id, month)
    audit.record(session, actor_user_id=principal.user_id if principal else None, action="reports.monthly",
                 object_type=kind.value, object_id=scope_id, request_id=request_id,
                 detail={"format": fmt.value, "month": month})
    session.commit()
    if fmt == MonthlyFormat.json:
        return report
    if fmt == MonthlyFormat.html:
        return _render_monthly(report)
    scope = resolve(session, kind, scope_id)
    period = month_period(month)
    lo, hi = period.bounds(scope.tz)
    details = [*people.drilldowns(session, scope, period),
               *(points.drilldown(session, m, scope.community_ids, lo, hi, scope.tz, None, None) for m in points.POINTS_RECORDS),
               *(programme.drilldown(session, m, scope.community_ids, lo, hi, scope.tz, period.start, period.end)
                 for m in programme.PROGRAMME_RECORDS)]
    fd, path = tempfile.mkstemp(suffix=".xlsx")
    os.close(fd)
    try:
        monthly.write_xlsx(report, path, details, monthly.detail_sheets(session, report))
        with open(path, "rb") as f:
            return f.read()  # a few sheets; the largest, the people 明细, one row per named attendance
    finally:
        os.unlink(path)


def monthly_drilldown(session: Session, principal: Principal | None, kind: ScopeKind, scope_id: int, month: str | None,
                      measure: str, *, cumulative: bool, cursor: str | None, limit: int,
                      request_id: str | None = None) -> Drilldown:
    """A page of the records behind one figure of the monthly report (明细), this month or cumulative to its
    end, computed as the report computes it, with the figure they give. Door plates, never phones; the
    first page is audited like the report."""
    from app.reports.measures import waste

    scope = resolve(session, kind, scope_id)
    month = month or utcnow().astimezone(scope.tz).strftime("%Y-%m")
    period = month_period(month)
    if cursor is None:
        audit.record(session, actor_user_id=principal.user_id if principal else None, action="reports.monthly_records",
                     object_type=kind.value, object_id=scope_id, request_id=request_id,
                     detail={"month": month, "measure": measure, "cumulative": cumulative})
        session.commit()
    lo, hi = period.bounds(scope.tz)
    if measure in programme.PROGRAMME_RECORDS:
        table = programme.drilldown(session, measure, scope.community_ids, None if cumulative else lo, hi, scope.tz,
                                    None if cumulative else period.start, period.end)
        return page_of(table, cursor, limit)
    if measure in points.POINTS_RECORDS:
        return points.drilldown(session, measure, scope.community_ids, None if cumulative else lo, hi, scope.tz, cursor, limit)
    if measure in waste.WasteMeasure.__members__:
        return waste.drilldown(session, waste.WasteMeasure(measure), scope.community_ids, None if cumulative else lo, hi, scope.tz,
                               cursor, limit)
    return page_of(people.drilldown(session, scope, period, people.Measure(measure), cumulative=cumulative), cursor, limit)
