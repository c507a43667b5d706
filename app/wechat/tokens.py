"""The access token cache shared through the database (table `wechat_access_token`).

Reading is one primary-key lookup. Refreshing takes the row's write lock first (an UPDATE that
changes nothing: a row lock), so when several
instances find the token stale at once only the first asks WeChat; the others wait and then read
what it stored. Times here are the present (`clock.now()`, not `utcnow()`): the token lives in WeChat's
time, not in the demo generator's replayed past.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from app.core import clock
from app.wechat.models import WechatAccessToken

TOKEN = WechatAccessToken.__table__

# fetch(force) → (token, expires_in seconds)
Fetch = Callable[[bool], tuple[str, int]]


def _now() -> datetime:
    return clock.now()


def renew_margin(margin: int, issued_at: datetime, expires_at: datetime) -> timedelta:
    """Renew `margin` seconds before expiry, but never for a token younger than half its life
    (a short-lived token would otherwise be renewed on every call)."""
    return min(timedelta(seconds=margin), (expires_at - issued_at) / 2)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class DbTokenStore:
    def __init__(self, app_id: str, engine_getter: Callable | None = None):
        self.app_id = app_id
        self._engine_getter = engine_getter

    def _engine(self):
        if self._engine_getter is not None:
            return self._engine_getter()
        from app.core.db import get_engine

        return get_engine()

    def load(self, margin: int) -> tuple[str, datetime] | None:
        """The stored token when it has more than `margin` seconds left."""
        with Session(self._engine()) as s:
            row = s.execute(
                select(TOKEN.c.token, TOKEN.c.expires_at, TOKEN.c.refreshed_at).where(TOKEN.c.app_id == self.app_id)
            ).first()
        if row is None or not row.token:
            return None
        expires_at = _aware(row.expires_at)
        if expires_at - renew_margin(margin, _aware(row.refreshed_at), expires_at) <= _now():
            return None
        return row.token, expires_at

    def refresh(self, fetch: Fetch, margin: int, stale: str | None) -> tuple[str, datetime]:
        """A fresh token. `stale` is a token WeChat just refused (40001/42001): it is replaced even
        if it looks unexpired, and WeChat is asked to force a new one if it hands the same back."""
        with Session(self._engine()) as s:
            locked = s.execute(
                update(TOKEN).where(TOKEN.c.app_id == self.app_id).values(refreshed_at=TOKEN.c.refreshed_at)
            ).rowcount
            if not locked:
                # First token ever for this app: create the row to lock, racing other instances.
                try:
                    s.execute(TOKEN.insert().values(app_id=self.app_id, token="", expires_at=_now(), refreshed_at=_now()))
                    s.commit()
                except IntegrityError:
                    s.rollback()
                s.execute(update(TOKEN).where(TOKEN.c.app_id == self.app_id).values(refreshed_at=TOKEN.c.refreshed_at))
            row = s.execute(
                select(TOKEN.c.token, TOKEN.c.expires_at, TOKEN.c.refreshed_at).where(TOKEN.c.app_id == self.app_id)
            ).one()
            expires_at = _aware(row.expires_at)
            fresh = expires_at - renew_margin(margin, _aware(row.refreshed_at), expires_at) > _now()
            if row.token and row.token != stale and fresh:
                s.rollback()  # another instance refreshed while we waited for the lock
                return row.token, expires_at
            token, expires_in = fetch(False)
            if stale is not None and token == stale:
                token, expires_in = fetch(True)
            now = _now()
            expires_at = now + timedelta(seconds=expires_in)
            s.execute(update(TOKEN).where(TOKEN.c.app_id == self.app_id).values(token=token, expires_at=expires_at, refreshed_at=now))
            s.commit()
            return token, expires_at
