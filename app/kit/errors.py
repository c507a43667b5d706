"""Typed domain errors and the one JSON error shape every failure is answered with.

Shape: {"error": {"code": "...", "message": "...", "field": "..." | null, "request_id": "..."}}.
Messages are Chinese by default and English when the client sends Accept-Language: en.
"""

from __future__ import annotations

from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException


class DomainError(Exception):
    """A failure a client can act on. Subclasses fix the HTTP status."""

    status_code = 400

    def __init__(self, code: str, zh: str, en: str, field: str | None = None, **extra: Any):
        super().__init__(en)
        self.code = code
        self.zh = zh
        self.en = en
        self.field = field
        self.extra = extra


class BadRequest(DomainError):
    status_code = 400


class Unauthorized(DomainError):
    status_code = 401


class Forbidden(DomainError):
    status_code = 403


class NotFound(DomainError):
    status_code = 404


class Conflict(DomainError):
    status_code = 409


class Unprocessable(DomainError):
    status_code = 422


class UpstreamError(DomainError):
    status_code = 502


class Unavailable(DomainError):
    status_code = 503


def not_found(what_zh: str, what_en: str, field: str | None = None) -> NotFound:
    return NotFound("not_found", f"{what_zh}不存在", f"{what_en} not found", field)


class ErrorBody(BaseModel):
    code: str = Field(description="What went wrong, for the program: one of the codes listed (each operation's own in its `x-error-codes`)")
    message: str = Field(description="What went wrong, for the person: Chinese, or English with `Accept-Language: en`")
    field: str | None = Field(None, description="The input at fault (`items.3.payload`), when one is")
    request_id: str | None = Field(None, description="The request's id, also in the X-Request-ID header: quote it when reporting a problem")
    details: list[dict[str, Any]] | None = Field(None, description="validation_error: every field at fault (`field`, `type`), up to 20")
    retry_after: int | None = Field(None, description="429 and 503: seconds to wait before trying again (also the Retry-After header)")
    wechat_errcode: int | None = Field(None, description="502 from WeChat: WeChat's own errcode")


class ErrorResponse(BaseModel):
    error: ErrorBody


def wants_english(request: Request) -> bool:
    lang = request.headers.get("accept-language", "")
    return lang.lower().lstrip().startswith("en")


