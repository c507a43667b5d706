"""The resident's consent to spend: a signed single-use code from the mini-program, or the household PIN.

A door-plate code only says which household; it is printed on the door and proves nothing. Spending
needs one of these. Codes live about a minute and their nonce is inserted once (primary key), so a
code cannot be used twice even by two clerks at the same instant. PINs and their throttles are in
app/rewards/pins.py; a forged code counts there as a wrong guess of the staff member presenting it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import Session

from app.core.config import get_settings
from app.core.db import utcnow
from app.core.security import same_secret
from app.kit.errors import Conflict, DomainError, Forbidden
from app.places.models import Household
from app.rewards import pins
from app.rewards.models import Consent, ConsentCode, ConsentUse

CODE_PREFIX = "JFC1"
CODE_SECONDS = 60

USE = ConsentUse.__table__


def _key() -> bytes:
    return hmac.new(get_settings().resolved_jwt_secret().encode(), b"household-consent", hashlib.sha256).digest()


def _sign(body: str) -> str:
    mac = hmac.new(_key(), body.encode(), hashlib.sha256).digest()[:15]
    return base64.b32encode(mac).decode()


def issue_code(household_id: int, now: datetime | None = None) -> ConsentCode:
    now = now or utcnow()
    expires = int(now.timestamp()) + CODE_SECONDS
    body = f"{CODE_PREFIX}.{household_id}.{expires}.{secrets.token_hex(8)}"
    return ConsentCode(code=f"{body}.{_sign(body)}", expires_at=datetime.fromtimestamp(expires, now.tzinfo))


def _invalid_code() -> Forbidden:
    return Forbidden("invalid_consent_code", "授权码无效", "Invalid consent code", "consent_code")


def parse_code(code: str) -> tuple[int, int, str]:
    """(household_id, expires epoch, nonce) of a genuine code; raises on forgery or garbage."""
    parts = code.strip().split(".")
    if len(parts) != 5 or parts[0] != CODE_PREFIX:
        raise _invalid_code()
    body, sig = ".".join(parts[:4]), parts[4]
    if not same_secret(_sign(body), sig):
        raise _invalid_code()
    try:
        return int(parts[1]), int(parts[2]), parts[3]
    except ValueError:
        raise _invalid_code() from None


def read_code(session: Session, code: str, by_user_id: int) -> tuple[int, int, str]:
    """`parse_code` of a code a staff member presents: one that looks like a consent code but is
    not genuine counts as their wrong guess (a mistaken scan of something else does not)."""
    try:
        return parse_code(code)
    except DomainError:
        if code.strip().startswith(f"{CODE_PREFIX}."):
            pins.count_forged_code(session, by_user_id)
        raise


def code_household(session: Session, code: str, by_user_id: int) -> int:
    return read_code(session, code, by_user_id)[0]


def use_code(session: Session, household_id: int, code: str, by_user_id: int) -> None:
    """Consume a code for this household inside the caller's transaction (rolled back with it)."""
    code_hid, expires, nonce = read_code(session, code, by_user_id)
    if code_hid != household_id:
        raise Forbidden("consent_code_other_household", "授权码不属于该住户", "This consent code belongs to another household", "consent_code")
    if expires < int(utcnow().timestamp()):
        raise Forbidden("consent_code_expired", "授权码已过期，请让居民刷新", "Consent code expired; ask the resident to refresh it", "consent_code")
    # The primary key decides: a second use (even at the same instant, on another connection) inserts nothing.
    fresh = session.execute(
        pg_insert(USE)
        .values(nonce=nonce, household_id=household_id, used_at=utcnow())
        .on_conflict_do_nothing(index_elements=["nonce"])
        .returning(USE.c.nonce)
    ).scalar()
    if fresh is None:
        raise _code_used()


def use_codes(session: Session, codes: list[tuple[int, str]]) -> list[DomainError | None]:
    """`use_code` for many (household id, code) pairs in one statement; an error or None for each."""
    now = utcnow()
    out: list[DomainError | None] = []
    nonces: dict[str, int] = {}  # nonce → first pair presenting it
    for n, (household_id, code) in enumerate(codes):
        try:
            code_hid, expires, nonce = parse_code(code)
            if code_hid != household_id:
                raise Forbidden("consent_code_other_household", "授权码不属于该住户", "This consent code belongs to another household", "consent_code")
            if expires < int(now.timestamp()):
                raise Forbidden("consent_code_expired", "授权码已过期，请让居民刷新", "Consent code expired; ask the resident to refresh it", "consent_code")
            if nonce in nonces:
                raise _code_used()
        except DomainError as e:
            out.append(e)
            continue
        nonces[nonce] = n
        out.append(None)
    if nonces:
        rows = [{"nonce": k, "household_id": codes[n][0], "used_at": now} for k, n in nonces.items()]
        fresh = set(session.execute(pg_insert(USE).values(rows).on_conflict_do_nothing(index_elements=["nonce"]).returning(USE.c.nonce)).scalars())
        for k, n in nonces.items():
            if k not in fresh:
                out[n] = _code_used()
    return out


def unuse_codes(session: Session, codes: list[str]) -> None:
    """Give back codes this transaction consumed for acts it then refused (as a rollback would)."""
    if codes:
        session.execute(delete(USE).where(USE.c.nonce.in_([parse_code(c)[2] for c in codes])))


def _code_used() -> Conflict:
    return Conflict("consent_code_used", "授权码已使用，请让居民刷新", "Consent code already used; ask the resident to refresh it", "consent_code")


def prune_used_codes(session: Session) -> int:
    """Nonces older than a code's life can never be presented again; forget them."""
    cutoff = utcnow() - timedelta(seconds=CODE_SECONDS * 10)
    return session.execute(delete(USE).where(USE.c.used_at < cutoff)).rowcount or 0


def consent_required() -> Forbidden:
    return Forbidden(
        "consent_required",
        "需要居民出示授权码或输入兑换密码",
        "The resident's consent code or PIN is required",
        "consent_code",
    )


def require_consent(session: Session, household: Household, by_user_id: int, consent_code: str | None, pin: str | None) -> Consent:
    """Check the resident's consent, given at `by_user_id`'s counter. A PIN check commits its
    throttle counters; a code is consumed in the caller's transaction. Call this before any other
    write of the request."""
    if consent_code:
        use_code(session, household.id, consent_code, by_user_id)
        return Consent.code
    if pin:
        pins.check_pin(session, household, by_user_id, pin)
        return Consent.pin
    raise consent_required()
