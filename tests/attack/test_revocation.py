"""Access tokens end with the sign-in and the role they stand for (issue 17, finding 7: a volunteer whose
role was revoked could still scan for up to 15 minutes, and a logout left the access token working).

A token carries its user's token version; logout and role changes raise the version, and the older
tokens are refused (401 `token_revoked`) at once in the process that made the change and within two
seconds in every other (each reads the recently revoked users once a second or so, not once a request).
"""

from __future__ import annotations

import time
import uuid

from sqlalchemy import text

from app.identity.revocation import REVOKED
from tests.field import payload, scan, setup_field, yesterday_at
from tests.support import auth

PASSWORD = "volunteer-pass-2026"


def _volunteer(client, world) -> tuple[dict, dict]:
    """A staff account made and granted the volunteer role through the API, signed in: (grant, tokens)."""
    made = client.post(
        "/api/v1/staff", json={"username": f"vol-{uuid.uuid4().hex[:8]}", "password": PASSWORD},
        headers=world.h("committee"),
    )
    assert made.status_code == 201, made.text
    grant = {"user_id": made.json()["id"], "role": "volunteer", "community_id": world.community.id}
    assert client.post("/api/v1/grants", json=grant, headers=world.h("committee")).status_code == 201
    tokens = client.post("/api/v1/auth/password/login", json={"username": made.json()["username"], "password": PASSWORD})
    assert tokens.status_code == 200, tokens.text
    return grant, tokens.json()


def _scan(client, world, field, token: str, household: int):
    body = scan(field["station_id"], payload(world, household), yesterday_at(7, 30))
    return client.post(f"/api/v1/communities/{world.community.id}/checkins", json=body, headers=auth(token))


def _refused(r) -> bool:
    return r.status_code == 401 and r.json()["error"]["code"] == "token_revoked"


def test_a_volunteer_whose_role_is_revoked_can_no_longer_scan(client, world):
    field = setup_field(client, world)
    grant, tokens = _volunteer(client, world)
    assert _scan(client, world, field, tokens["access_token"], 0).status_code == 201

    assert client.post("/api/v1/grants/revoke", json=grant, headers=world.h("committee")).status_code == 204
    # The fast path (the bin-side scan) and the FastAPI routes alike, at once.
    assert _refused(_scan(client, world, field, tokens["access_token"], 1))
    assert _refused(client.get("/api/v1/me", headers=auth(tokens["access_token"])))
    assert _refused(client.get(f"/api/v1/communities/{world.community.id}/checkins", headers=auth(tokens["access_token"])))

    # Refreshing gives a token with the grants held now: no longer a volunteer.
    fresh = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert fresh.status_code == 200 and fresh.json()["user"]["grants"] == []
    assert _scan(client, world, field, fresh.json()["access_token"], 1).status_code == 403
    assert client.get("/api/v1/me", headers=auth(fresh.json()["access_token"])).status_code == 200


def test_a_role_granted_is_in_the_next_token(client, world):
    grant, tokens = _volunteer(client, world)
    clerk = grant | {"role": "clerk"}
    assert client.post("/api/v1/grants", json=clerk, headers=world.h("committee")).status_code == 201
    assert _refused(client.get("/api/v1/me", headers=auth(tokens["access_token"])))
    fresh = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).json()
    assert {g["role"] for g in fresh["user"]["grants"]} == {"volunteer", "clerk"}
    assert client.get("/api/v1/me", headers=auth(fresh["access_token"])).status_code == 200


def test_logout_ends_the_access_token(client, world):
    field = setup_field(client, world)
    _, tokens = _volunteer(client, world)
    assert client.get("/api/v1/me", headers=auth(tokens["access_token"])).status_code == 200
    assert client.post("/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]}).status_code == 204
    assert _refused(client.get("/api/v1/me", headers=auth(tokens["access_token"])))
    assert _refused(_scan(client, world, field, tokens["access_token"], 0))
    r = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 401 and r.json()["error"]["code"] == "refresh_invalid"
    # Signing in again works at once; the old refresh token sent again ends nothing more.
    again = client.post("/api/v1/auth/password/login", json={"username": tokens["user"]["username"], "password": PASSWORD})
    assert client.get("/api/v1/me", headers=auth(again.json()["access_token"])).status_code == 200
    assert client.post("/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]}).status_code == 204
    assert client.get("/api/v1/me", headers=auth(again.json()["access_token"])).status_code == 200


def test_a_refresh_token_reused_ends_the_access_tokens_too(client, world, clock):
    _, tokens = _volunteer(client, world)
    rotated = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).json()
    clock.advance(seconds=31)  # past the grace period of a retry after a lost answer
    reuse = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})  # a stolen copy
    assert reuse.status_code == 401 and reuse.json()["error"]["code"] == "refresh_reused"
    assert _refused(client.get("/api/v1/me", headers=auth(rotated["access_token"])))


def test_a_revocation_made_by_another_process_takes_effect_within_two_seconds(client, world, engine):
    """Another instance's revocation reaches this one only through the database: no invalidation here."""
    field = setup_field(client, world)
    _, tokens = _volunteer(client, world)
    token = tokens["access_token"]
    assert _scan(client, world, field, token, 0).status_code == 201
    with engine.begin() as conn:  # what revoke_tokens writes, as another instance would
        conn.execute(
            text("UPDATE app_user SET token_version = token_version + 1, tokens_revoked_at = now() WHERE id = :id"),
            {"id": tokens["user"]["id"]},
        )
    revoked_at = time.monotonic()
    household = 1
    while True:
        r = _scan(client, world, field, token, household)
        if _refused(r):
            break
        assert r.status_code in (200, 201), r.text
        household = (household + 1) % len(world.households)
        assert time.monotonic() - revoked_at < 2.5, "the revocation did not reach this process in time"
        time.sleep(0.05)
    assert _refused(client.get("/api/v1/me", headers=auth(token)))


def test_checking_a_token_costs_no_query_per_request(client, world):
    """Fifty scans in a row read the revoked users at most a few times (once a second or so)."""
    field = setup_field(client, world)
    token = world.token_for("volunteer")
    assert _scan(client, world, field, token, 0).status_code == 201
    before, started = REVOKED.reads, time.monotonic()
    for i in range(50):
        assert _scan(client, world, field, token, i % len(world.households)).status_code in (200, 201)
    seconds = time.monotonic() - started
    assert REVOKED.reads - before <= seconds + 2, (REVOKED.reads - before, seconds)


def test_tokens_issued_before_versions_existed_still_work_until_revoked(client, world):
    """A token without the version claim (issued before this change) counts as version 0."""
    import jwt

    from app.core.config import get_settings

    secret = get_settings().resolved_jwt_secret()
    claims = jwt.decode(world.token_for("committee"), options={"verify_signature": False})
    claims.pop("v", None)
    legacy = jwt.encode(claims, secret, algorithm="HS256")
    assert client.get("/api/v1/me", headers=auth(legacy)).status_code == 200
