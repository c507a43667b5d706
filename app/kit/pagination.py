"""Keyset (cursor) pagination: stable under inserts, constant cost per page whatever the offset.

Every list the API answers is a `Page` (`{items, next_cursor}`), read with `cursor` (the previous
page's `next_cursor`) and `limit` (`DEFAULT_LIMIT` unless asked, at most `MAX_LIMIT`): routes declare
them as `cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT`. A short fixed list (a recycling day's
totals by category, the reminder kinds) is a single `Page` with `next_cursor` null.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from datetime import date, datetime, time
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy import Select, tuple_, types
from sqlmodel import Session

from app.kit.errors import BadRequest

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

Cursor = Annotated[str | None, Query(max_length=200, description="上一页返回的 next_cursor")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"每页条数（默认 {DEFAULT_LIMIT}，至多 {MAX_LIMIT}）")]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def _invalid() -> BadRequest:
    return BadRequest("invalid_cursor", "分页游标无效", "Invalid cursor", "cursor")


def encode_cursor(values: dict[str, Any]) -> str:
    raw = json.dumps(values, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(value, dict):
            raise ValueError
        return value
    except (ValueError, UnicodeDecodeError):
        raise _invalid() from None


def cursor_id(cursor: str | None) -> int | None:
    data = decode_cursor(cursor)
    if data is None:
        return None
    value = data.get("id")
    if not isinstance(value, int) or isinstance(value, bool) or not -(2**63) < value < 2**63:
        raise _invalid()
    return value


def page_by_id(session: Session, stmt: Select, id_column: Any, cursor: str | None, limit: int) -> tuple[Sequence[Any], str | None]:
    """Ascending by id: the next page starts after the last id seen."""
    return page_by_keys(session, stmt, [id_column], cursor, limit)


def page_by_keys(
    session: Session, stmt: Select, columns: Sequence[Any], cursor: str | None, limit: int, *,
    descending: bool = False, key: Callable[[Any], Sequence[Any]] | None = None,
) -> tuple[Sequence[Any], str | None]:
    """Ordered by `columns` (all ascending, or all descending), the last one unique: the next page
    starts after the last row's values. `key` reads them from a row (default: the columns' names)."""
    limit = max(1, min(limit, MAX_LIMIT))
    after = _cursor_values(cursor, columns)
    if after is not None:
        bound, value = (columns[0], after[0]) if len(columns) == 1 else (tuple_(*columns), tuple_(*after))
        stmt = stmt.where(bound < value if descending else bound > value)
    order = [c.desc() for c in columns] if descending else list(columns)
    rows = list(session.exec(stmt.order_by(*order).limit(limit + 1)).all())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = key(rows[-1]) if key else [getattr(rows[-1], c.key) for c in columns]
        next_cursor = _encode_values(columns, last)
    return rows, next_cursor


def page_in_memory(items: Sequence[T], key: Callable[[T], Any], cursor: str | None, limit: int) -> tuple[list[T], str | None]:
    """A list already computed in full (a handful of rows), sorted by a unique string `key`."""
    limit = max(1, min(limit, MAX_LIMIT))
    data = decode_cursor(cursor)
    after = None if data is None else data.get("k")
    if data is not None and not isinstance(after, str):
        raise _invalid()
    rows = sorted(items, key=key)
    if after is not None:
        rows = [r for r in rows if key(r) > after]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor({"k": key(rows[-1])}) if more else None


def _encode_values(columns: Sequence[Any], values: Sequence[Any]) -> str:
    if len(columns) == 1 and columns[0].key == "id":
        return encode_cursor({"id": values[0]})
    return encode_cursor({"k": [TypeAdapter(Any).dump_python(v, mode="json") for v in values]})


def _python_type(sql_type: Any) -> type:
    """What a key column holds, to read a cursor's value back (a forged one is refused here, not by
    PostgreSQL)."""
    while isinstance(sql_type, types.TypeDecorator):  # SQLModel's AutoString, UTCDateTime
        sql_type = sql_type.impl_instance
    for sql, py in ((types.DateTime, datetime), (types.Date, date), (types.Time, time), (types.Integer, int), (types.String, str)):
        if isinstance(sql_type, sql):
            return py
    raise TypeError(f"no cursor for a {sql_type!r} key")


def _cursor_values(cursor: str | None, columns: Sequence[Any]) -> list[Any] | None:
    data = decode_cursor(cursor)
    if data is None:
        return None
    if len(columns) == 1 and columns[0].key == "id":
        return [cursor_id(cursor)]
    raw = data.get("k")
    if not isinstance(raw, list) or len(raw) != len(columns):
        raise _invalid()
    values = []
    for column, value in zip(columns, raw, strict=True):
        kind = _python_type(column.type)
        try:
            parsed = TypeAdapter(kind).validate_python(value, strict=kind is int)
        except ValidationError:
            raise _invalid() from None
        if (kind is int and not -(2**63) < parsed < 2**63 or kind is str and "\x00" in parsed
                or kind is datetime and parsed.tzinfo is None or kind is time and parsed.tzinfo is not None):
            raise _invalid()
        values.append(parsed)
    return values
