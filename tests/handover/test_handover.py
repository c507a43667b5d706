"""Handover (issue 21): an organisation's communities, admins and reports pass to another organisation or
the street office in one audited step, through the API."""

from __future__ import annotations

from sqlmodel import Session, select

from app.audit.models import AuditLog
from app.identity.models import User
from app.identity.service import issue_tokens
from tests.support import auth


def _fresh_token(world, name: str) -> dict[str, str]:
    with Session(world.engine) as s:
        return auth(issue_tokens(s, s.get(User, world.users[name])).access_token)


def _handovers(engine, organisation_id: int) -> list[AuditLog]:
    with Session(engine) as s:
        return list(s.exec(select(AuditLog).where(AuditLog.action == "organisation.handover",
                                                  AuditLog.object_id == str(organisation_id))))


def test_an_organisation_hands_its_communities_admins_and_reports_to_another(client, world, other_world, engine):
    c, src, dst = world.community.id, world.organisation.id, other_world.organisation.id
    totals = f"/api/v1/communities/{c}/reports/point-totals"
    assert client.get(totals, headers=other_world.h("org_admin")).status_code == 403
    assert client.get(totals, headers=world.h("org_admin")).status_code == 200
    url = f"/api/v1/organisations/{src}/handover"

    assert client.post(url, json={"to_organisation_id": dst}, headers=world.h("org_admin")).status_code == 403
    assert client.post(url, json={}, headers=world.h("platform_admin")).status_code == 422
    both = client.post(url, json={"to_organisation_id": dst, "to_street_id": world.street.id}, headers=world.h("platform_admin"))
    assert both.status_code == 422 and both.json()["error"]["code"] == "handover_target"
    assert client.post(url, json={"to_organisation_id": src}, headers=world.h("platform_admin")).status_code == 422
    assert client.post(url, json={"to_organisation_id": 10**12}, headers=world.h("platform_admin")).status_code == 404

    r = client.post(url, json={"to_organisation_id": dst, "staff": "move"}, headers=world.h("platform_admin"))
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["community_ids"] == [c] and done["grants_moved"] == 1 and done["grants_ended"] == 0

    # The receiving organisation's admins run the community and read its reports, history included.
    assert client.get(totals, headers=other_world.h("org_admin")).status_code == 200
    org_totals = client.get(f"/api/v1/organisations/{dst}/reports/point-totals", headers=other_world.h("org_admin"))
    assert org_totals.status_code == 200 and world.community.name in org_totals.text
    # The handing-over admin's token ended with the change; signed in again, they work for the receiver.
    assert client.get(totals, headers=world.h("org_admin")).status_code == 401
    moved = _fresh_token(world, "org_admin")
    grants = client.get("/api/v1/me", headers=moved).json()["grants"]
    assert [(g["role"], g["organisation_id"]) for g in grants] == [("org_admin", dst)]
    assert client.get(totals, headers=moved).status_code == 200
    assert client.get(f"/api/v1/organisations/{src}/reports/point-totals", headers=moved).status_code == 403
    # The community's own staff keep their roles.
    assert client.get(totals, headers=world.h("committee")).status_code == 200

    [row] = _handovers(engine, src)
    assert row.actor_user_id == world.users["platform_admin"]
    assert row.detail["community_ids"] == [c] and row.detail["to_organisation_id"] == dst

    again = client.post(url, json={"to_organisation_id": dst, "staff": "move"}, headers=world.h("platform_admin"))
    assert again.status_code == 200 and again.json()["community_ids"] == [] and again.json()["audit_id"] is None
    assert len(_handovers(engine, src)) == 1


def test_the_street_office_takes_over_and_the_organisation_admins_end(client, world, engine):
    c, src = world.community.id, world.organisation.id
    url = f"/api/v1/organisations/{src}/handover"
    refused = client.post(url, json={"to_street_id": world.street.id, "staff": "move"}, headers=world.h("platform_admin"))
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "staff"

    r = client.post(url, json={"to_street_id": world.street.id}, headers=world.h("platform_admin"))
    assert r.status_code == 200, r.text
    assert r.json()["community_ids"] == [c] and r.json()["grants_ended"] == 1
    assert client.get(f"/api/v1/communities/{c}/reports/point-totals", headers=world.h("street_viewer")).status_code == 200
    assert client.get(f"/api/v1/communities/{c}/reports/point-totals", headers=world.h("committee")).status_code == 200
    ended = _fresh_token(world, "org_admin")
    assert client.get("/api/v1/me", headers=ended).json()["grants"] == []
    assert client.get(f"/api/v1/communities/{c}/reports/point-totals", headers=ended).status_code == 403
    assert len(_handovers(engine, src)) == 1
