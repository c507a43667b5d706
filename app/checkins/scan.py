"""The bin-side scan, decided in one place: whether a door-plate scan is accepted, a duplicate, refused
(and why) or a replay, and what it earns. Every entry point — a single scan (coalesced with the scans
arriving beside it, app.checkins.writer), an offline batch, the demo generator's replay — goes through
`plan` and the one statement `SQL`.

`plan` decides what needs no database, from the community's cached setup and rules: the signed code
(forged or not), the station, the time (in the future, too old), the drop-off window and its local
day, the points the rules in force at the scan's time give its grade (`earned`) and the daily cap in
force. The statement decides the rest, for any number of scans at once, and writes them:

- a client id seen before is a replay, answered as it was the first time — or, sent by another user,
  refused (`client_id_taken`): never someone else's answer;
- the household behind the code: unknown, another community's, moved out, or the scanner's own
  (each refused with its own reason);
- one check per household per window and day, whatever its grade: the first is accepted, every other
  scan of that window is a duplicate of it (answered with the first check's id and grade). A re-grade
  after the resident re-sorted on the spot amends the first check (`service.amend_checkin`);
- an accepted correct check earns its points, cut to what the household's daily cap leaves
  (rules.daily_caps_sql), credited through the ledger (ledger.fragments.credits_ctes).

The database referees races: (community, client id) and the accepted check of a (household, window,
day) are unique. A statement that cannot write every scan it decided (a concurrent statement wrote the
same client id or took the slot after this one's snapshot) leaves nothing, by a division by zero, and
is run again: the next snapshot sees what the other wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from app.checkins.models import CATEGORY_ZH, CheckResult, RejectReason, ScanIn
from app.checkins.setup import ScanContext
from app.identity.auth import Principal
from app.kit import throttle
from app.kit.sql import compact_sql, json_document
from app.kit.throttle import Limit
from app.ledger.fragments import credits_ctes
from app.ledger.models import Source
from app.places import service as places
from app.rules.service import Rules, daily_caps_sql

FUTURE_SKEW = timedelta(minutes=5)  # phones' clocks drift; a little ahead is tolerated
MAX_AGE = timedelta(hours=72)  # an offline queue older than this is not credited
ATTEMPTS = 3  # runs of a statement that lost a race before its scans are written one by one


def earned(in_force: Rules, result: str) -> int:
    """The points a check of this grade earns under the rules in force (before the daily cap)."""
    return in_force.checkin_correct if result == CheckResult.correct else 0


def credit_memo(category: str) -> str:
    """The passbook line of a credited check-in."""
    return f"桶边督导 {CATEGORY_ZH.get(category, category)} 分类正确"


def public_code(payload: str) -> str | None:
    """The household code of a genuine door-plate payload or of a typed hand-entry code (手工输入码,
    places.read_code), None for a forged or altered payload."""
    return places.read_code(payload)[0]


def typed(payload: str) -> bool:
    """Whether the volunteer typed the hand-entry code rather than scanning the QR code."""
    return places.read_code(payload)[1]


# Typed codes can be guessed where a signed payload cannot: a volunteer's typed codes that name no
# household are counted, and after this many in the window their typed codes are refused a while.
TYPED_CODES = Limit("typed_code:staff", 10, timedelta(minutes=10), timedelta(minutes=5))


def refuse_typing_if_locked(session: Session, principal: Principal) -> None:
    """429 (Retry-After) when the volunteer is locked out of typing codes."""
    throttle.refuse_if_locked(session, [TYPED_CODES.key(str(principal.user_id))])


def count_typing_misses(session: Session, principal: Principal, misses: int) -> None:
    """Count typed codes that named no household against the volunteer (committed)."""
    if misses:
        throttle.failed(session, [(TYPED_CODES, str(principal.user_id))] * min(misses, TYPED_CODES.attempts))


def plan(ctx: ScanContext, principal: Principal, community_id: int, scan: ScanIn, now: datetime) -> dict[str, Any]:
    """The statement's parameters for one scan: everything decided without the database."""
    setup = ctx.setup
    scanned_at = scan.scanned_at or now
    setup_reason: RejectReason | None = None
    window = local = None
    if scan.station_id not in setup.stations:
        setup_reason = RejectReason.unknown_station
    elif scanned_at > now + FUTURE_SKEW:
        setup_reason = RejectReason.in_future
    elif scanned_at < now - MAX_AGE:
        setup_reason = RejectReason.too_old
    else:
        local = scanned_at.astimezone(setup.tz)  # only now: far-off times would overflow
        window = setup.window_at(local)
        if window is None:
            setup_reason = RejectReason.outside_window
    in_force = ctx.rules_at(scanned_at) if setup_reason is None else None
    points = earned(in_force, scan.result) if in_force is not None else 0
    category = scan.category.value
    code, typed_in = places.read_code(scan.payload)
    return {
        "client_id": scan.client_id,
        "community_id": community_id,
        "own": list(principal.household_ids),
        "code": code,
        "typed": typed_in,
        "setup_reason": setup_reason.value if setup_reason else None,
        "station_id": scan.station_id if scan.station_id in setup.stations else None,
        "window_id": window.id if window else None,
        "day": local.date() if window and local else None,
        "points": points,
        "cap": in_force.daily_cap if in_force is not None and points > 0 else None,
        "category": category,
        "result": scan.result.value,
        "reasons": [r.value for r in scan.reasons],
        "weight_g": scan.weight_g,
        "photo_ref": scan.photo_ref,
        "scanned_at": scanned_at,
        "posted_at": now,
        "user_id": principal.user_id,
        "memo": credit_memo(category),
        "issued_account_id": ctx.issued_account_id,
    }


