"""Small SQL helpers for set-based statements that must stay cheap at 1,000 rows."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import JSON, BigInteger, String, Table, any_, bindparam, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

_PG = postgresql.dialect()


def is_pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def among(session: Session, column: Any, values: Collection[Any]) -> ColumnElement[bool]:
    """`column IN values`; on PostgreSQL `column = ANY(:array)`: one parameter, whatever the count,
    so the statement text (and its parsing) does not grow with the batch."""
    if is_pg(session):
        kind = BigInteger if isinstance(column.type, BigInteger) else String
        return column == any_(bindparam(None, list(values), type_=ARRAY(kind)))
    return column.in_(list(values))


@lru_cache(maxsize=64)
def _unnest_sql(table: Table, columns: tuple[str, ...], tail: str) -> Any:
    casts = []
    for name in columns:
        col_type = table.c[name].type
        sql_type = "json" if isinstance(col_type, JSON) else col_type.compile(dialect=_PG)
        casts.append(f"CAST(:{name} AS {sql_type}[])")
    return text(f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest({', '.join(casts)}) {tail}")


def unnest_insert(session: Session, table: Table, rows: Sequence[dict[str, Any]], tail: str = "") -> list[Any]:
    """PostgreSQL only: INSERT … SELECT FROM unnest(one array per column) [tail], e.g.
    tail="ON CONFLICT DO NOTHING RETURNING id". The statement text is the same for 1 or 10,000 rows,
    so nothing is compiled or parsed per row (a multi-VALUES insert costs ~0.3 ms per row in Python).
    Rows are inserted in the order given. JSON values must already be serialised strings."""
    columns = tuple(rows[0])
    stmt = _unnest_sql(table, columns, tail)
    params = {c: [r[c] for r in rows] for c in columns}
    result = session.execute(stmt, params)
    return result.all() if "RETURNING" in tail.upper() else []
