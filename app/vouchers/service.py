"""Points cheques (积分支票): issue, claim once, expire.

Issuing posts issued −N → vouchers +N (the outstanding liability); claiming posts vouchers −N →
household +N; expiry posts vouchers −N → expired +N. The status flips by one conditional UPDATE, so
two clerks, two phones or two expiry jobs at once settle a voucher exactly once.

The claim code is 12 characters from an alphabet without look-alikes (60 bits), derived from a
server secret and the issue's idempotency key: a retried issue shows the same code to the same
issuer, and nothing but a keyed hash of it is stored.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import Session, select

from app.core.config import get_settings
from app.core.db import utcnow
from app.kit.errors import BadRequest, Conflict, not_found
from app.kit.pagination import page_by_id
from app.ledger import service as ledger
from app.ledger.models import Source, SystemAccount
from app.places.models import Household, HouseholdStatus
from app.vouchers.models import Voucher, VoucherClaimed, VoucherIssued, VoucherPublic, VoucherStatus

VOUCHER = Voucher.__table__
ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: typed by hand from paper
CODE_LENGTH = 12




def _secret() -> bytes:
    return hmac.new(get_settings().resolved_jwt_secret().encode(), b"points-voucher", hashlib.sha256).digest()


def _code_for(community_id: int, idempotency_key: str) -> str:
    mac = hmac.new(_secret(), f"code:{community_id}:{idempotency_key}".encode(), hashlib.sha256).digest()
    n = int.from_bytes(mac[:8], "big")
    chars = []
    for _ in range(CODE_LENGTH):
        n, r = divmod(n, len(ALPHABET))
        chars.append(ALPHABET[r])
    return "".join(chars)


def normalize_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def code_hash(code: str) -> str:
    return hmac.new(_secret(), f"hash:{normalize_code(code)}".encode(), hashlib.sha256).hexdigest()


def pretty(code: str) -> str:
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def label_svg(voucher: Voucher, code: str, community_name: str) -> str:
    """A small printable label: QR of the claim code, the code in text, points and expiry date."""
    import io

    import segno

    qr = segno.make(f"JFV1:{code}", error="q", micro=False)
    buf = io.BytesIO()
    qr.save(buf, kind="svg", scale=4, border=2, xmldecl=False, svgns=True)
    qr_svg = buf.getvalue().decode()
    size = qr.symbol_size(scale=4, border=2)[0]
    width = max(size, 220)
    from xml.sax.saxutils import escape

    lines = [
        f"{escape(community_name)} 积分支票",
        f"{voucher.points} 积分",
        f"领取码 {pretty(code)}",
        f"有效期至 {voucher.expires_at.date().isoformat()}",
    ]
    text = "".join(
        f'<text x="{width // 2}" y="{size + 18 + 18 * i}" font-size="14" text-anchor="middle" font-family="sans-serif">{line}</text>'
        for i, line in enumerate(lines)
    )
    inner = qr_svg.split(">", 1)[1].rsplit("</svg>", 1)[0]
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{size + 24 + 18 * len(lines)}">'
        f'<g transform="translate({(width - size) // 2},0)">{inner}</g>{text}</svg>'
    )


def _public(voucher: Voucher) -> VoucherPublic:
    return VoucherPublic.model_validate(voucher, from_attributes=True)


def issue_voucher(
    session: Session,
    *,
    community_id: int,
    points: int,
    idempotency_key: str,
    actor_user_id: int | None,
    memo: str = "",
    valid_days: int = 90,
    now: datetime | None = None,
) -> tuple[Voucher, str, bool]:
    """Issue a points cheque. Does not commit (the caller commits it with its own rows).

    Returns (voucher, claim code, replayed). The same community and key return the first voucher
    and its code, and post nothing. Callers from other domains (walk-in recycling weigh-ins) pass a
    key derived from their record, e.g. f"weighin:{id}", and store the returned code's hint, not the code.
    """
    if points <= 0:
        raise BadRequest("invalid_points", "积分必须为正数", "Points must be positive", "points")
    now = now or utcnow()
    code = _code_for(community_id, idempotency_key)
    row = {
        "community_id": community_id,
        "points": points,
        "code_hash": code_hash(code),
        "code_hint": code[-4:],
        "status": VoucherStatus.outstanding.value,
        "memo": memo[:100],
        "idempotency_key": idempotency_key,
        "issued_by_user_id": actor_user_id,
        "issued_at": now,
        "expires_at": now + timedelta(days=valid_days),
    }
    voucher_id = session.execute(
        pg_insert(VOUCHER)
        .values(row)
        .on_conflict_do_nothing(index_elements=["community_id", "idempotency_key"])
        .returning(VOUCHER.c.id)
    ).scalar()
    if voucher_id is None:
        voucher = session.exec(
            select(Voucher).where(Voucher.community_id == community_id, Voucher.idempotency_key == idempotency_key)
        ).one()
        if voucher.issued_by_user_id != actor_user_id:
            # Only the issuer may see the code again: anyone else replaying the key could claim it.
            raise Conflict("idempotency_key_reused", "该请求编号已被他人使用", "This idempotency key was used by someone else", "idempotency_key")
        return voucher, code, True
    posted = ledger.post(
        session,
        community_id=community_id,
        idempotency_key=f"voucher:{voucher_id}:issue",
        source=Source.voucher,
        memo=f"签发积分支票 {memo}".strip()[:200],
        lines=[ledger.Line(-points, system=SystemAccount.issued), ledger.Line(points, system=SystemAccount.vouchers)],
        occurred_at=now,
        actor_user_id=actor_user_id,
    )
    session.execute(update(VOUCHER).where(VOUCHER.c.id == voucher_id).values(issue_entry_id=posted.entry_id))
    return session.get(Voucher, voucher_id), code, False


def issued_public(voucher: Voucher, code: str, replayed: bool, community_name: str) -> VoucherIssued:
    return VoucherIssued.model_validate(
        voucher,
        from_attributes=True,
        update={"claim_code": pretty(code), "label_svg": label_svg(voucher, code, community_name), "replayed": replayed},
    )


def _bad_code() -> Conflict:
    return Conflict("voucher_invalid", "领取码无效、已被领取或已过期", "The code is invalid, already claimed or expired", "code")


def claim(session: Session, household: Household, code: str, *, actor_user_id: int | None, now: datetime | None = None) -> VoucherClaimed:
    """Claim a voucher into a household's passbook. Does not commit. A household claiming its own
    voucher again gets the first result back (a retried request)."""
    now = now or utcnow()
    if household.status != HouseholdStatus.active:
        raise Conflict("household_inactive", "该住户已迁出", "This household has moved out", "household_id")
    digest = code_hash(code)
    won = session.execute(
        update(VOUCHER)
        .where(
            VOUCHER.c.code_hash == digest,
            VOUCHER.c.community_id == household.community_id,
            VOUCHER.c.status == VoucherStatus.outstanding,
            VOUCHER.c.expires_at > now,
        )
        .values(status=VoucherStatus.claimed.value, claimed_household_id=household.id, claimed_by_user_id=actor_user_id, settled_at=now)
        .returning(VOUCHER.c.id, VOUCHER.c.points)
    ).first()
    if won is None:
        voucher = session.exec(select(Voucher).where(Voucher.code_hash == digest)).first()
        if (
            voucher is not None
            and voucher.status == VoucherStatus.claimed
            and voucher.claimed_household_id == household.id
            and voucher.settle_entry_id
        ):
            return VoucherClaimed(
                voucher_id=voucher.id, household_id=household.id, points=voucher.points,
                balance_after=ledger.household_balance_after(session, voucher.settle_entry_id), replayed=True,
            )
        raise _bad_code()
    voucher_id, points = won
    posted = ledger.post(
        session,
        community_id=household.community_id,
        idempotency_key=f"voucher:{voucher_id}:claim",
        source=Source.voucher,
        memo="积分支票入账",
        lines=[ledger.Line(-points, system=SystemAccount.vouchers), ledger.Line(points, household_id=household.id)],
        household_id=household.id,
        occurred_at=now,
        actor_user_id=actor_user_id,
    )
    session.execute(update(VOUCHER).where(VOUCHER.c.id == voucher_id).values(settle_entry_id=posted.entry_id))
    return VoucherClaimed(voucher_id=voucher_id, household_id=household.id, points=points, balance_after=posted.balance_after)


def expire_due(session: Session, community_id: int | None = None, *, now: datetime | None = None, batch: int = 200) -> tuple[int, int]:
    """Expire unclaimed vouchers past their date: vouchers −N → expired +N. Commits per voucher;
    safe to repeat and to run on two instances at once. Returns (vouchers expired, points)."""
    now = now or utcnow()
    count = points = 0
    last_id = 0
    while True:
        stmt = select(VOUCHER.c.id).where(
            VOUCHER.c.status == VoucherStatus.outstanding, VOUCHER.c.expires_at <= now, VOUCHER.c.id > last_id
        )
        if community_id is not None:
            stmt = stmt.where(VOUCHER.c.community_id == community_id)
        due = session.exec(stmt.order_by(VOUCHER.c.id).limit(batch)).all()
        session.commit()
        if not due:
            break
        for voucher_id in due:
            last_id = voucher_id
            row = session.execute(
                update(VOUCHER)
                .where(VOUCHER.c.id == voucher_id, VOUCHER.c.status == VoucherStatus.outstanding, VOUCHER.c.expires_at <= now)
                .values(status=VoucherStatus.expired.value, settled_at=now)
                .returning(VOUCHER.c.community_id, VOUCHER.c.points)
            ).first()
            if row is None:
                session.rollback()
                continue
            cid, pts = row
            posted = ledger.post(
                session,
                community_id=cid,
                idempotency_key=f"voucher:{voucher_id}:expire",
                source=Source.expiry,
                memo="积分支票过期未领取",
                lines=[ledger.Line(-pts, system=SystemAccount.vouchers), ledger.Line(pts, system=SystemAccount.expired)],
                occurred_at=now,
            )
            session.execute(update(VOUCHER).where(VOUCHER.c.id == voucher_id).values(settle_entry_id=posted.entry_id))
            session.commit()
            count += 1
            points += pts
    return count, points


def cancel(session: Session, voucher_id: int, *, reason: str, actor_user_id: int | None, now: datetime | None = None) -> int | None:
    """Cancel a voucher because the act that earned it was corrected. Does not commit.

    Every movement is undone by new entries (reversals), never by edits: an outstanding voucher's
    issue is reversed (vouchers −N → issued +N); a claimed one first has its claim reversed
    (household −N → vouchers +N, only if the household still has the points), an expired one its
    expiry. The status flips by one conditional UPDATE from the status read, so a claim or an expiry
    racing the cancellation is either seen and undone, or refused. Returns the entry reversing the
    issue (None if the voucher was already cancelled).
    """
    now = now or utcnow()
    for _ in range(5):
        current = session.execute(select(VOUCHER.c.status).where(VOUCHER.c.id == voucher_id)).scalar()
        if current is None:
            raise not_found("积分支票", "Voucher", "voucher_id")
        if current == VoucherStatus.cancelled:
            return None
        won = session.execute(
            update(VOUCHER)
            .where(VOUCHER.c.id == voucher_id, VOUCHER.c.status == current)
            .values(status=VoucherStatus.cancelled.value, settled_at=now)
            .returning(VOUCHER.c.issue_entry_id, VOUCHER.c.settle_entry_id, VOUCHER.c.claimed_household_id)
        ).first()
        if won is not None:
            break
    else:  # pragma: no cover - five status changes in a row under our feet
        raise Conflict("voucher_busy", "积分支票正在被处理，请稍后重试", "The points cheque is being processed, try again")
    issue_entry_id, settle_entry_id, household_id = won
    if settle_entry_id is not None:
        try:
            ledger.reverse(
                session, settle_entry_id, reason=reason, actor_user_id=actor_user_id, idempotency_key=f"voucher:{voucher_id}:unsettle"
            )
        except ledger.InsufficientPoints as exc:
            raise Conflict(
                "voucher_points_spent",
                "该积分支票已由住户领取，住户积分余额不足以冲回，不能冲正",
                "The household that claimed this points cheque no longer has enough points to take them back",
                household_id=household_id,
                **{k: v for k, v in (exc.extra or {}).items() if k in ("balance", "needed")},
            ) from None
    return ledger.reverse(
        session, issue_entry_id, reason=reason, actor_user_id=actor_user_id, idempotency_key=f"voucher:{voucher_id}:cancel"
    )


def get_voucher(session: Session, voucher_id: int) -> Voucher:
    voucher = session.get(Voucher, voucher_id)
    if voucher is None:
        raise not_found("积分支票", "Voucher", "voucher_id")
    return voucher


def list_vouchers(session: Session, community_id: int, status: VoucherStatus | None, cursor: str | None, limit: int):
    stmt = select(Voucher).where(Voucher.community_id == community_id)
    if status:
        stmt = stmt.where(Voucher.status == status)
    rows, next_cursor = page_by_id(session, stmt, Voucher.id, cursor, limit)
    return [_public(v) for v in rows], next_cursor


public = _public
