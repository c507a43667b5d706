"""Passbook, statement, adjustments, reversals, expiry policy and runs, verification."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from app.core.db import SessionDep
from app.kit.errors import error_responses
from app.kit.formats import content, formats
from app.kit.pagination import DEFAULT_LIMIT, Cursor, Limit
from app.kit.period import End, Start, local_bounds
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
StatementFormat = formats("StatementFormat", "json", "html")


@router.get("/households/{household_id}/passbook", summary="Passbook: balance and points expiring within 30 days", response_model=Passbook, responses=READ)
def read_passbook(session: SessionDep, principal: PassbookReader, household_id: int):
    return flows.passbook_summary(session, household_id)


@router.get(
    "/households/{household_id}/statement",
    summary="Passbook statement, newest first, with running balance (`format=html`: printable, in Chinese)",
    description="`format=json` (the default) answers a page of lines; `format=html` the whole period as one printable "
    "page for residents without a smartphone (`source`, `cursor` and `limit` apply to json only).",
    response_model=StatementPage,
    # Errors stay JSON whatever the format.
    responses={**content("A page of the statement (json), or the printable statement (html)", "html"), **READ},
)
def read_statement(
    session: SessionDep,
    principal: PassbookReader,
    household_id: int,
    start: Start = None,
    end: End = None,
    source: Source | None = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
    format: StatementFormat = "json",
):
    if format == "html":
        return HTMLResponse(flows.printable_statement(session, household_id, start, end))
    household, tz = passbook.open_passbook(session, household_id)
    lo, hi = local_bounds(tz, start, end)
    balance, items, next_cursor = passbook.statement(
        session, household.id, tz, start=lo, end=hi, source=source, cursor=cursor, limit=limit
    )
    return StatementPage(household_id=household.id, balance=balance, items=items, next_cursor=next_cursor)


@router.get("/households/{household_id}/statement/totals", summary="Totals for a period: points by source, grams diverted by category", response_model=StatementTotals, responses=READ)
def read_totals(session: SessionDep, principal: PassbookReader, household_id: int, start: Start = None, end: End = None):
    household, tz = passbook.open_passbook(session, household_id)
    lo, hi = local_bounds(tz, start, end)
    return passbook.totals(session, household.id, lo, hi)


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
