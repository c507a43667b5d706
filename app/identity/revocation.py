"""Access tokens that end before they expire: logout and role changes revoke a user's tokens.

Each user has a token version (`app_user.token_version`); an access token carries the version it was
issued at (claim `v`), and revoking raises the version and stamps `tokens_revoked_at`. A token older
than its user's version is refused (401 `token_revoked`); the client refreshes or signs in again and
gets a token with the grants the user holds now.

Checking costs no query per request: each process keeps the versions of the users whose tokens were
revoked within an access token's lifetime (an older revocation only concerns tokens that have expired
anyway), a short list read in one indexed statement every second or so (`REVOKED`). So a revocation
takes effect in every process within `REVOKED.max_age` (2 s), and at once in the process that made it.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select, update
from sqlmodel import Session

from app.core.config import get_settings
from app.identity.models import User
from app.kit import cache
from app.kit.errors import Unauthorized

_RECENT = """SELECT id, token_version FROM app_user
WHERE tokens_revoked_at > now() - make_interval(mins => %s)"""


async def _recently_revoked(conn) -> dict[int, int]:
    # A minute beyond a token's lifetime: the app's clock (a token's expiry) and the database's
    # (the revocation's stamp) may differ a little.
    cur = await conn.execute(_RECENT, (get_settings().access_token_minutes + 1,))
    return dict(await cur.fetchall())


# User id → token version, of the users revoked lately. Re-read in the background once a second old,
# never used once two seconds old.
REVOKED: cache.Snapshot[dict[int, int]] = cache.Snapshot(
    "revoked access tokens", _recently_revoked, max_age=2.0, refresh_after=1.0
)


async def refuse_if_revoked(user_id: int, version: int) -> None:
    """401 `token_revoked` when the user's tokens were revoked after this one was issued."""
    if (await REVOKED.get()).get(user_id, 0) > version:
        raise Unauthorized(
            "token_revoked", "登录已失效，请重新登录", "Access token revoked: refresh it or sign in again"
        )


def revoke_tokens(session: Session, user_ids: Iterable[int]) -> None:
    """End the users' access tokens, with the caller's transaction: refused in this process as soon
    as it commits, in the others within seconds. Their refresh tokens are left as they are."""
    ids = sorted(set(user_ids))
    if not ids:
        return
    session.execute(
        update(User).where(User.id.in_(ids)).values(token_version=User.token_version + 1, tokens_revoked_at=func.now())
    )
    REVOKED.invalidate_after_commit(session)


def token_version(session: Session, user_id: int) -> int:
    """The version a token issued now carries. Read before the grants it will carry: a revocation
    committed in between then makes the token old at once, never leaves old grants on a new token."""
    return session.scalar(select(User.token_version).where(User.id == user_id)) or 0
