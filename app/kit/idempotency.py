"""One retry convention for every write a phone or a browser may send twice: the `Idempotency-Key` header.

Writes that carry their own key in the body (`client_id` on field acts, `idempotency_key` on cheques)
or read the header themselves (the roster import) keep their own, finer rules. Every other write
(POST, PUT, PATCH, DELETE under /api/v1) sent with an `Idempotency-Key` is done once per signed-in
user and key: the first request is carried out and its answer kept (24 hours, `KEEP`); the same key
sent again with the same method, path and body is answered with that answer (header
`Idempotent-Replayed: true`), and nothing is done again; with another body it is refused
(422 `idempotency_key_reused`); while the first is still running, 409 `request_in_progress` with
Retry-After. An answer of 5xx is not kept: the retry runs again. A request without the header is
untouched. The database referees two requests with one key at the same instant (a unique key).
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta

from sqlalchemy import Column, DateTime, Integer, LargeBinary, String, UniqueConstraint, delete, text
from sqlmodel import Field, Session, SQLModel, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.db import get_engine, utcnow
from app.kit.errors import error_response
from app.kit.guard import replay_body

HEADER = "Idempotency-Key"
KEEP = timedelta(hours=24)
KEY_PATTERN = re.compile(r"[\x21-\x7e]{8,80}")  # printable ASCII, as clients make UUIDs or ULIDs
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_KEPT_BYTES = 256 * 1024  # an answer larger than this is not kept (no write here answers one)


class IdempotentRequest(SQLModel, table=True):
    __tablename__ = "idempotent_request"
    __table_args__ = (UniqueConstraint("user_id", "key", name="uq_idempotent_request_user_key"),)
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(sa_column=Column(Integer, nullable=False))
    key: str = Field(sa_column=Column(String(80), nullable=False))
    fingerprint: str = Field(sa_column=Column(String(64), nullable=False))
    status_code: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    content_type: str | None = Field(default=None, sa_column=Column(String(100), nullable=True))
    body: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, index=True))


def takes_own_key(route) -> bool:
    """Whether a route has a retry key of its own (body `client_id`/`idempotency_key`, or the header)."""
    body = route.body_field.field_info.annotation if route.body_field is not None else None
    fields = getattr(body, "model_fields", {})
    if "client_id" in fields or "idempotency_key" in fields:
        return True
    return any(p.alias == HEADER for p in _header_params(route.dependant))


def _header_params(dependant):
    yield from dependant.header_params
    for dependency in dependant.dependencies:
        yield from _header_params(dependency)


def _claim(user_id: int, key: str, fingerprint: str) -> IdempotentRequest | None:
    """None when this request is the first with the key (a row now marks it running); else the row."""
    with Session(get_engine()) as session:
        inserted = session.execute(text(
            "INSERT INTO idempotent_request (user_id, key, fingerprint, created_at) VALUES (:u, :k, :f, :t) "
            "ON CONFLICT (user_id, key) DO NOTHING RETURNING id"
        ), {"u": user_id, "k": key, "f": fingerprint, "t": utcnow()}).first()
        session.commit()
        if inserted is not None:
            return None
        return session.exec(select(IdempotentRequest).where(IdempotentRequest.user_id == user_id, IdempotentRequest.key == key)).first()


def _finish(user_id: int, key: str, status: int, content_type: str | None, body: bytes | None) -> None:
    with Session(get_engine()) as session:
        table = IdempotentRequest.__table__
        where = (table.c.user_id == user_id) & (table.c.key == key)
        if status >= 500 or body is None:
            session.execute(delete(table).where(where))
        else:
            session.execute(table.update().where(where).values(status_code=status, content_type=content_type, body=body))
        session.commit()


def purge(session: Session, now: datetime | None = None) -> int:
    """Forget the answers kept longer than KEEP (a job: app.jobs.registry)."""
    result = session.execute(delete(IdempotentRequest.__table__).where(IdempotentRequest.created_at < (now or utcnow()) - KEEP))
    session.commit()
    return result.rowcount or 0


class IdempotencyKeys:
    """ASGI middleware: the convention above, for the routes without a key of their own."""

    def __init__(self, app: ASGIApp):
        self.app = app
        self._own_key: list | None = None

    def _routes_with_own_key(self, scope: Scope) -> list:
        if self._own_key is None:
            from app.kit.contract import _api_routes

            self._own_key = [(r.methods, r.path_regex) for r in _api_routes(scope["app"]) if takes_own_key(r)]
        return self._own_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITES or not scope["path"].startswith("/api/v1/"):
            await self.app(scope, receive, send)
            return
        raw_key = next((value for name, value in scope["headers"] if name == b"idempotency-key"), None)
        if raw_key is None:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if any(m and scope["method"] in m and rx.match(scope["path"]) for m, rx in self._routes_with_own_key(scope)):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        key = raw_key.decode("latin-1")
        if not KEY_PATTERN.fullmatch(key):
            await error_response(request, 422, "invalid_idempotency_key", "Idempotency-Key 须为 8–80 个可见 ASCII 字符",
                                 "Idempotency-Key must be 8 to 80 printable ASCII characters", HEADER)(scope, receive, send)
            return
        user_id = await _user(headers)
        if user_id is None:  # not signed in: the route answers 401 as it would
            await self.app(scope, receive, send)
            return
        body = await _read(receive)
        fingerprint = hashlib.sha256(b"%s %s\n%s" % (scope["method"].encode(), scope["path"].encode(), body)).hexdigest()
        prior = await run_in_threadpool(_claim, user_id, key, fingerprint)
        if prior is not None:
            await _answer_retry(request, prior, fingerprint, scope, receive, send)
            return
        kept: dict = {"status": 500, "type": None, "body": bytearray(), "whole": True}

        async def keep(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept["status"] = message["status"]
                kept["type"] = next((v.decode("latin-1") for k, v in message.get("headers", []) if k == b"content-type"), None)
            elif message["type"] == "http.response.body":
                kept["body"] += message.get("body", b"")
                kept["whole"] = kept["whole"] and len(kept["body"]) <= MAX_KEPT_BYTES
            await send(message)

        try:
            await self.app(scope, replay_body(body, receive), keep)
        finally:
            whole = bytes(kept["body"]) if kept["whole"] else None
            await run_in_threadpool(_finish, user_id, key, kept["status"], kept["type"], whole)


async def _user(headers: dict[bytes, bytes]) -> int | None:
    from app.identity.auth import principal_from_token

    scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    try:
        return principal_from_token(token).user_id
    except Exception:  # an invalid or expired token: the route answers it
        return None


async def _read(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _answer_retry(request: Request, prior: IdempotentRequest, fingerprint: str, scope: Scope, receive: Receive, send: Send) -> None:
    if prior.fingerprint != fingerprint:
        response = error_response(request, 422, "idempotency_key_reused", "该 Idempotency-Key 已用于另一请求",
                                  "This Idempotency-Key was used for another request", HEADER)
    elif prior.status_code is None:
        response = error_response(request, 409, "request_in_progress", "同一请求正在处理，请稍后再试",
                                  "The same request is still being processed: try again shortly", retry_after=1)
    else:
        from starlette.responses import Response

        response = Response(prior.body or b"", status_code=prior.status_code, media_type=prior.content_type,
                            headers={"Idempotent-Replayed": "true"})
    await response(scope, receive, send)
