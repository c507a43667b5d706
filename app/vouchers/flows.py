"""Voucher workflows behind the routes: issue, claim and expire, what is audited, one commit."""

from __future__ import annotations

from sqlmodel import Session

from app.audit import service as audit
from app.identity.auth import Principal
from app.places import service as places
from app.vouchers import service
from app.vouchers.models import (
    VoucherClaim,
    VoucherClaimed,
    VoucherCreate,
    VoucherExpiryResult,
    VoucherIssued,
)


def issue(session: Session, principal: Principal, community_id: int, data: VoucherCreate) -> VoucherIssued:
    community = places.get_community(session, community_id)
    voucher, code, replayed = service.issue_voucher(
        session,
        community_id=community_id,
        points=data.points,
        idempotency_key=f"api:{data.idempotency_key}",
        actor_user_id=principal.user_id,
        memo=data.memo.strip(),
        valid_days=data.valid_days,
    )
    if not replayed:
        audit.record(
            session,
            actor_user_id=principal.user_id,
            action="vouchers.issue",
            object_type="voucher",
            object_id=voucher.id,
            community_id=community_id,
            request_id=principal.request_id,
            detail={"points": voucher.points, "memo": voucher.memo, "code_hint": voucher.code_hint},
        )
    session.commit()
    return service.issued_public(voucher, code, replayed, community.name)


def claim(session: Session, principal: Principal, household_id: int, data: VoucherClaim) -> VoucherClaimed:
    household = places.get_household(session, household_id)
    by_member = household_id in principal.household_ids
    result = service.claim(session, household, data.code, actor_user_id=principal.user_id)
    if not by_member and not result.replayed:
        # Staff typing a code in for a resident: who put which cheque into which passbook.
        audit.record(
            session,
            actor_user_id=principal.user_id,
            action="vouchers.claim_for_household",
            object_type="voucher",
            object_id=result.voucher_id,
            community_id=household.community_id,
            request_id=principal.request_id,
            detail={"household_id": household.id, "points": result.points},
        )
    session.commit()
    return result


def list_vouchers(session: Session, community_id: int, status, cursor, limit):
    return service.list_vouchers(session, community_id, status, cursor, limit)


def read_voucher(session: Session, voucher_id: int):
    return service.public(service.get_voucher(session, voucher_id))


def run_expiry(session: Session, principal: Principal, community_id: int) -> VoucherExpiryResult:
    count, points = service.expire_due(session, community_id)
    audit.record(
        session,
        actor_user_id=principal.user_id,
        action="vouchers.expiry_run",
        object_type="community",
        object_id=community_id,
        community_id=community_id,
        request_id=principal.request_id,
        detail={"expired": count, "points": points},
    )
    session.commit()
    return VoucherExpiryResult(expired=count, points=points)