# The per-scan values the statement reads (json_to_recordset's column list): each scan is one object
# of the one JSON document the statement takes — one parameter, however many scans.
COLUMNS = """n integer, client_id text, community_id bigint, own bigint[], code text, typed boolean, setup_reason text,
station_id bigint, window_id bigint, day date, points integer, category text, result text, reasons json,
weight_g integer, photo_ref text, scanned_at timestamptz, posted_at timestamptz, user_id bigint, memo text,
issued_account_id bigint"""

# Whose door plate was scanned, and whether the scanner may credit it: the one definition, read by the
# scan statement and by the other field acts (compost drops, weigh-ins: `households_for_payloads`).
# `s` has the columns code (None: forged), community_id, own (the scanner's households) and
# setup_reason (what else refuses the scan, or NULL); the refusals come in this order.
HOUSEHOLD_JOIN = "LEFT JOIN LATERAL (SELECT id, community_id, status FROM household WHERE public_code = s.code LIMIT 1) AS hh ON true"
HOUSEHOLD = "CASE WHEN hh.community_id = s.community_id THEN hh.id END"
REFUSAL = """CASE WHEN s.code IS NULL THEN 'forged_code'
    WHEN hh.id IS NULL THEN 'unknown_code'
    WHEN hh.community_id <> s.community_id THEN 'other_community'
    WHEN hh.status <> 'active' THEN 'moved_out'
    WHEN hh.id = ANY(s.own) THEN 'own_household'
    ELSE s.setup_reason END"""

# The statement's answer per scan, in the order of `n`.
Row = tuple[int, str, str | None, int | None, int, bool, int | None, str | None]  # id, status, reason, household, points, replayed, first id, first grade


