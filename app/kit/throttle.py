"""Throttles on guessable secrets, one mechanism for every instance: the counters live in PostgreSQL.

A `Limit` says how many failures a key may have within a window before it is locked out, and for how
long; each further lockout of the same key lasts twice as long, up to `longest`. `refuse_if_locked`
answers 429 with Retry-After before the secret is even checked (a locked key costs one indexed read,
not a password hash), `failed` counts a failure (committed on its own, whatever the request does
next), `succeeded` forgets the key's failures. Keys name what is guessed at and by whom
(`password:account:<name>`, `password:address:<ip>`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Column, DateTime, Integer, String, text
from sqlmodel import Field, Session, SQLModel

from app.core.db import utcnow
from app.kit.errors import DomainError


class Throttle(SQLModel, table=True):
    __tablename__ = "throttle"
    key: str = Field(sa_column=Column(String(160), primary_key=True))
    failures: int = Field(sa_column=Column(Integer, nullable=False, server_default="0"))
    window_until: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    locked_until: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    lockouts: int = Field(sa_column=Column(Integer, nullable=False, server_default="0"))


class TooManyAttempts(DomainError):
    status_code = 429

    def __init__(self, retry_after: int):
        super().__init__("too_many_attempts", f"尝试次数过多，请 {retry_after} 秒后再试",
                         f"Too many attempts: try again in {retry_after} s", retry_after=retry_after)


@dataclass(frozen=True)
class Limit:
    name: str
    attempts: int  # failures allowed within the window
    window: timedelta
    lockout: timedelta  # the first lockout; each next one of the key twice as long
    longest: timedelta = timedelta(hours=1)

    def key(self, who: str) -> str:
        return f"{self.name}:{who}"[:160]


def refuse_if_locked(session: Session, keys: list[str], now: datetime | None = None) -> None:
    """429 (Retry-After) when any of the keys is locked out now."""
    now = now or utcnow()
    until = session.execute(
        text("SELECT max(locked_until) FROM throttle WHERE key = ANY(:keys) AND locked_until > :now"), {"keys": keys, "now": now}
    ).scalar()
    if until is not None:
        raise TooManyAttempts(max(1, int((until - now).total_seconds() + 0.999)))


_FAIL = text("""
INSERT INTO throttle AS t (key, failures, window_until, lockouts)
VALUES (:key, 1, :now + make_interval(secs => :window), 0)
ON CONFLICT (key) DO UPDATE SET
    failures = CASE WHEN t.window_until <= :now THEN 1 ELSE t.failures + 1 END,
    window_until = CASE WHEN t.window_until <= :now THEN :now + make_interval(secs => :window) ELSE t.window_until END
RETURNING failures, lockouts""")
_LOCK = text("""
UPDATE throttle SET failures = 0, lockouts = lockouts + 1,
    locked_until = :now + make_interval(secs => LEAST(:lockout * power(2, lockouts), :longest))
WHERE key = :key""")


def failed(session: Session, limits: list[tuple[Limit, str]], now: datetime | None = None) -> None:
    """Count a failure against each (limit, who), locking out those that reached their limit; committed."""
    now = now or utcnow()
    for limit, who in sorted(limits, key=lambda lw: lw[0].key(lw[1])):  # one order: no deadlock between instances
        key = limit.key(who)
        failures, _ = session.execute(_FAIL, {"key": key, "now": now, "window": limit.window.total_seconds()}).one()
        if failures >= limit.attempts:
            session.execute(_LOCK, {"key": key, "now": now, "lockout": limit.lockout.total_seconds(),
                                    "longest": limit.longest.total_seconds()})
    session.commit()


def succeeded(session: Session, keys: list[str]) -> None:
    """Forget the failures (and the lockout history) of these keys; in the caller's transaction."""
    session.execute(text("DELETE FROM throttle WHERE key = ANY(:keys)"), {"keys": keys})
