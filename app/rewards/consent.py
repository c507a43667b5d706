"""The resident's consent to spend: a signed single-use code from the mini-program, or the household PIN.

A door-plate code only says which household; it is printed on the door and proves nothing. Spending
needs one of these. Codes live about a minute and their nonce is inserted once (primary key), so a
code cannot be used twice even by two clerks at the same instant. Wrong PINs are counted per
household in the database: an attempt is taken before the PIN is checked, so parallel guesses cannot
slip past the lock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import case, delete, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import Session

from app.core.config import get_settings
from app.core.db import utcnow
from app.core.security import hash_password, same_secret, verify_password
from app.kit.errors import BadRequest, Conflict, DomainError, Forbidden
from app.rewards.models import Consent, ConsentCode, ConsentUse, PinGuard

CODE_PREFIX = "JFC1"
CODE_SECONDS = 60
PIN_MAX_FAILURES = 5
PIN_LOCK_MINUTES = 15

GUARD = PinGuard.__table__
USE = ConsentUse.__table__


class TooManyAttempts(DomainError):
    status_code = 429


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


def code_household(code: str) -> int:
    return parse_code(code)[0]


def use_code(session: Session, household_id: int, code: str) -> None:
    """Consume a code for this household inside the caller's transaction (rolled back with it)."""
    code_hid, expires, nonce = parse_code(code)
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


# --- PIN ---------------------------------------------------------------------------------------

def hash_pin(pin: str) -> str:
    if not pin.isdigit() or not 4 <= len(pin) <= 12:
        raise BadRequest("invalid_pin", "密码应为4–12位数字", "The PIN must be 4 to 12 digits", "pin")
    return hash_password(pin)


def _take_attempt(session: Session, household_id: int) -> int:
    """Count one attempt before checking the PIN; refuses while the household is locked. Commits."""
    now = utcnow()
    session.execute(
        pg_insert(GUARD).values(household_id=household_id, failures=0).on_conflict_do_nothing(index_elements=["household_id"])
    )
    lock_over = GUARD.c.locked_until.is_not(None) & (GUARD.c.locked_until <= now)
    failures = session.execute(
        update(GUARD)
        .where(GUARD.c.household_id == household_id, GUARD.c.locked_until.is_(None) | (GUARD.c.locked_until <= now))
        .values(
            failures=case((lock_over, 1), else_=GUARD.c.failures + 1),
            locked_until=case((lock_over, None), else_=GUARD.c.locked_until),
        )
        .returning(GUARD.c.failures)
    ).scalar()
    if failures is None or failures > PIN_MAX_FAILURES:
        session.rollback()
        raise TooManyAttempts(
            "pin_locked",
            f"密码错误次数过多，请{PIN_LOCK_MINUTES}分钟后再试",
            f"Too many wrong PINs; try again in {PIN_LOCK_MINUTES} minutes",
            "pin",
        )
    session.commit()
    return failures


def check_pin(session: Session, household_id: int, pin_hash: str | None, pin: str) -> None:
    """Verify the household PIN; wrong PINs count towards a lock. Leaves the session committed."""
    if not pin_hash:
        raise Forbidden("no_pin", "该住户未设置兑换密码", "This household has no PIN set", "pin")
    failures = _take_attempt(session, household_id)
    if verify_password(pin_hash, pin):
        session.execute(update(GUARD).where(GUARD.c.household_id == household_id).values(failures=0))
        session.commit()
        return
    if failures >= PIN_MAX_FAILURES:
        session.execute(
            update(GUARD)
            .where(GUARD.c.household_id == household_id)
            .values(locked_until=utcnow() + timedelta(minutes=PIN_LOCK_MINUTES), failures=0)
        )
        session.commit()
        raise TooManyAttempts(
            "pin_locked",
            f"密码错误次数过多，请{PIN_LOCK_MINUTES}分钟后再试",
            f"Too many wrong PINs; try again in {PIN_LOCK_MINUTES} minutes",
            "pin",
        )
    raise Forbidden(
        "wrong_pin",
        f"兑换密码错误，还可尝试{PIN_MAX_FAILURES - failures}次",
        f"Wrong PIN; {PIN_MAX_FAILURES - failures} attempts left",
        "pin",
        attempts_left=PIN_MAX_FAILURES - failures,
    )


def reset_guard(session: Session, household_id: int) -> None:
    session.execute(update(GUARD).where(GUARD.c.household_id == household_id).values(failures=0, locked_until=None))


def require_consent(session: Session, household_id: int, pin_hash: str | None, consent_code: str | None, pin: str | None) -> Consent:
    """Check the resident's consent. A PIN check commits its attempt counter; a code is consumed in
    the caller's transaction. Call this before any other write of the request."""
    if consent_code:
        use_code(session, household_id, consent_code)
        return Consent.code
    if pin:
        check_pin(session, household_id, pin_hash, pin)
        return Consent.pin
    raise Forbidden(
        "consent_required",
        "需要居民出示授权码或输入兑换密码",
        "The resident's consent code or PIN is required",
        "consent_code",
    )