def _sql() -> str:
    return compact_sql(f"""WITH s AS (SELECT * FROM json_to_recordset(%(scans)s::json) AS s({COLUMNS})),
-- Each scan's household, the reason to refuse it (HOUSEHOLD, REFUSAL) and its window's first check,
-- stored already: then it is a duplicate of that check. (A statement holds at most one scan of a
-- household: `statements`.) Looked up by index for each scan: LATERAL … LIMIT keeps the planner, which
-- guesses 100 scans and plans once per connection, from hashing whole tables.
d AS (
    SELECT s.*, h.household_id, h.reason, f.id AS first_id, f.result AS first_result,
           CASE WHEN h.reason IS NOT NULL THEN 'rejected' WHEN f.id IS NOT NULL THEN 'duplicate' ELSE 'accepted' END AS status
    FROM s {HOUSEHOLD_JOIN}
    CROSS JOIN LATERAL (SELECT {HOUSEHOLD} AS household_id, {REFUSAL} AS reason) AS h
    LEFT JOIN LATERAL (SELECT id, result FROM checkin WHERE h.reason IS NULL AND household_id = h.household_id
        AND window_id = s.window_id AND window_date = s.day AND status = 'accepted' LIMIT 1) AS f ON true
),
-- What the daily cap counts: accepted scans that earn, but not a replay (its client id is stored: it
-- will not be written, and must not use the cap).
asked AS (
    SELECT n AS id, household_id, day, points FROM d WHERE status = 'accepted' AND points > 0
    AND (%(cap)s::integer IS NULL OR NOT EXISTS (SELECT FROM checkin AS k WHERE k.community_id = d.community_id AND k.client_id = d.client_id))
),
{daily_caps_sql("asked")},
c AS (
    INSERT INTO checkin (community_id, client_id, household_id, station_id, window_id, window_date, category, result,
                         reasons, weight_g, photo_ref, status, reject_reason, credited, points, scanned_at,
                         recorded_at, recorded_by, typed)
    SELECT d.community_id, d.client_id, d.household_id, d.station_id,
           CASE WHEN d.reason IS NULL THEN d.window_id END, CASE WHEN d.reason IS NULL THEN d.day END,
           d.category, d.result, d.reasons, d.weight_g, d.photo_ref, d.status, d.reason,
           d.status = 'accepted' AND d.result = 'correct', COALESCE(k.points, 0), d.scanned_at, d.posted_at, d.user_id, d.typed
    FROM d LEFT JOIN capped AS k ON k.id = d.n
    ORDER BY d.household_id, d.n
    ON CONFLICT DO NOTHING
    RETURNING id, client_id, household_id, status, points
),
credit AS (
    SELECT c.household_id, d.community_id, d.issued_account_id, c.points, 'checkin:' || c.id AS idempotency_key,
           '{Source.checkin.value}' AS ledger_source, d.memo, d.scanned_at AS occurred_at, d.posted_at,
           d.weight_g::bigint AS quantity_g, d.category, c.id AS position
    FROM c JOIN d ON d.client_id = c.client_id
    WHERE c.points > 0
),
{credits_ctes("credit")}
-- A scan not written is a replay: its client id sent before, by this user (answered as it was then,
-- a duplicate with its window's first check) or by another (refused, client_id_taken: never someone
-- else's answer). A scan neither written nor a replay (a concurrent statement wrote its client id or
-- took its slot after this snapshot) fails the whole statement, so that nothing of it stays: division
-- by zero; it is run again and its next snapshot sees what the other wrote.
SELECT d.n, COALESCE(c.id, CASE WHEN p.mine THEN p.id END),
       CASE WHEN c.id IS NOT NULL THEN c.status WHEN p.mine THEN p.status ELSE 'rejected' END,
       CASE WHEN c.id IS NOT NULL THEN d.reason WHEN p.mine THEN p.reject_reason ELSE 'client_id_taken' END,
       COALESCE(c.household_id, CASE WHEN p.mine THEN p.household_id END),
       COALESCE(c.points, CASE WHEN p.mine THEN p.points END, 0),
       COALESCE(p.mine, false),
       CASE WHEN c.status = 'duplicate' THEN d.first_id ELSE pf.id END,
       CASE WHEN c.status = 'duplicate' THEN d.first_result ELSE pf.result END
FROM d LEFT JOIN c ON c.client_id = d.client_id
LEFT JOIN LATERAL (SELECT k.id, k.status, k.reject_reason, k.household_id, k.points, k.window_id, k.window_date,
        k.recorded_by = d.user_id AS mine
    FROM checkin AS k WHERE c.id IS NULL AND k.community_id = d.community_id AND k.client_id = d.client_id LIMIT 1) AS p ON true
LEFT JOIN LATERAL (SELECT o.id, o.result FROM checkin AS o WHERE p.mine AND p.status = 'duplicate' AND o.status = 'accepted'
        AND o.household_id = p.household_id AND o.window_id = p.window_id AND o.window_date = p.window_date LIMIT 1) AS pf ON true
WHERE 1 / (c.id IS NOT NULL OR p.id IS NOT NULL)::integer = 1
ORDER BY d.n""")


SQL = _sql()
# The same text with PostgreSQL's own placeholders, for a raw cursor: psycopg caches its parsing of
# named placeholders only for statements up to 4 KiB, and re-parsing this one cost ~5 % of a
# check-in's CPU.
RAW_SQL = SQL.replace("%(scans)s", "$1").replace("%(cap)s", "$2")


