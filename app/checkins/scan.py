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
from app.kit.errors import DomainError
from app.kit.sql import compact_sql, json_document
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
    """The household code of a genuine door-plate payload, None for a forged or altered one."""
    try:
        return places.parse_qr_payload(payload)
    except DomainError:
        return None


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
    return {
        "client_id": scan.client_id,
        "community_id": community_id,
        "own": list(principal.household_ids),
        "code": public_code(scan.payload),
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
COLUMNS = """n integer, client_id text, community_id bigint, own bigint[], code text, setup_reason text,
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
-- (ORDER BY: only the (community, client id) index gives that order; a generic plan made while the
-- table was empty once took the (community, time) index and read every check-in of the community.)
-- A client id sent before: by this user, the scan is answered as it was then (a replay); by another
-- user, it is refused (client_id_taken) and that user's scan stays theirs.
prior AS (
    SELECT s.n, k.id, k.status, k.reject_reason, k.household_id, k.points, k.window_id, k.window_date,
           k.recorded_by = s.user_id AS mine
    FROM s CROSS JOIN LATERAL (SELECT * FROM checkin WHERE community_id = s.community_id AND client_id = s.client_id
        ORDER BY community_id, client_id LIMIT 1) AS k
),
-- Each new scan's household and the reason to refuse it (HOUSEHOLD, REFUSAL). Looked up by index for
-- each scan: LATERAL … LIMIT keeps the planner, which guesses 100 scans and plans once per connection,
-- from hashing whole tables.
judged AS (
    SELECT s.*, {HOUSEHOLD} AS household_id, {REFUSAL} AS reason
    FROM s {HOUSEHOLD_JOIN}
    WHERE NOT EXISTS (SELECT 1 FROM prior WHERE prior.n = s.n)
),
-- One check per household per window and day, whatever its grade: the window's first check, stored
-- already or the earliest of these scans; every other scan of the window is a duplicate of it.
slot AS (
    SELECT j.*, f.id AS first_id, f.result AS first_result,
           row_number() OVER (PARTITION BY j.household_id, j.window_id, j.day
                              ORDER BY j.reason IS NOT NULL, j.scanned_at, j.client_id) AS place
    FROM judged AS j
    LEFT JOIN LATERAL (SELECT id, result FROM checkin WHERE j.reason IS NULL AND household_id = j.household_id
        AND window_id = j.window_id AND window_date = j.day AND status = 'accepted'
        ORDER BY household_id, window_id, window_date LIMIT 1) AS f ON true
),
decided AS (
    SELECT t.*, CASE WHEN t.reason IS NOT NULL THEN 'rejected'
                     WHEN t.first_id IS NOT NULL OR t.place > 1 THEN 'duplicate'
                     ELSE 'accepted' END AS status
    FROM slot AS t
),
asked AS (SELECT n AS id, household_id, day, points FROM decided WHERE status = 'accepted' AND points > 0),
{daily_caps_sql("asked")},
c AS (
    INSERT INTO checkin (community_id, client_id, household_id, station_id, window_id, window_date, category, result,
                         reasons, weight_g, photo_ref, status, reject_reason, credited, points, scanned_at,
                         recorded_at, recorded_by)
    SELECT d.community_id, d.client_id, d.household_id, d.station_id,
           CASE WHEN d.reason IS NULL THEN d.window_id END, CASE WHEN d.reason IS NULL THEN d.day END,
           d.category, d.result, d.reasons, d.weight_g, d.photo_ref, d.status, d.reason,
           d.status = 'accepted' AND d.result = 'correct', COALESCE(k.points, 0), d.scanned_at, d.posted_at, d.user_id
    FROM decided AS d LEFT JOIN capped AS k ON k.id = d.n
    ORDER BY d.household_id, d.n
    ON CONFLICT DO NOTHING
    RETURNING id, community_id, client_id, household_id, window_id, window_date, result, status, points
),
credit AS (
    SELECT c.household_id, c.community_id, s.issued_account_id, c.points, 'checkin:' || c.id AS idempotency_key,
           '{Source.checkin.value}' AS ledger_source, s.memo, s.scanned_at AS occurred_at, s.posted_at,
           s.weight_g::bigint AS quantity_g, s.category, c.id AS position
    FROM c JOIN s ON s.community_id = c.community_id AND s.client_id = c.client_id
    WHERE c.points > 0
),
{credits_ctes("credit")}
-- A scan decided but not written (a concurrent statement wrote its client id or took its slot after
-- this snapshot) fails the whole statement, so that nothing of it stays: division by zero.
SELECT s.n, CASE WHEN p.mine IS NOT FALSE THEN COALESCE(p.id, c.id) END,
       CASE WHEN p.mine IS NOT FALSE THEN COALESCE(p.status, c.status) ELSE 'rejected' END,
       CASE WHEN p.mine IS NOT FALSE THEN COALESCE(p.reject_reason, d.reason) ELSE 'client_id_taken' END,
       CASE WHEN p.mine IS NOT FALSE THEN COALESCE(p.household_id, c.household_id) END,
       CASE WHEN p.mine IS NOT FALSE THEN COALESCE(p.points, c.points) ELSE 0 END,
       COALESCE(p.mine, false), f.id, f.result
FROM s LEFT JOIN prior AS p ON p.n = s.n
LEFT JOIN c ON c.community_id = s.community_id AND c.client_id = s.client_id
LEFT JOIN decided AS d ON d.n = s.n
LEFT JOIN LATERAL (
    SELECT d.first_id AS id, d.first_result AS result WHERE d.first_id IS NOT NULL
    UNION ALL
    SELECT o.id, o.result FROM c AS o WHERE d.first_id IS NULL AND o.status = 'accepted'
        AND o.household_id = c.household_id AND o.window_id = c.window_id AND o.window_date = c.window_date
    UNION ALL
    SELECT o.id, o.result FROM checkin AS o WHERE p.id IS NOT NULL AND o.status = 'accepted'
        AND o.household_id = p.household_id AND o.window_id = p.window_id AND o.window_date = p.window_date
    LIMIT 1
) AS f ON COALESCE(p.status, c.status) = 'duplicate' AND p.mine IS NOT FALSE
WHERE 1 / ((SELECT count(*) FROM c) = (SELECT count(*) FROM decided))::integer = 1
ORDER BY s.n""")


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


