"""Passwords (argon2), access tokens (PyJWT, HS256), keyed hashes for phones and QR payloads."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.core.config import get_settings
from app.core.db import utcnow

_hasher = PasswordHasher()
ALGORITHM = "HS256"
# Each argon2 check takes 64 MiB and tens of milliseconds of a core: at most this many at once per
# process (a flood of sign-ins queued 40 of them, 1.9 GiB, and stalled the bin-side scans), the others
# wait a little, then are told to come back (503, Retry-After) rather than queue without end.
_hashing = threading.BoundedSemaphore(max(1, get_settings().password_hashes_at_once))
HASH_WAIT_SECONDS = 2.0


@contextmanager
def _hash_slot():
    if not _hashing.acquire(timeout=HASH_WAIT_SECONDS):
        from app.kit.errors import Unavailable

        raise Unavailable("busy", "服务繁忙，请稍后再试", "The service is busy: try again shortly", retry_after=1)
    try:
        yield
    finally:
        _hashing.release()


def hash_password(password: str) -> str:
    with _hash_slot():
        return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    with _hash_slot():
        if not password_hash:
            # Spend the same time as a real check so unknown users cannot be told apart by timing.
            _hasher.hash(password)
            return False
        try:
            return _hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False


def create_access_token(claims: dict[str, Any], at: datetime | None = None, jti: str | None = None) -> tuple[str, int]:
    """A signed access token and its lifetime in seconds. `at` and `jti` (issue time and id) are given
    to issue a token again as it was first issued (a refresh retried within its grace period)."""
    s = get_settings()
    now = at or utcnow()
    ttl = timedelta(minutes=s.access_token_minutes)
    payload = {
        **claims,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "aud": s.jwt_audience,
        "iss": s.jwt_issuer,
        "typ": "access",
        "jti": jti or secrets.token_hex(8),
    }
    return jwt.encode(payload, s.resolved_jwt_secret(), algorithm=ALGORITHM), int(ttl.total_seconds())


_verified: dict[tuple[str, str], dict[str, Any]] = {}  # (token, key) → its claims once verified (bounded)
_VERIFIED_MAX = 10_000


def decode_access_token(token: str) -> dict[str, Any]:
    """Raises jwt.InvalidTokenError on any defect: signature, expiry, audience, issuer, algorithm.

    A phone sends the same access token with every scan for up to its 15 minutes: the verification
    (HMAC, claims) is remembered per token string, and only the expiry is checked again on reuse.
    """
    key = (token, get_settings().resolved_jwt_secret())
    claims = _verified.get(key)
    if claims is not None:
        if claims["exp"] <= utcnow().timestamp():
            _verified.pop(key, None)
            raise jwt.ExpiredSignatureError("Signature has expired")
        return claims
    claims = _decode_access_token(token)
    if len(_verified) >= _VERIFIED_MAX:
        _verified.clear()
    _verified[key] = claims
    return claims


def _decode_access_token(token: str) -> dict[str, Any]:
    s = get_settings()
    payload = jwt.decode(
        token,
        s.resolved_jwt_secret(),
        algorithms=[ALGORITHM],
        audience=s.jwt_audience,
        issuer=s.jwt_issuer,
        # PyJWT reads the times against the machine's clock: they are checked below against the app's.
        options={"require": ["exp", "iat", "sub", "aud", "iss"], "verify_exp": False, "verify_nbf": False, "verify_iat": False},
    )
    _check_times(payload, utcnow().timestamp())
    if payload.get("typ") != "access":
        raise jwt.InvalidTokenError("not an access token")
    return payload


def _check_times(payload: dict[str, Any], now: float) -> None:
    """PyJWT's own checks of iat, nbf and exp (no leeway), at `now`; `exp` is left an int for the cache."""

    def number(name: str, error: type[jwt.InvalidTokenError]) -> int:
        try:
            return int(payload[name])
        except (ValueError, TypeError, OverflowError):
            raise error(f"The {name} claim must be an integer") from None

    if number("iat", jwt.InvalidIssuedAtError) > now:
        raise jwt.ImmatureSignatureError("The token is not yet valid (iat)")
    if "nbf" in payload and number("nbf", jwt.DecodeError) > now:
        raise jwt.ImmatureSignatureError("The token is not yet valid (nbf)")
    payload["exp"] = number("exp", jwt.DecodeError)
    if payload["exp"] <= now:
        raise jwt.ExpiredSignatureError("Signature has expired")


def new_opaque_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def normalize_phone(raw: str) -> str | None:
    """Mainland mobile numbers: 11 digits starting with 1, optional +86/86 prefix."""
    digits = "".join(ch for ch in raw if ch.isdigit())
    if digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    if len(digits) == 11 and digits.startswith("1") and digits[1] in "3456789":
        return digits
    return None


def phone_hash(normalized: str) -> str:
    key = get_settings().resolved_phone_hash_key().encode()
    return hmac.new(key, normalized.encode(), hashlib.sha256).hexdigest()


def mask_phone(normalized: str) -> str:
    return f"{normalized[:3]}****{normalized[-4:]}"


def _qr_key() -> bytes:
    return _derive_qr_key(get_settings().resolved_jwt_secret())


@lru_cache(maxsize=4)
def _derive_qr_key(secret: str) -> bytes:
    return hmac.digest(secret.encode(), b"household-qr", "sha256")


def sign_code(public_code: str) -> str:
    # hmac.digest: the one-shot C path (a batch of 1,000 scans verifies 1,000 codes)
    mac = hmac.digest(_qr_key(), public_code.encode(), "sha256")[:10]
    return base64.b32encode(mac).decode().rstrip("=")


def same_secret(expected: str, given: str) -> bool:
    """Compare a secret in constant time. As bytes: `hmac.compare_digest` refuses text with a
    non-ASCII character (a TypeError, a 500), and any text may arrive from outside."""
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "surrogatepass"))


def verify_code_signature(public_code: str, signature: str) -> bool:
    return same_secret(sign_code(public_code), signature)
