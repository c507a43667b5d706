"""Passbook, statement, adjustments, reversals, expiry policy and runs, verification."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response

from app.core.db import SessionDep
from app.kit.errors import error_responses
from app.ledger import flows, passbook
from app.ledger.auth import CommunityManager, EntryManager, HouseholdManager, PassbookReader
from app.ledger.models import (
    AdjustmentCreate,
    EntryPublic,
    ExpiryRunResult,
    Passbook,
    PolicyPublic,
    ReversalCreate,
    Source,
    StatementPage,
    StatementTotals,
    VerifyReport,
)

router = APIRouter(prefix="/api/v1", tags=["ledger"])
READ = error_responses(400, 401, 403, 404, 422)
WRITE = error_responses(400, 401, 403, 404, 409, 422)
From = Annotated[date | None, Query(alias="from", description="起始日期（含）")]
To = Annotated[date | None, Query(alias="to", description="截止日期（含）")]


@router.get("/households/{household_id}/passbook", summary="Passbook: balance and points expiring within 30 days", response_model=Passbook, responses=READ)
def read_passbook(session: SessionDep, principal: PassbookReader, household_id: int):
    return flows.passbook_summary(session, household_id)


@router.get("/households/{household_id}/statement", summary="Passbook statement, newest first, with running balance", response_model=StatementPage, responses=READ)
def read_statement(
    session: SessionDep,
    principal: PassbookReader,
    household_id: int,
    start: From = None,
    end: To = None,
    source: Source | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
):
    household, tz = passbook.open_passbook(session, household_id)
    lo, hi = passbook.local_period(tz, start, end)
    balance, items, next_cursor = passbook.statement(
        session, household.id, tz, start=lo, end=hi, source=source, cursor=cursor, limit=limit
    )
    return StatementPage(household_id=household.id, balance=balance, items=items, next_cursor=next_cursor)


@router.get("/households/{household_id}/statement/totals", summary="Totals for a period: points by source, grams diverted by category", response_model=StatementTotals, responses=READ)
def read_totals(session: SessionDep, principal: PassbookReader, household_id: int, start: From = None, end: To = None):
    household, tz = passbook.open_passbook(session, household_id)
    lo, hi = passbook.local_period(tz, start, end)
    return passbook.totals(session, household.id, lo, hi)


@router.get(
    "/households/{household_id}/statement.html",
    summary="Printable passbook statement (Chinese) for residents without a smartphone",
    # Errors stay JSON: the 200 is declared as HTML here rather than through response_class.
    response_class=Response,
    responses={200: {"content": {"text/html": {}}, "description": "Printable statement"}, **READ},
)
def printable_statement(session: SessionDep, principal: PassbookReader, household_id: int, start: From = None, end: To = None):
    return HTMLResponse(flows.printable_statement(session, household_id, start, end))


@router.post("/households/{household_id}/adjustments", summary="Manual adjustment with a required reason (committee)", status_code=201, response_model=EntryPublic, responses=WRITE)
def adjust(session: SessionDep, principal: HouseholdManager, household_id: int, data: AdjustmentCreate):
    return flows.adjust(session, principal, household_id, data)


@router.post("/ledger/entries/{entry_id}/reverse", summary="Correct an entry by posting its reversal", status_code=201, response_model=EntryPublic, responses=WRITE)
def reverse_entry(session: SessionDep, principal: EntryManager, entry_id: int, data: ReversalCreate):
    return flows.reverse(session, principal, entry_id, data)


@router.get("/communities/{community_id}/ledger/policy", summary="Points expiry policy of a community", response_model=PolicyPublic, responses=READ)
def read_policy(session: SessionDep, principal: CommunityManager, community_id: int):
    return flows.read_policy(session, community_id)


@router.put("/communities/{community_id}/ledger/policy", summary="Set the points expiry policy", response_model=PolicyPublic, responses=WRITE)
def write_policy(session: SessionDep, principal: CommunityManager, community_id: int, data: PolicyPublic):
    return flows.write_policy(session, principal, community_id, data)


@router.post("/communities/{community_id}/ledger/expiry-runs", summary="Run points expiry now (idempotent)", response_model=ExpiryRunResult, responses=WRITE)
def run_expiry(session: SessionDep, principal: CommunityManager, community_id: int):
    return flows.run_expiry(session, principal, community_id)


@router.get("/communities/{community_id}/ledger/verify", summary="Recompute balances from postings and report differences", response_model=VerifyReport, responses=READ)
def verify(session: SessionDep, principal: CommunityManager, community_id: int):
    return flows.verify(session, community_id)
