"""Refuses, before any route runs, input that no route should ever receive.

- Bodies over the limit (1 MiB; multipart uploads get their own, larger limit) → 413.
- Integers beyond 64 bits, in a path segment, a query parameter or a JSON body → 422 (they would
  otherwise reach the database and fail there with a 500).
- NUL characters and unpaired surrogates in text, anywhere → 422 (PostgreSQL refuses to store them).
- Content-Type or Content-Length sent twice → 400 (the guard and the framework would read different ones).

Every refusal uses the one error shape. JSON bodies are small (bounded by the limit), so parsing
them once more here costs microseconds; the routes still validate them as usual.
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.kit.errors import error_response

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class Refusal(Exception):
    def __init__(self, status: int, code: str, zh: str, en: str, field: str | None = None):
        super().__init__(en)
        self.status, self.code, self.zh, self.en, self.field = status, code, zh, en, field


def _too_large() -> Refusal:
    return Refusal(413, "payload_too_large", "请求体过大", "Request body too large")


def _out_of_range(field: str | None) -> Refusal:
    return Refusal(422, "number_out_of_range", "数值超出范围", "Number out of range", field)


def _bad_text(field: str | None) -> Refusal:
    return Refusal(422, "invalid_text", "文本含有不允许的字符", "Text contains characters that are not allowed", field)


def _looks_like_int(text: str) -> bool:
    digits = text[1:] if text[:1] in "-+" else text
    return digits.isascii() and digits.isdigit()


def _check_text(value: str, field: str | None, numeric: bool = False) -> None:
    """numeric: the text may be parsed as an integer by the route (path segments, query values)."""
    if "\x00" in value:
        raise _bad_text(field)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _bad_text(field) from None
    if numeric and len(value) >= 19 and _looks_like_int(value):
        if len(value) > 20 or not INT64_MIN <= int(value) <= INT64_MAX:
            raise _out_of_range(field)


def check_url(scope: Scope) -> None:
    """Path segments and query parameters."""
    for segment in scope.get("path", "").split("/"):
        _check_text(segment, None, numeric=True)
    raw = scope.get("query_string", b"")
    if raw:
        if b"%00" in raw:
            raise _bad_text(None)
        for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
            _check_text(value, name, numeric=True)


def _parse_int(text: str) -> int:
    if len(text) > 20:  # also spares int() the work on absurd literals
        raise _out_of_range(None)
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        raise _out_of_range(None)
    return value


MAX_DEPTH = 32
_LONG_DIGITS = re.compile(rb"[0-9]{19}")  # INT64_MAX has 19 digits: an integer outside int64 has at least as many


def _too_deep() -> Refusal:
    return Refusal(422, "json_too_deep", "JSON 嵌套层级过深", "JSON nested too deeply")


def _walk(value: Any, path: str | None, depth: int = 0) -> None:
    if isinstance(value, str):
        _check_text(value, path)
    elif isinstance(value, dict | list):
        if depth >= MAX_DEPTH:
            raise _too_deep()
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for k, v in items:
            if isinstance(k, str):
                _check_text(k, path)
            _walk(v, f"{path}.{k}" if path else str(k), depth + 1)


def check_json(body: bytes) -> None:
    """Encoding, nesting, out-of-range integers and forbidden characters. Malformed JSON is left to the route."""
    if body.startswith(codecs.BOM_UTF8) or b"\x00" in body:
        # JSON travels as UTF-8 without a byte-order mark (RFC 8259 §8.1). The route's parser would
        # still read a BOM, UTF-16 or UTF-32 body (json.loads detects them in bytes), which the checks
        # below, reading UTF-8 text, would take for malformed and let through unchecked.
        raise Refusal(422, "invalid_encoding", "请求体须为不带字节顺序标记（BOM）的 UTF-8 编码",
                      "Request body must be UTF-8 without a byte-order mark")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Refusal(422, "invalid_encoding", "请求体不是有效的 UTF-8 编码", "Request body is not valid UTF-8") from None
    if b"\\u" not in body and body.count(b"{") + body.count(b"[") <= MAX_DEPTH and not _LONG_DIGITS.search(body):
        # Nothing left to find (a bin-side scan): without \u escapes no text holds a NUL or a lone
        # surrogate (raw control characters make the JSON malformed, which the route refuses), with so
        # few brackets nothing nests too deep, and no integer leaves int64 in under 19 digits. Spares
        # the hot path a second parse of its body.
        return
    try:
        parsed = json.loads(text, parse_int=_parse_int)
    except Refusal:
        raise
    except RecursionError:
        raise _too_deep() from None
    except ValueError:
        return
    if b"\\u" in body:
        _walk(parsed, None)
    else:
        # Without \u escapes no text can hold a NUL or a lone surrogate: the parser refuses raw control
        # characters and the strict UTF-8 decoding above refuses encoded surrogates. Only the nesting
        # is left to check, visiting containers alone (a 1,000-scan upload: 0.5 ms instead of 3.5), and
        # only when the body has enough brackets to nest that deep (a bin-side scan has two).
        if body.count(b"{") + body.count(b"[") > MAX_DEPTH:
            _check_depth(parsed)


def _check_depth(value: Any) -> None:
    """`_walk`'s nesting limit, level by level."""
    level = [value] if isinstance(value, (dict, list)) else []
    depth = 0
    while level:
        if depth >= MAX_DEPTH:
            raise _too_deep()
        inner = []
        for container in level:
            for v in container.values() if isinstance(container, dict) else container:
                if isinstance(v, (dict, list)):
                    inner.append(v)
        level = inner
        depth += 1


class InputGuard:
    """Pure ASGI middleware; sits inside RequestContextMiddleware so refusals carry the request id."""

    def __init__(self, app: ASGIApp, max_body_bytes: int = 1024 * 1024, max_upload_bytes: int = 21 * 1024 * 1024):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        content_type, length, seen = "", None, 0
        for k, v in scope.get("headers", ()):
            if k == b"content-type":
                content_type = v.decode("latin-1").lower()
                seen += 1
            elif k == b"content-length":
                length = int(v) if v.isdigit() else None
                seen += 1
        limit = self.max_upload_bytes if content_type.startswith("multipart/") else self.max_body_bytes
        try:
            if seen > 1 and _repeated(scope):
                # This guard would read one, the framework another (the guard the last, FastAPI the first).
                raise Refusal(400, "duplicate_header", "请求头 Content-Type 或 Content-Length 重复",
                              "Content-Type or Content-Length is sent more than once")
            check_url(scope)
            if length is not None and length > limit:
                raise _too_large()
            if scope.get("method") in _BODY_METHODS and "json" in content_type:
                body = await self._read(receive, limit)
                check_json(body)
                receive = replay_body(body, receive)
            else:
                receive = _counting(receive, limit)
        except Refusal as r:
            await error_response(Request(scope), r.status, r.code, r.zh, r.en, r.field)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    @staticmethod
    async def _read(receive: Receive, limit: int) -> bytes:
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _too_large()
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)


def _repeated(scope: Scope) -> bool:
    names = [k for k, _ in scope.get("headers", ()) if k in (b"content-type", b"content-length")]
    return len(names) != len(set(names))


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the already-read body over once, then defers to the original."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _counting(receive: Receive, limit: int) -> Receive:
    """Streams the body through; past the limit, raises 413 inside the app (rendered by the error handler)."""
    size = 0

    async def counted() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                raise StarletteHTTPException(413)
        return message

    return counted
