"""WeChat sign-in and phone binding through the real client against the fake WeChat server."""

from __future__ import annotations

import uuid

from sqlmodel import Session, select

from app.identity.models import User
from tests.support import auth


def login(client, code: str, **headers):
    return client.post("/api/v1/auth/wechat/login", json={"code": code}, headers=headers)


def test_login_creates_the_user_once(client, wechat_state):
    name = uuid.uuid4().hex[:8]
    first = login(client, f"code-{name}~1")
    assert first.status_code == 200, first.text
    second = login(client, f"code-{name}~2")
    assert second.status_code == 200
    assert first.json()["user"]["id"] == second.json()["user"]["id"]
    assert first.json()["access_token"] != second.json()["access_token"]
    me = client.get("/api/v1/me", headers=auth(second.json()["access_token"]))
    assert me.status_code == 200 and me.json()["household_ids"] == []


def test_invalid_and_reused_codes_are_clear_errors(client, wechat_state):
    r = login(client, "invalid")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "wechat_invalid_code"
    assert "微信" in r.json()["error"]["message"]
    code = f"code-{uuid.uuid4().hex[:8]}"
    assert login(client, code).status_code == 200
    again = login(client, code, **{"Accept-Language": "en"})
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "wechat_code_used"
    assert "used" in again.json()["error"]["message"]


def test_rate_limit_is_not_retried_and_busy_is(client, wechat_state):
    wechat_state.failures["/sns/jscode2session"] = [{"path": "/sns/jscode2session", "errcode": 45011, "times": 1}]
    r = login(client, f"code-{uuid.uuid4().hex[:8]}")
    assert r.status_code == 503 and r.json()["error"]["code"] == "wechat_rate_limited"
    assert wechat_state.calls["/sns/jscode2session"] == 1

    wechat_state.failures["/sns/jscode2session"] = [{"path": "/sns/jscode2session", "errcode": -1, "times": 1}]
    r = login(client, f"code-{uuid.uuid4().hex[:8]}")
    assert r.status_code == 200, r.text
    assert wechat_state.calls["/sns/jscode2session"] == 3


def test_server_errors_are_retried_then_reported(client, wechat_state):
    wechat_state.failures["/sns/jscode2session"] = [{"path": "/sns/jscode2session", "http_status": 500, "times": 1}]
    assert login(client, f"code-{uuid.uuid4().hex[:8]}").status_code == 200
    wechat_state.failures["/sns/jscode2session"] = [{"path": "/sns/jscode2session", "http_status": 500, "times": 10}]
    r = login(client, f"code-{uuid.uuid4().hex[:8]}")
    assert r.status_code == 503 and r.json()["error"]["code"] == "wechat_unreachable"


def test_phone_binding_joins_the_roster_household(client, world, wechat_state, engine):
    household = world.households[2]
    phone = world.phones[household.id]
    tokens = login(client, f"code-{uuid.uuid4().hex[:8]}").json()
    r = client.post("/api/v1/auth/wechat/phone", json={"code": f"phone-{phone}"}, headers=auth(tokens["access_token"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["matched"] is True and body["household_ids"] == [household.id]
    assert body["phone_masked"] == f"{phone[:3]}****{phone[-4:]}"
    assert phone not in r.text
    # The answer's new tokens carry the household: the resident reads it at once, no refresh needed.
    assert body["tokens"]["user"]["household_ids"] == [household.id]
    hh = client.get(f"/api/v1/households/{household.id}", headers=auth(body["tokens"]["access_token"]))
    assert hh.status_code == 200 and phone not in hh.text
    # The old access token does not name it (the answer's tokens replace it).
    assert client.get(f"/api/v1/households/{household.id}", headers=auth(tokens["access_token"])).status_code == 403
    # A new session's pair (no refresh token sent): the old refresh token still works.
    refreshed = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).json()
    assert refreshed["user"]["household_ids"] == [household.id]
    with Session(engine) as s:
        user = s.exec(select(User).where(User.id == tokens["user"]["id"])).one()
        assert user.phone_hash and phone not in user.phone_hash and user.phone_masked != phone


def test_phone_not_on_roster_links_nothing(client, world, wechat_state):
    tokens = login(client, f"code-{uuid.uuid4().hex[:8]}").json()
    r = client.post("/api/v1/auth/wechat/phone", json={"code": "phone-13700000000"}, headers=auth(tokens["access_token"]))
    assert r.status_code == 200 and r.json()["matched"] is False and r.json()["household_ids"] == []


def test_phone_binding_survives_a_stale_access_token(client, wechat_state):
    tokens = login(client, f"code-{uuid.uuid4().hex[:8]}").json()
    headers = auth(tokens["access_token"])
    assert client.post("/api/v1/auth/wechat/phone", json={"code": "phone-13700000001"}, headers=headers).status_code == 200
    wechat_state.tokens.clear()  # WeChat forgot our token: the client refreshes it once and retries
    r = client.post("/api/v1/auth/wechat/phone", json={"code": "phone-13700000002"}, headers=headers)
    assert r.status_code == 200, r.text


def test_phone_binding_rotates_the_callers_refresh_token(client, world, wechat_state):
    household = world.households[3]
    tokens = login(client, f"code-{uuid.uuid4().hex[:8]}").json()
    body = {"code": f"phone-{world.phones[household.id]}", "refresh_token": tokens["refresh_token"]}
    r = client.post("/api/v1/auth/wechat/phone", json=body, headers=auth(tokens["access_token"]))
    assert r.status_code == 200, r.text
    new = r.json()["tokens"]
    assert new["refresh_token"] != tokens["refresh_token"] and new["user"]["household_ids"] == [household.id]
    assert client.get(f"/api/v1/households/{household.id}/passbook", headers=auth(new["access_token"])).status_code == 200
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": new["refresh_token"]}).status_code == 200
    # Someone else's refresh token is not rotated by this caller.
    other = login(client, f"code-{uuid.uuid4().hex[:8]}").json()
    r = client.post("/api/v1/auth/wechat/phone", json={"code": "phone-13700000009", "refresh_token": other["refresh_token"]}, headers=auth(tokens["access_token"]))
    assert r.status_code == 401 and r.json()["error"]["code"] == "refresh_invalid"
