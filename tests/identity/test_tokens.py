"""Access and refresh tokens: every kind of bad token is rejected; refresh rotation and reuse detection."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime, timedelta

import jwt
import pytest

from app.core import clock as app_clock
from app.core.config import get_settings
from tests.support import auth


def _wechat_tokens(client):
    return client.post("/api/v1/auth/wechat/login", json={"code": f"code-{uuid.uuid4().hex[:8]}"}).json()


def _claims(user_id: int, **over):
    s = get_settings()
    now = app_clock.now()
    base = {"sub": str(user_id), "g": [], "h": [], "iat": now, "nbf": now, "exp": now + timedelta(minutes=5),
            "aud": s.jwt_audience, "iss": s.jwt_issuer, "typ": "access"}
    base.update(over)
    return base


def _me(client, token):
    return client.get("/api/v1/me", headers=auth(token))


def test_valid_token_is_accepted(client, fake_wechat):
    tokens = _wechat_tokens(client)
    assert _me(client, tokens["access_token"]).status_code == 200


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda uid, secret: jwt.encode(_claims(uid), "wrong-secret-" + "y" * 40, algorithm="HS256"), id="wrong-key"),
        pytest.param(lambda uid, secret: jwt.encode(_claims(uid, exp=app_clock.now() - timedelta(seconds=5)), secret, algorithm="HS256"), id="expired"),
        pytest.param(lambda uid, secret: jwt.encode(_claims(uid, iat=app_clock.now() + timedelta(minutes=2)), secret, algorithm="HS256"), id="issued-later"),
        pytest.param(lambda uid, secret: jwt.encode(_claims(uid, nbf=app_clock.now() + timedelta(minutes=2)), secret, algorithm="HS256"), id="not-yet-valid"),
        pytest.param(lambda uid, secret: jwt.encode(_claims(uid, exp="soon"), secret, algorithm="HS256"), id="exp-not-a-number"),
        pytest.param(lambda uid, secret: jwt.encode(_claims(uid, aud="someone-else"), secret, algorithm="HS256"), id="wrong-audience"),
        pytest.param(lambda uid, secret: jwt.encode(_claims(uid, iss="evil"), secret, algorithm="HS256"), id="wrong-issuer"),
        pytest.param(lambda uid, secret: jwt.encode(_claims(uid), secret, algorithm="HS512"), id="wrong-algorithm"),
        pytest.param(lambda uid, secret: jwt.encode(_claims(uid, typ="refresh"), secret, algorithm="HS256"), id="wrong-type"),
        pytest.param(lambda uid, secret: "not.a.token", id="garbage"),
    ],
)
def test_bad_tokens_are_rejected(client, fake_wechat, make):
    tokens = _wechat_tokens(client)
    uid = tokens["user"]["id"]
    r = _me(client, make(uid, get_settings().resolved_jwt_secret()))
    assert r.status_code == 401
    assert r.json()["error"]["code"] in {"token_invalid", "token_expired"}


def _b64(d: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(d, default=str).encode()).decode().rstrip("=")


def test_alg_none_is_rejected(client, fake_wechat):
    tokens = _wechat_tokens(client)
    claims = _claims(tokens["user"]["id"])
    claims = {k: int(v.timestamp()) if isinstance(v, datetime) else v for k, v in claims.items()}
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    assert _me(client, unsigned).status_code == 401


def test_tampered_token_is_rejected(client, fake_wechat):
    tokens = _wechat_tokens(client)
    header, payload, sig = tokens["access_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["g"] = [["platform_admin", None, None, None]]
    forged = f"{header}.{_b64(claims)}.{sig}"
    assert _me(client, forged).status_code == 401


def test_missing_token_is_401_with_one_error_shape(client):
    r = client.get("/api/v1/me", headers={"Accept-Language": "en"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthenticated"
    assert r.json()["error"]["message"] == "Sign-in required"
    assert client.get("/api/v1/me").json()["error"]["message"] == "请先登录"


def test_refresh_rotates_and_reuse_revokes_the_family(client, fake_wechat, clock):
    tokens = _wechat_tokens(client)
    first = tokens["refresh_token"]
    r1 = client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert r1.status_code == 200
    second = r1.json()["refresh_token"]
    assert second != first
    clock.advance(seconds=get_settings().refresh_grace_seconds + 1)
    # The old token comes back after the grace period (stolen copy): refused, and the whole family
    # dies, including `second`.
    reuse = client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert reuse.status_code == 401 and reuse.json()["error"]["code"] == "refresh_reused"
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": second}).status_code == 401


def test_logout_revokes(client, fake_wechat):
    tokens = _wechat_tokens(client)
    assert client.post("/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]}).status_code == 204
    r = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 401 and r.json()["error"]["code"] == "refresh_invalid"


def test_unknown_refresh_token(client):
    r = client.post("/api/v1/auth/refresh", json={"refresh_token": "x" * 43})
    assert r.status_code == 401


def test_access_tokens_expire(client, fake_wechat, clock):
    """By the application's clock: valid to the last second of their life, expired from then on, whether
    the token was verified before (remembered) or not."""
    clock.set(clock.now(), frozen=True)
    seen, unseen = _wechat_tokens(client), _wechat_tokens(client)
    assert _me(client, seen["access_token"]).status_code == 200
    clock.advance(seconds=seen["expires_in"] - 1)
    assert _me(client, seen["access_token"]).status_code == 200
    clock.advance(seconds=1)
    for tokens in (seen, unseen):
        r = _me(client, tokens["access_token"])
        assert r.status_code == 401 and r.json()["error"]["code"] == "token_expired"


def test_token_times_are_read_on_the_applications_clock(client, fake_wechat, clock):
    """A day behind the machine's clock (PyJWT's own check would call the token expired), and a day ahead
    (PyJWT would call it not yet valid): the application's clock decides."""
    for days in (-1, 1):
        clock.set(app_clock.wall() + timedelta(days=days))
        assert _me(client, _wechat_tokens(client)["access_token"]).status_code == 200


def test_a_refresh_retried_after_a_lost_answer_gets_the_same_pair(client, fake_wechat, clock):
    """The phone sent its refresh token, the answer was lost on a bad line, it sends the token again
    within the grace period: the same new pair, and the session goes on."""
    clock.set(clock.now(), frozen=True)
    first = _wechat_tokens(client)["refresh_token"]
    lost = client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert lost.status_code == 200
    clock.advance(seconds=get_settings().refresh_grace_seconds - 2)
    retried = client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert retried.status_code == 200, retried.text
    assert (retried.json()["refresh_token"], retried.json()["access_token"]) == (lost.json()["refresh_token"], lost.json()["access_token"])
    assert retried.json()["expires_in"] == get_settings().access_token_minutes * 60
    assert _me(client, retried.json()["access_token"]).status_code == 200
    # The session goes on with the pair it got; once its refresh token is used, the first one is spent
    # for good: sent again (even within the grace period) it is a reuse and ends the session.
    third = client.post("/api/v1/auth/refresh", json={"refresh_token": retried.json()["refresh_token"]})
    assert third.status_code == 200
    reuse = client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert reuse.status_code == 401 and reuse.json()["error"]["code"] == "refresh_reused"
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": third.json()["refresh_token"]}).status_code == 401


def test_a_refresh_after_logout_is_not_retried_into_a_session(client, fake_wechat):
    first = _wechat_tokens(client)["refresh_token"]
    second = client.post("/api/v1/auth/refresh", json={"refresh_token": first}).json()["refresh_token"]
    assert client.post("/api/v1/auth/logout", json={"refresh_token": second}).status_code == 204
    r = client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert r.status_code == 401
