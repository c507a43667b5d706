"""Guessable secrets are throttled: password sign-in per account and per client address (429 with
Retry-After, escalating lockouts, counted across instances in PostgreSQL), and a flood of sign-ins
cannot take more than two password hashes at once per process (503 with Retry-After)."""

from __future__ import annotations

from sqlalchemy import text

from app.core import security

LOGIN = "/api/v1/auth/password/login"


PASSWORD = "correct-horse-2026"


def _staff(engine) -> str:
    """A staff account with a password; its name."""
    import uuid

    from sqlmodel import Session

    from app.identity.models import User

    name = f"clerk-{uuid.uuid4().hex[:8]}"
    with Session(engine) as s:
        s.add(User(username=name, display_name=name, password_hash=security.hash_password(PASSWORD)))
        s.commit()
    return name


def _login(client, username: str, password: str):
    return client.post(LOGIN, json={"username": username, "password": password})


def _unlock(engine) -> None:
    """Let the lockouts run out (as if their time had passed)."""
    from datetime import timedelta

    from app.core.db import utcnow

    with engine.begin() as conn:  # the application's clock, not the database's: a test may have moved it
        conn.execute(text("UPDATE throttle SET locked_until = :past WHERE locked_until IS NOT NULL"),
                     {"past": utcnow() - timedelta(seconds=1)})


def test_an_account_is_locked_after_five_wrong_passwords_even_for_the_right_one(client, world, engine):
    name = _staff(engine)
    for _ in range(5):
        assert _login(client, name, "wrong-password").status_code == 401
    r = _login(client, name, PASSWORD)
    assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_attempts"
    first = int(r.headers["retry-after"])
    assert 1 <= first <= 60
    _unlock(engine)
    assert _login(client, name, PASSWORD).status_code == 200  # and the failures are forgotten
    for _ in range(5):
        _login(client, name, "wrong-password")
    assert _login(client, name, PASSWORD).status_code == 429  # locked again, not for longer: history was reset
    _unlock(engine)
    for _ in range(5):
        _login(client, name, "wrong-password")
    assert 60 < int(_login(client, name, PASSWORD).headers["retry-after"]) <= 120  # the second lockout: twice as long


def test_one_address_guessing_many_accounts_is_locked(client, world, engine):
    for i in range(30):
        assert _login(client, f"nobody-{i}-{world.community.id}", "guess").status_code == 401
    r = _login(client, _staff(engine), "guess")
    assert r.status_code == 429 and "retry-after" in r.headers
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM throttle WHERE key LIKE 'password:address:%'"))


def test_sign_ins_beyond_two_hashes_at_once_are_told_to_come_back(client, engine, monkeypatch):
    name = _staff(engine)
    monkeypatch.setattr(security, "HASH_WAIT_SECONDS", 0.2)
    assert security._hashing.acquire(timeout=5) and security._hashing.acquire(timeout=5)
    try:
        r = _login(client, name, PASSWORD)
        assert r.status_code == 503 and r.headers["retry-after"] == "1" and r.json()["error"]["code"] == "busy"
    finally:
        security._hashing.release()
        security._hashing.release()
    assert _login(client, name, PASSWORD).status_code == 200


def test_refused_wechat_codes_are_throttled_per_address(client, wechat_state):
    """Each wx.login code exchange spends the app's WeChat quota: an address sending refused codes is
    locked out after 20 (429 with Retry-After), valid codes included, until the lockout ends."""
    for _ in range(20):
        r = client.post("/api/v1/auth/wechat/login", json={"code": "invalid"})
        assert 400 <= r.status_code < 500 and r.status_code != 429, r.text
    r = client.post("/api/v1/auth/wechat/login", json={"code": "code-fuzzy-bear"})
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1


def test_a_limit_is_configured_by_its_name(client, engine, monkeypatch):
    """THROTTLE_ATTEMPTS (JSON by throttle name) sets the failures allowed: here 2 for an account."""
    from app.core.config import get_settings

    monkeypatch.setenv("THROTTLE_ATTEMPTS", '{"password:account": 2}')
    get_settings.cache_clear()
    try:
        name = _staff(engine)
        assert [_login(client, name, "wrong").status_code for _ in range(3)] == [401, 401, 429]
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
