"""Keyset (cursor) pagination: stable under inserts, constant cost per page whatever the offset."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import Select
from sqlmodel import Session

from app.kit.errors import BadRequest

T = TypeVar("T")

MAX_LIMIT = 200


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


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
        raise BadRequest("invalid_cursor", "分页游标无效", "Invalid cursor", "cursor") from None


def cursor_id(cursor: str | None) -> int | None:
    data = decode_cursor(cursor)
    if data is None:
        return None
    value = data.get("id")
    if not isinstance(value, int):
        raise BadRequest("invalid_cursor", "分页游标无效", "Invalid cursor", "cursor")
    return value


def page_by_id(session: Session, stmt: Select, id_column: Any, cursor: str | None, limit: int) -> tuple[Sequence[Any], str | None]:
    """Ascending by id: the next page starts after the last id seen."""
    limit = max(1, min(limit, MAX_LIMIT))
    after = cursor_id(cursor)
    if after is not None:
        stmt = stmt.where(id_column > after)
    rows = list(session.exec(stmt.order_by(id_column).limit(limit + 1)).all())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor({"id": rows[-1].id})
    return rows, next_cursor
