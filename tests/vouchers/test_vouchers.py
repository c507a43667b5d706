"""Points cheques (积分支票) through the HTTP API: issue with a code shown once, claim once, expire."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlmodel import Session

from app.core.db import utcnow
from app.ledger.models import LedgerAccount, Posting, SystemAccount
from app.vouchers.models import Voucher
from tests.ledger.helpers import verify_clean
from tests.rewards.helpers import balance


def _issue(world, points=40, who="volunteer", key=None, **extra):
    body = {"points": points, "memo": "资源回收日 纸类 4.1kg", "idempotency_key": key or uuid.uuid4().hex} | extra
    return world.client.post(f"/api/v1/communities/{world.community.id}/vouchers", json=body, headers=world.h(who))


def _system_balance(engine, community_id, kind: SystemAccount) -> int:
    with Session(engine) as s:
        return int(
            s.exec(
                select(func.coalesce(func.sum(Posting.amount), 0))
                .join(LedgerAccount, LedgerAccount.id == Posting.account_id)
                .where(LedgerAccount.community_id == community_id, LedgerAccount.kind == kind.value, LedgerAccount.household_id.is_(None))
            ).one()[0]
        )


def test_issue_then_claim_once_into_the_passbook(client, world, engine):
    key = uuid.uuid4().hex
    r = _issue(world, 40, key=key)
    assert r.status_code == 201, r.text
    v = r.json()
    code = v["claim_code"]
    assert len(code.replace("-", "")) == 12 and v["status"] == "outstanding" and code.endswith(v["code_hint"])
    assert v["label_svg"].startswith("<svg") and "40 积分" in v["label_svg"]
    assert _system_balance(engine, world.community.id, SystemAccount.vouchers) == 40
    # The code is stored only as a hash, and never listed.
    with Session(engine) as s:
        row = s.get(Voucher, v["id"])
        assert code.replace("-", "") not in row.code_hash
    listed = client.get(f"/api/v1/communities/{world.community.id}/vouchers", headers=world.h("committee")).json()["items"]
    assert [x["id"] for x in listed] == [v["id"]] and "claim_code" not in listed[0]
    # The issuer's retry returns the same voucher and code; nothing more is issued.
    again = _issue(world, 40, key=key)
    assert again.status_code == 201 and again.json()["replayed"] and again.json()["id"] == v["id"] and again.json()["claim_code"] == code
    assert _system_balance(engine, world.community.id, SystemAccount.vouchers) == 40
    # Someone else cannot replay the key to see the code.
    assert _issue(world, 40, key=key, who="clerk").status_code == 409

    h = world.households[0]
    r = client.post(f"/api/v1/households/{h.id}/voucher-claims", json={"code": code.lower().replace("-", " ")}, headers=world.h("resident"))
    assert r.status_code == 200, r.text
    assert r.json()["points"] == 40 and r.json()["balance_after"] == 40
    assert balance(engine, h) == 40
    assert _system_balance(engine, world.community.id, SystemAccount.vouchers) == 0
    # The same household retrying gets the first result; another household gets nothing.
    retry = client.post(f"/api/v1/households/{h.id}/voucher-claims", json={"code": code}, headers=world.h("resident")).json()
    assert retry["points"] == 40 and retry["replayed"] and retry["balance_after"] == 40
    other = world.households[1]
    r = client.post(f"/api/v1/households/{other.id}/voucher-claims", json={"code": code}, headers=world.h("clerk"))
    assert r.status_code == 409 and r.json()["error"]["code"] == "voucher_invalid"
    assert balance(engine, h) == 40 and balance(engine, other) == 0
    statement = client.get(f"/api/v1/households/{h.id}/statement", headers=world.h("resident")).json()["items"]
    assert statement[0]["source"] == "voucher" and statement[0]["points_in"] == 40
    verify_clean(engine, world.community.id)


def test_who_may_issue_and_bad_codes(client, world, engine):
    assert _issue(world, who="resident").status_code == 403
    assert _issue(world, who="compost_keeper").status_code == 403
    assert _issue(world, who="street_viewer").status_code == 403
    for who in ("clerk", "committee", "volunteer"):
        assert _issue(world, 5, who=who).status_code == 201, who
    assert _issue(world, 0).status_code == 422
    r = client.post(f"/api/v1/households/{world.households[0].id}/voucher-claims", json={"code": "ABCD-EFGH-JKLM"}, headers=world.h("resident"))
    assert r.status_code == 409 and r.json()["error"]["message"] == "领取码无效、已被领取或已过期"
    # A code of another community cannot be claimed here.
    verify_clean(engine, world.community.id)


def test_code_of_another_community_is_not_claimable(client, world, other_world, engine):
    code = _issue(other_world, 10, who="clerk").json()["claim_code"]
    r = client.post(f"/api/v1/households/{world.households[0].id}/voucher-claims", json={"code": code}, headers=world.h("resident"))
    assert r.status_code == 409


def test_unclaimed_vouchers_expire_and_cannot_be_claimed(client, world, engine):
    stale = _issue(world, 30, who="clerk").json()
    fresh = _issue(world, 20, who="clerk").json()
    with Session(engine) as s:
        s.execute(update(Voucher).where(Voucher.id == stale["id"]).values(expires_at=utcnow() - timedelta(seconds=1)))
        s.commit()
    h = world.households[0]
    r = client.post(f"/api/v1/households/{h.id}/voucher-claims", json={"code": stale["claim_code"]}, headers=world.h("resident"))
    assert r.status_code == 409
    r = client.post(f"/api/v1/communities/{world.community.id}/vouchers/expiry-runs", headers=world.h("committee"))
    assert r.status_code == 200 and r.json() == {"expired": 1, "points": 30}
    assert client.post(f"/api/v1/communities/{world.community.id}/vouchers/expiry-runs", headers=world.h("committee")).json()["expired"] == 0
    assert client.get(f"/api/v1/vouchers/{stale['id']}", headers=world.h("clerk")).json()["status"] == "expired"
    assert _system_balance(engine, world.community.id, SystemAccount.vouchers) == 20
    assert _system_balance(engine, world.community.id, SystemAccount.expired) == 30
    assert client.post(f"/api/v1/households/{h.id}/voucher-claims", json={"code": fresh["claim_code"]}, headers=world.h("resident")).status_code == 200
    assert balance(engine, h) == 20
    verify_clean(engine, world.community.id)


def test_issue_voucher_service_for_walk_in_weigh_ins(world, engine):
    """The field-operations code calls the service inside its own transaction, keyed by its record."""
    from app.vouchers.service import issue_voucher

    issued = []
    for _ in range(2):
        with Session(engine) as s:
            v, code, replayed = issue_voucher(
                s, community_id=world.community.id, points=12, idempotency_key="weighin:991",
                actor_user_id=world.users["volunteer"], memo="资源回收日 衣物 3.0kg",
            )
            s.commit()
            issued.append((v.id, code, replayed))
    assert issued[0][:2] == issued[1][:2] and [x[2] for x in issued] == [False, True]
    assert _system_balance(engine, world.community.id, SystemAccount.vouchers) == 12
    verify_clean(engine, world.community.id)


def test_expire_command_line(client, world, engine, monkeypatch):
    from typer.testing import CliRunner

    from app.cli import app as cli

    v = _issue(world, 9, who="clerk").json()
    with Session(engine) as s:
        s.execute(update(Voucher).where(Voucher.id == v["id"]).values(expires_at=utcnow() - timedelta(days=1)))
        s.commit()
    monkeypatch.setattr("app.core.db._engine", engine)
    out = CliRunner().invoke(cli, ["vouchers", "expire", "--community", str(world.community.id)])
    assert out.exit_code == 0, out.output
    assert "Expired 1 vouchers, 9 points" in out.output
    verify_clean(engine, world.community.id)