def error_response(
    request: Request, status: int, code: str, zh: str, en: str, field: str | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {
        "code": code,
        "message": en if wants_english(request) else zh,
        "field": field,
        "request_id": getattr(request.state, "request_id", None),
    }
    body.update(extra)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if "retry_after" in extra:  # 429 and 503: when to try again
        headers = {"Retry-After": str(extra["retry_after"])}
    return JSONResponse({"error": body}, status_code=status, headers=headers)


_HTTP_MESSAGES = {
    400: ("bad_request", "请求有误", "Bad request"),
    401: ("unauthenticated", "请先登录", "Sign-in required"),
    403: ("forbidden", "无权执行此操作", "You are not allowed to do this"),
    404: ("not_found", "资源不存在", "Not found"),
    405: ("method_not_allowed", "不支持该请求方法", "Method not allowed"),
    413: ("payload_too_large", "请求体过大", "Request body too large"),
    415: ("unsupported_media_type", "不支持的内容类型", "Unsupported media type"),
    429: ("rate_limited", "请求过于频繁，请稍后再试", "Too many requests, try again later"),
}

HTTP_CODES = tuple(sorted({code for code, _, _ in _HTTP_MESSAGES.values()} | {"http_error"}))

_VALIDATION_ZH = {
    "missing": "必填项缺失",
    "string_too_long": "内容过长",
    "string_too_short": "内容过短",
    "greater_than_equal": "数值过小",
    "greater_than": "数值过小",
    "less_than_equal": "数值过大",
    "less_than": "数值过大",
    "int_parsing": "应为整数",
    "int_type": "应为整数",
    "float_parsing": "应为数字",
    "string_type": "应为文本",
    "json_invalid": "JSON 格式错误",
    "enum": "取值不在允许范围内",
    "literal_error": "取值不在允许范围内",
    "datetime_parsing": "日期时间格式错误",
    "datetime_from_date_parsing": "日期时间格式错误",
    "date_parsing": "日期格式错误",
    "bool_parsing": "应为布尔值",
    "list_type": "应为列表",
    "dict_type": "应为对象",
    "model_attributes_type": "应为对象",
    "too_long": "条目过多",
    "too_short": "条目过少",
    "string_pattern_mismatch": "格式不正确",
    "value_error": "取值无效",
    "int_from_float": "应为整数",
    "date_from_datetime_inexact": "日期格式错误",
    "uuid_parsing": "格式不正确",
    "time_parsing": "时间格式错误",
    "url_parsing": "链接格式错误",
    "finite_number": "应为有限数字",
}


def _field_of(loc: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    return ".".join(parts) or None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError):
        return error_response(request, exc.status_code, exc.code, exc.zh, exc.en, exc.field, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        first = errors[0] if errors else {}
        kind = first.get("type", "value_error")
        field = _field_of(tuple(first.get("loc", ())))
        zh_reason = _VALIDATION_ZH.get(kind, "取值无效")
        en_reason = str(first.get("msg", "Invalid value"))
        details = [
            {"field": _field_of(tuple(e.get("loc", ()))), "type": e.get("type")} for e in errors[:20]
        ]
        return error_response(
            request,
            422,
            "validation_error",
            f"{field}：{zh_reason}" if field else zh_reason,
            f"{field}: {en_reason}" if field else en_reason,
            field,
            details=details,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        code, zh, en = _HTTP_MESSAGES.get(exc.status_code, ("http_error", "请求失败", "Request failed"))
        if isinstance(exc.detail, str) and exc.status_code not in _HTTP_MESSAGES:
            en = exc.detail
        return error_response(request, exc.status_code, code, zh, en)

    # Safety nets behind app.kit.guard: a value the database cannot hold is the client's error, not ours.
    @app.exception_handler(OverflowError)
    async def _overflow(request: Request, exc: OverflowError):
        return error_response(request, 422, "number_out_of_range", "数值超出范围", "Number out of range")

    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError):
        import logging

        logging.getLogger("app.errors").warning(
            "value refused by the database: %s", type(exc.orig).__name__,
            extra={"request_id": getattr(request.state, "request_id", None)},
        )
        return error_response(request, 422, "invalid_value", "取值超出允许范围", "Value out of the allowed range")

    # A database that is busy (no pooled connection free in time) or unreachable: 503 with Retry-After
    # (app.core.db.unavailable). Any other database error goes on to the 500 below.
    async def _database(request: Request, exc: Exception):
        import logging

        from app.core.db import unavailable

        error = unavailable(exc)
        if error is None:
            raise exc
        logging.getLogger("app.errors").warning(
            "database %s: %s", "busy" if error.code == "busy" else "unavailable", type(exc).__name__,
            extra={"request_id": getattr(request.state, "request_id", None)},
        )
        return error_response(request, error.status_code, error.code, error.zh, error.en, **error.extra)

    for kind in (SQLAlchemyTimeout, OperationalError, InterfaceError, psycopg.OperationalError):
        app.add_exception_handler(kind, _database)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        import logging

        logging.getLogger("app.errors").exception(
            "unhandled error", extra={"request_id": getattr(request.state, "request_id", None)}
        )
        return error_response(request, 500, "internal_error", "服务器内部错误", "Internal server error")


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for the error statuses a route can answer with."""
    descriptions = {
        400: "Bad request",
        401: "Not signed in or token invalid",
        403: "Not allowed for this role or community",
        404: "Not found",
        409: "Conflict with the current state",
        422: "Validation error",
        502: "Upstream (WeChat) error",
        503: "Service unavailable",
    }
    return {s: {"model": ErrorResponse, "description": descriptions.get(s, "Error")} for s in statuses}
