"""Small SQL helpers for set-based statements that must stay cheap at 1,000 rows."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import BigInteger, String, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session


def among(session: Session, column: Any, values: Collection[Any]) -> ColumnElement[bool]:
    """`column IN values`; on PostgreSQL `column = ANY(:array)`: one parameter, whatever the count,
    so the statement text (and its parsing) does not grow with the batch."""
    if session.get_bind().dialect.name == "postgresql":
        kind = BigInteger if isinstance(column.type, BigInteger) else String
        return column == any_(bindparam(None, list(values), type_=ARRAY(kind)))
    return column.in_(list(values))
