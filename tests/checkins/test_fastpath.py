"""The lean ASGI twin of the scan route answers exactly as the FastAPI route does.

Each case is sent twice with fresh client ids: once to the application as it runs, once to the same
application with the twin taken out (so the FastAPI route answers). Status, body (less the ids that
differ by construction) and the headers a client reads must be the same.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import jwt
import pytest

from app.core.config import get_settings
from app.core.db import utcnow
from tests.field import forged, payload, scan, setup_field, yesterday_at


@pytest.fixture
def world(client, engine):
    """Enough households for every case to scan a fresh one in each application."""
    from tests.support import World

    return World.build(client, engine, households_per_building=16)


def _expired(world) -> str:
    s = get_settings()
    now = utcnow()
    claims = jwt.decode(world.token_for("volunteer"), options={"verify_signature": False})
    claims |= {"iat": now - timedelta(hours=1), "nbf": now - timedelta(hours=1), "exp": now - timedelta(seconds=5)}
    return jwt.encode(claims, s.resolved_jwt_secret(), algorithm="HS256")


def _cases(world, f):
    """(name, body maker taking a household index, headers) — body makers give fresh client ids."""
    sid = f["station_id"]
    at = yesterday_at(7, 30)
    good_token = world.token_for("volunteer")
    return [
        ("accepted", lambda i: scan(sid, payload(world, i), at), {}),
        ("charset and lower-case scheme", lambda i: scan(sid, payload(world, i), at),
         {"Authorization": f"bearer {good_token}", "Content-Type": "application/json; charset=utf-8"}),
        ("forged code, English", lambda i: scan(sid, forged(payload(world, i)), at), {"Accept-Language": "en"}),
        ("unknown station", lambda i: scan(sid + 100000, payload(world, i), at), {}),
        ("outside every window", lambda i: scan(sid, payload(world, i), yesterday_at(11)), {}),
        ("in the future", lambda i: scan(sid, payload(world, i), utcnow() + timedelta(hours=2)), {}),
        ("missing result", lambda i: {k: v for k, v in scan(sid, payload(world, i), at).items() if k != "result"}, {}),
        ("wrong type", lambda i: scan(sid, payload(world, i), at) | {"station_id": "三号"}, {"Accept-Language": "en"}),
        ("naive time", lambda i: scan(sid, payload(world, i)) | {"scanned_at": "2026-01-01T07:30:00"}, {}),
        ("NUL in a text", lambda i: scan(sid, payload(world, i), at, photo_ref="a\x00b"), {}),
        ("huge number in an unknown field", lambda i: scan(sid, payload(world, i), at) | {"extra": 10**30}, {}),
        ("expired token", lambda i: scan(sid, payload(world, i), at), {"Authorization": f"Bearer {_expired(world)}"}),
        ("garbage token", lambda i: scan(sid, payload(world, i), at), {"Authorization": "Bearer not.a.token"}),
        ("another scheme", lambda i: scan(sid, payload(world, i), at), {"Authorization": f"Basic {good_token}"}),
        ("resident may not scan", lambda i: scan(sid, payload(world, i), at), {"Authorization": f"Bearer {world.token_for('resident')}"}),
    ]


def _seen(r) -> tuple:
    body = r.json()
    if "error" in body:
        body["error"].pop("request_id")
    else:
        body.pop("checkin_id")
        body.pop("household_id")
        body.pop("client_id")
    return r.status_code, body, r.headers.get("content-type"), r.headers.get("www-authenticate")


def test_the_twin_answers_as_the_route_does(client, route_only, world):
    f = setup_field(client, world)
    url = f"/api/v1/communities/{world.community.id}/checkins"
    for n, (name, body, headers) in enumerate(_cases(world, f)):
        # Separate households, so each application's scan is the first of its window.
        twin = client.post(url, json=body(2 * n), headers=world.h("volunteer") | headers)
        route = route_only.post(url, json=body(2 * n + 1), headers=world.h("volunteer") | headers)
        assert _seen(twin) == _seen(route), name
        assert twin.headers.get("x-request-id"), name
    # The accepted and charset cases credited their households, once each.
    listed = client.get(url, params={"status": "accepted"}, headers=world.h("committee")).json()["items"]
    assert sorted(c["household_id"] for c in listed) == sorted(world.households[i].id for i in (0, 1, 2, 3))


def test_the_twin_keeps_the_request_id_and_the_route_label(client, world):
    f = setup_field(client, world)
    url = f"/api/v1/communities/{world.community.id}/checkins"
    rid = f"scan-{uuid.uuid4().hex[:12]}"
    r = client.post(url, json=scan(f["station_id"], payload(world, 0), yesterday_at(7, 5)), headers=world.h("volunteer", **{"X-Request-ID": rid}))
    assert r.status_code == 201 and r.headers["x-request-id"] == rid
    bad = client.post(url, json=scan(f["station_id"], forged(payload(world, 0))), headers=world.h("volunteer", **{"X-Request-ID": rid}))
    assert bad.status_code == 400 and bad.json()["error"]["request_id"] == rid
    metrics = client.get("/metrics").text
    assert 'route="/api/v1/communities/{community_id}/checkins",status="201"' in metrics
    assert 'route="/api/v1/communities/{community_id}/checkins",status="400"' in metrics
