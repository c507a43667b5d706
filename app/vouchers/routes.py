"""Points cheques (积分支票): issue with a printed claim code, claim into a passbook, expire."""

from __future__ import annotations

from fastapi import APIRouter

from app.core.db import SessionDep
from app.kit.errors import error_responses
from app.kit.pagination import DEFAULT_LIMIT, Cursor, Limit, Page
from app.vouchers import flows
from app.vouchers.auth import (
    CommunityManager,
    CommunityVoucherReader,
    VoucherClaimant,
    VoucherIssuer,
    VoucherReader,
)
from app.vouchers.models import (
    VoucherClaim,
    VoucherClaimed,
    VoucherCreate,
    VoucherExpiryResult,
    VoucherIssued,
    VoucherPublic,
    VoucherStatus,
)

router = APIRouter(prefix="/api/v1", tags=["vouchers"])
READ = error_responses(400, 401, 403, 404, 422)
WRITE = error_responses(400, 401, 403, 404, 409, 422)


@router.post("/communities/{community_id}/vouchers", summary="Issue a points cheque; the claim code is shown only now", status_code=201, response_model=VoucherIssued, responses=WRITE)
def issue(session: SessionDep, principal: VoucherIssuer, community_id: int, data: VoucherCreate):
    return flows.issue(session, principal, community_id, data)


@router.get("/communities/{community_id}/vouchers", summary="Points cheques of a community (never their codes)", response_model=Page[VoucherPublic], responses=READ)
def list_vouchers(
    session: SessionDep,
    principal: CommunityVoucherReader,
    community_id: int,
    status: VoucherStatus | None = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
):
    items, next_cursor = flows.list_vouchers(session, community_id, status, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)


@router.get("/vouchers/{voucher_id}", summary="One points cheque", response_model=VoucherPublic, responses=READ)
def read_voucher(session: SessionDep, principal: VoucherReader, voucher_id: int):
    return flows.read_voucher(session, voucher_id)


@router.post("/households/{household_id}/voucher-claims", summary="Claim a points cheque into the household's passbook", response_model=VoucherClaimed, responses=WRITE)
def claim(session: SessionDep, principal: VoucherClaimant, household_id: int, data: VoucherClaim):
    return flows.claim(session, principal, household_id, data)


@router.post("/communities/{community_id}/vouchers/expiry-runs", summary="Expire unclaimed points cheques past their date (idempotent)", response_model=VoucherExpiryResult, responses=WRITE)
def expire_vouchers(session: SessionDep, principal: CommunityManager, community_id: int):
    return flows.run_expiry(session, principal, community_id)