def by_cap(plans: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The plans in groups a statement can take: those that earn under one daily cap each (the rules
    rarely change within an upload), the others with the first group."""
    groups: dict[int | None, list[dict[str, Any]]] = {}
    for p in plans:
        key = p["cap"] if p["points"] > 0 else next(iter(groups), None)
        groups.setdefault(key, []).append(p)
    return list(groups.values())


_HOUSEHOLDS_SQL = compact_sql(f"""WITH s AS (SELECT * FROM json_to_recordset(%(scans)s::json)
    AS s(n integer, code text, community_id bigint, own bigint[], setup_reason text))
SELECT s.n, {HOUSEHOLD}, {REFUSAL} FROM s {HOUSEHOLD_JOIN} ORDER BY s.n""")


def households_for_payloads(
    session: Session, principal: Principal, community_id: int, payloads: Sequence[str]
) -> dict[str, int | RejectReason]:
    """Payload → the household a field act (compost drop, weigh-in) credits, or the reason a scan of it
    is refused (forged, unknown, not allowed): the scan statement's own definition, one query."""
    unique = list(dict.fromkeys(payloads))
    if not unique:
        return {}
    own = list(principal.household_ids)
    scans = [{"n": n, "code": public_code(p), "community_id": community_id, "own": own, "setup_reason": None} for n, p in enumerate(unique)]
    rows = session.connection().exec_driver_sql(_HOUSEHOLDS_SQL, {"scans": json_document(scans)}).all()
    return {unique[n]: RejectReason(reason) if reason else household for n, household, reason in rows}


def write_in_session(session: Session, plans: Sequence[dict[str, Any]]) -> list[Row]:
    """The scans written in the caller's transaction (the demo generator's replay), in statements of one
    daily cap each; a statement that lost a race is rolled back to its savepoint and run again."""
    from psycopg import errors
    from sqlalchemy.exc import DBAPIError

    from app.kit.errors import Conflict

    out: list[Row] = []
    for group in by_cap(plans):
        for _ in range(ATTEMPTS):
            try:
                with session.begin_nested():
                    rows = session.connection().exec_driver_sql(SQL, parameters(group)).all()
                break
            except DBAPIError as exc:
                if not isinstance(exc.orig, errors.DivisionByZero | errors.DeadlockDetected):
                    raise
        else:
            raise Conflict("scan_conflict", "扫码记录冲突，请重试", "Scan conflicts with another one, retry")
        out += [tuple(r[1:]) for r in rows]  # type: ignore[misc]
    return out
