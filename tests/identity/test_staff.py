"""Staff accounts: password sign-in, creation by managers, scoped grants."""

from __future__ import annotations

import uuid

from sqlmodel import Session

from app.identity.service import ensure_platform_admin


def test_platform_admin_password_sign_in(client, engine):
    name = f"admin-{uuid.uuid4().hex[:6]}"
    with Session(engine) as s:
        ensure_platform_admin(s, name, "correct horse battery")
    ok = client.post("/api/v1/auth/password/login", json={"username": name, "password": "correct horse battery"})
    assert ok.status_code == 200
    assert ok.json()["user"]["grants"][0]["role"] == "platform_admin"
    bad = client.post("/api/v1/auth/password/login", json={"username": name, "password": "wrong password"})
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "bad_credentials"
    nobody = client.post("/api/v1/auth/password/login", json={"username": "nobody-" + name, "password": "x" * 10})
    assert nobody.status_code == 401 and nobody.json()["error"]["code"] == "bad_credentials"


def test_committee_staffs_its_own_community_only(client, world, other_world):
    r = client.post(
        "/api/v1/staff",
        json={"username": f"vol-{uuid.uuid4().hex[:6]}", "password": "volunteer-pass", "display_name": "王阿姨"},
        headers=world.h("committee"),
    )
    assert r.status_code == 201, r.text
    uid = r.json()["id"]
    grant = {"user_id": uid, "role": "volunteer", "community_id": world.community.id}
    assert client.post("/api/v1/grants", json=grant, headers=world.h("committee")).status_code == 201
    # Idempotent: granting twice changes nothing.
    assert client.post("/api/v1/grants", json=grant, headers=world.h("committee")).status_code == 201
    foreign = {"user_id": uid, "role": "volunteer", "community_id": other_world.community.id}
    assert client.post("/api/v1/grants", json=foreign, headers=world.h("committee")).status_code == 403
    # A volunteer cannot hand out roles, and nobody but the platform admin makes street viewers.
    assert client.post("/api/v1/grants", json=grant, headers=world.h("volunteer")).status_code == 403
    street = {"user_id": uid, "role": "street_viewer", "street_id": world.street.id}
    assert client.post("/api/v1/grants", json=street, headers=world.h("committee")).status_code == 403
    assert client.post("/api/v1/grants", json=street, headers=world.h("platform_admin")).status_code == 201

    login = client.post("/api/v1/auth/password/login", json={"username": r.json()["username"], "password": "volunteer-pass"})
    roles = {(g["role"], g["community_id"]) for g in login.json()["user"]["grants"]}
    assert ("volunteer", world.community.id) in roles

    assert client.post("/api/v1/grants/revoke", json=grant, headers=world.h("committee")).status_code == 204
    login = client.post("/api/v1/auth/password/login", json={"username": r.json()["username"], "password": "volunteer-pass"})
    assert ("volunteer", world.community.id) not in {(g["role"], g["community_id"]) for g in login.json()["user"]["grants"]}


def test_duplicate_username_is_409(client, world):
    body = {"username": f"dup-{uuid.uuid4().hex[:6]}", "password": "long-enough-pass"}
    assert client.post("/api/v1/staff", json=body, headers=world.h("committee")).status_code == 201
    r = client.post("/api/v1/staff", json=body, headers=world.h("committee"))
    assert r.status_code == 409 and r.json()["error"]["field"] == "username"
