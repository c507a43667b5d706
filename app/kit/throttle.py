"""Throttles on guessable secrets, one mechanism for every instance: the counters live in PostgreSQL.

A `Limit` says how many failures a key may have within a window before it is locked out, and for how
long; each further lockout of the same key lasts twice as long, up to `longest`, and a key left quiet
for `longest` after its window and its last lockout starts over (an honest mistake once a month never
grows into a day's lockout). `refuse_if_locked` answers 429 with Retry-After before the secret is even
checked (a locked key costs one indexed read, not a password hash), `failed` counts a failure
(committed on its own, whatever the request does next), `succeeded` forgets the key's failures.
`queue` makes checks of the same keys wait for each other, for secrets where a few parallel guesses
matter (a PIN): each is counted before the next is checked. Keys name what is guessed at and by whom
(`password:account:<name>`, `password:address:<ip>`, `consent:household:<id>`, `consent:staff:<user id>`).
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
    default_attempts: int  # failures allowed within the window, unless THROTTLE_ATTEMPTS says otherwise
    window: timedelta
    lockout: timedelta  # the first lockout; each next one of the key twice as long
    longest: timedelta = timedelta(hours=1)

    def key(self, who: str) -> str:
        return f"{self.name}:{who}"[:160]

    @property
    def attempts(self) -> int:
        """The failures allowed: THROTTLE_ATTEMPTS (JSON, by limit name) overrides the default."""
        from app.core.config import get_settings

        return get_settings().throttle_attempts.get(self.name, self.default_attempts)


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
    window_until = CASE WHEN t.window_until <= :now THEN :now + make_interval(secs => :window) ELSE t.window_until END,
    lockouts = CASE WHEN t.window_until + make_interval(secs => :longest) <= :now
                     AND coalesce(t.locked_until, t.window_until) + make_interval(secs => :longest) <= :now
                    THEN 0 ELSE t.lockouts END
RETURNING failures, lockouts""")
_LOCK = text("""
UPDATE throttle SET failures = 0, lockouts = lockouts + 1,
    locked_until = :now + make_interval(secs => LEAST(:lockout * power(2, lockouts), :longest))
WHERE key = :key""")


def failed(session: Session, limits: list[tuple[Limit, str]], now: datetime | None = None) -> dict[str, int]:
    """Count a failure against each (limit, who), locking out those that reached their limit; committed.
    Answers each key's failures left before its lockout (0: locked out now)."""
    now = now or utcnow()
    left: dict[str, int] = {}
    for limit, who in sorted(limits, key=lambda lw: lw[0].key(lw[1])):  # one order: no deadlock between instances
        key = limit.key(who)
        failures, _ = session.execute(_FAIL, {"key": key, "now": now, "window": limit.window.total_seconds(),
                                              "longest": limit.longest.total_seconds()}).one()
        if failures >= limit.attempts:
            session.execute(_LOCK, {"key": key, "now": now, "lockout": limit.lockout.total_seconds(),
                                    "longest": limit.longest.total_seconds()})
        left[key] = max(0, limit.attempts - failures)
    session.commit()
    return left


def queue(session: Session, keys: list[str], now: datetime | None = None) -> None:
    """Make checks of these keys take turns until the caller's transaction ends (`failed` commits):
    their rows, made if missing, are locked in one order. Parallel guesses then cannot all pass
    `refuse_if_locked` before the first of them is counted."""
    now = now or utcnow()
    keys = sorted(set(keys))
    session.execute(text(
        "INSERT INTO throttle (key, failures, window_until, lockouts) SELECT k, 0, :now, 0 FROM unnest(CAST(:keys AS varchar[])) AS k "
        "ORDER BY k ON CONFLICT (key) DO NOTHING"
    ), {"keys": keys, "now": now})
    session.execute(text("SELECT key FROM throttle WHERE key = ANY(:keys) ORDER BY key FOR UPDATE"), {"keys": keys})


def succeeded(session: Session, keys: list[str]) -> None:
    """Forget the failures (and the lockout history) of these keys; in the caller's transaction."""
    session.execute(text("DELETE FROM throttle WHERE key = ANY(:keys)"), {"keys": keys})
