"""How a client asks for a representation: the `format` query parameter, never a path extension.

`format` names one of the operation's formats; the default is json where the resource has a JSON
form, else its first (the QR code's svg, the labels' pdf). The iCalendar feed (`/ical/.../recycling.ics`)
is the one path with an extension: a subscription URL for calendar apps, outside the JSON API.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from fastapi import Query
from fastapi.responses import Response

MEDIA_TYPES = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
    "png": "image/png",
    "svg": "image/svg+xml",
}


def formats(name: str, *choices: str) -> Any:
    """The `format` parameter of an operation answering `choices` (the first is its default): an enum
    named `name` in the contract, as a query parameter."""
    unknown = set(choices) - MEDIA_TYPES.keys()
    assert not unknown, unknown
    enum = StrEnum(name, {c: c for c in choices})
    return Annotated[enum, Query(description="、".join(choices) + f"（默认 {choices[0]}）")]


def content(description: str, *choices: str) -> dict[int, dict[str, Any]]:
    """The 200 answer of the non-JSON formats, for an operation's `responses`."""
    return {200: {"content": {MEDIA_TYPES[c].split(";")[0]: {} for c in choices}, "description": description}}


def file_response(body: bytes | str, fmt: str, filename: str | None = None, *, attachment: bool = True) -> Response:
    headers = {}
    if filename:
        headers["Content-Disposition"] = f'{"attachment" if attachment else "inline"}; filename="{filename}"'
    return Response(content=body, media_type=MEDIA_TYPES[str(fmt)], headers=headers)