def raw_parameters(plans: Sequence[dict[str, Any]]) -> tuple[str, int | None]:
    """`parameters` in RAW_SQL's order."""
    named = parameters(plans)
    return named["scans"], named["cap"]


def parameters(plans: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The statement's parameters: the scans as one JSON document (numbered from 1), and the one daily
    cap of the scans that earn (`by_cap` gives each statement scans of one cap)."""
    return {
        "scans": json_document([p | {"n": n} for n, p in enumerate(plans, 1)]),
        "cap": next((p["cap"] for p in plans if p["points"] > 0), None),
    }


def statements(plans: Sequence[dict[str, Any]]) -> list[list[int]]:
    """The plans (by index) in the statements that write them: those that earn under one daily cap each
    (the rules rarely change within an upload; the others go with the first group), and at most one
    scan of a household each, a household's scans in the order they were made (the first is its
    window's check, the next statement finds it stored and answers a duplicate). The coalescing writer
    composes its statements by the same two rules."""
    groups: dict[int | None, list[list[int]]] = {}
    rounds: dict[tuple[int | None, str], int] = {}
    for i in sorted(range(len(plans)), key=lambda i: (plans[i]["scanned_at"], plans[i]["client_id"])):
        p = plans[i]
        key = p["cap"] if p["points"] > 0 else next(iter(groups), None)
        group = groups.setdefault(key, [])
        place = 0
        if p["code"] is not None:
            place = rounds.get((key, p["code"]), 0)
            rounds[(key, p["code"])] = place + 1
        if place == len(group):
            group.append([])
        group[place].append(i)
    return [sorted(statement) for group in groups.values() for statement in group]


_HOUSEHOLDS_SQL = compact_sql(f"""WITH s AS (SELECT * FROM json_to_recordset(%(scans)s::json)
    AS s(n integer, code text, community_id bigint, own bigint[], setup_reason text))
SELECT s.n, {HOUSEHOLD}, {REFUSAL} FROM s {HOUSEHOLD_JOIN} ORDER BY s.n""")


def households_for_payloads(
    session: Session, principal: Principal, community_id: int, payloads: Sequence[str]
) -> dict[str, int | RejectReason]:
    """Payload (scanned or typed) → the household a field act (compost drop, weigh-in, resolving a scan)
    credits, or the reason a scan of it is refused (forged, unknown, not allowed): the scan statement's
    own definition, one query. Typed codes are throttled per volunteer (TYPED_CODES)."""
    unique = list(dict.fromkeys(payloads))
    if not unique:
        return {}
    if any(typed(p) for p in unique):
        refuse_typing_if_locked(session, principal)
    own = list(principal.household_ids)
    scans = [{"n": n, "code": public_code(p), "community_id": community_id, "own": own, "setup_reason": None} for n, p in enumerate(unique)]
    rows = session.connection().exec_driver_sql(_HOUSEHOLDS_SQL, {"scans": json_document(scans)}).all()
    found = {unique[n]: RejectReason(reason) if reason else household for n, household, reason in rows}
    count_typing_misses(session, principal, sum(1 for p in unique if found[p] == RejectReason.unknown_code and typed(p)))
    return found


def write_in_session(session: Session, plans: Sequence[dict[str, Any]]) -> list[Row]:
    """The scans written in the caller's transaction (the demo generator's replay), in statements of one
    daily cap each; a statement that lost a race is rolled back to its savepoint and run again."""
    from psycopg import errors
    from sqlalchemy.exc import DBAPIError

    from app.kit.errors import Conflict

    out: list[Row | None] = [None] * len(plans)
    for statement in statements(plans):
        for _ in range(ATTEMPTS):
            try:
                with session.begin_nested():
                    rows = session.connection().exec_driver_sql(SQL, parameters([plans[i] for i in statement])).all()
                break
            except DBAPIError as exc:
                if not isinstance(exc.orig, errors.DivisionByZero | errors.DeadlockDetected):
                    raise
        else:
            raise Conflict("scan_conflict", "扫码记录冲突，请重试", "Scan conflicts with another one, retry")
        for i, row in zip(statement, rows, strict=True):
            out[i] = tuple(row[1:])  # type: ignore[assignment]
    return out  # type: ignore[return-value]
