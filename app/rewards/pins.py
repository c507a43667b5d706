"""Household PINs (兑换密码), the consent of residents without a phone: their rules, their checking
under throttles, and staff resets that the resident confirms.

Guesses are throttled per staff member and per household (app/kit/throttle.py), so one clerk is
locked out long before a household is, and a household's lockout is short. A staff member who reset
a PIN knows it: they may never spend with it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import Session, select

from app.core.db import utcnow
from app.core.security import hash_password, verify_password
from app.kit import throttle
from app.kit.errors import BadRequest, Conflict, DomainError, Forbidden, not_found
from app.kit.throttle import Limit
from app.places.models import Household
from app.rewards.models import PinReset, PinResetConfirmation, PinResetPublic, PinResetStatus

PIN_DIGITS = 6  # new PINs; PINs of 4 to 12 digits set before keep working until changed
RESET_MINUTES = 15  # a reset waits this long for the resident's confirmation, in the same visit

# Wrong PINs (and forged consent codes) count against the staff member who typed them and the
# household they were for. A staff member is stopped first: 5 failures in an hour lock them out of
# every household for 15 minutes (then 30, 60... up to a day). A household takes 10 failures in
# 15 minutes, which one staff member cannot reach alone (at most 9 fit in any 15 minutes around their
# own lockout), and is then refused its PIN for 1 minute, doubling up to 15 minutes: never longer,
# and its consent codes are never refused. A right PIN forgets the household's failures, not the
# staff member's (a known PIN must not buy more guesses).
CONSENT_STAFF = Limit("consent:staff", default_attempts=5, window=timedelta(hours=1), lockout=timedelta(minutes=15), longest=timedelta(days=1))
CONSENT_HOUSEHOLD = Limit(
    "consent:household", default_attempts=10, window=timedelta(minutes=15), lockout=timedelta(minutes=1), longest=timedelta(minutes=15)
)

RESET = PinReset.__table__


class PinLocked(DomainError):
    status_code = 429


def _staff_locked(seconds: int) -> PinLocked:
    return PinLocked(
        "staff_locked",
        f"您输错兑换密码的次数过多，请 {seconds} 秒后再试（居民授权码不受影响）",
        f"Too many wrong PINs from you: try again in {seconds} s (consent codes still work)",
        "pin",
        retry_after=seconds,
    )


def _household_locked(seconds: int) -> PinLocked:
    return PinLocked(
        "pin_locked",
        f"该住户兑换密码错误次数过多，请 {seconds} 秒后再试，或请居民出示授权码",
        f"Too many wrong PINs for this household: try again in {seconds} s, or use the resident's consent code",
        "pin",
        retry_after=seconds,
    )


def hash_pin(pin: str) -> str:
    """The hash of a new PIN: 6 digits, not one repeated or a straight run (000000, 123456, 987654)."""
    if not (pin.isascii() and pin.isdigit() and len(pin) == PIN_DIGITS):
        raise BadRequest("invalid_pin", "兑换密码应为6位数字", "The PIN must be 6 digits", "pin")
    if {int(b) - int(a) for a, b in zip(pin, pin[1:], strict=False)} in ({0}, {1}, {-1}):
        raise BadRequest(
            "weak_pin", "兑换密码太容易猜到（如 000000、123456），请换一个", "This PIN is too easy to guess (like 000000 or 123456)", "pin"
        )
    return hash_password(pin)


def _limits(household_id: int, by_user_id: int) -> list[tuple[Limit, str]]:
    return [(CONSENT_STAFF, str(by_user_id)), (CONSENT_HOUSEHOLD, str(household_id))]


def _refuse_if_locked(session: Session, household_id: int, by_user_id: int) -> None:
    """429 with Retry-After when the staff member (first: it is about them) or the household is locked out."""
    for limit, who, locked in ((CONSENT_STAFF, str(by_user_id), _staff_locked), (CONSENT_HOUSEHOLD, str(household_id), _household_locked)):
        try:
            throttle.refuse_if_locked(session, [limit.key(who)])
        except throttle.TooManyAttempts as e:
            session.rollback()
            raise locked(e.extra["retry_after"]) from None


def check_pin(session: Session, household: Household, by_user_id: int, pin: str) -> None:
    """Verify the household PIN typed in at `by_user_id`'s counter. Checks of the same staff member
    or household take turns, each counted before the next runs, so parallel guesses get no more
    tries than sequential ones. Leaves the session committed."""
    if not household.pin_hash:
        raise Forbidden("no_pin", "该住户未设置兑换密码", "This household has no PIN set", "pin")
    if household.pin_reset_by_user_id is not None and household.pin_reset_by_user_id == by_user_id:
        raise Forbidden(
            "pin_reset_by_you",
            "该兑换密码由您重置，您不能用它兑换：请另一名工作人员办理，或请居民出示授权码",
            "You reset this household's PIN, so you cannot spend with it: another staff member must, or use the resident's consent code",
            "pin",
        )
    limits = _limits(household.id, by_user_id)
    throttle.queue(session, [limit.key(who) for limit, who in limits])
    _refuse_if_locked(session, household.id, by_user_id)
    if verify_password(household.pin_hash, pin):
        throttle.succeeded(session, [CONSENT_HOUSEHOLD.key(str(household.id))])
        session.commit()
        return
    left = throttle.failed(session, limits)
    if 0 in left.values():
        _refuse_if_locked(session, household.id, by_user_id)  # the lockout this failure began
    attempts_left = min(left.values())
    raise Forbidden(
        "wrong_pin",
        f"兑换密码错误，还可尝试{attempts_left}次",
        f"Wrong PIN; {attempts_left} attempts left",
        "pin",
        attempts_left=attempts_left,
    )


def count_forged_code(session: Session, by_user_id: int) -> None:
    """A consent code with a wrong signature is a guess too: count it against the staff member who
    presented it (not the household it names: anyone can write any household into a forgery). Commits."""
    throttle.failed(session, [(CONSENT_STAFF, str(by_user_id))])


# --- staff resets ------------------------------------------------------------------------------

def _status(reset: PinReset, now: datetime) -> PinResetStatus:
    if reset.status == PinResetStatus.pending and reset.expires_at <= now:
        return PinResetStatus.expired
    return PinResetStatus(reset.status)


def reset_public(reset: PinReset, *, replayed: bool = False) -> PinResetPublic:
    return PinResetPublic.model_validate(reset, from_attributes=True, update={"status": _status(reset, utcnow()), "replayed": replayed})


def get_reset(session: Session, reset_id: int) -> PinReset:
    reset = session.get(PinReset, reset_id)
    if reset is None:
        raise not_found("密码重置", "PIN reset", "pin_reset_id")
    return reset


def reset_by_key(session: Session, household_id: int, key: str) -> PinReset | None:
    return session.exec(select(PinReset).where(PinReset.household_id == household_id, PinReset.idempotency_key == key)).first()


def request_reset(session: Session, household: Household, key: str, pin_hash: str, by_user_id: int) -> tuple[PinReset, bool]:
    """Record a pending reset (earlier pending ones of the household are superseded). Does not commit.
    Returns (reset, replayed): a key seen before answers the first reset."""
    now = utcnow()
    reset_id = session.execute(
        pg_insert(RESET)
        .values(
            community_id=household.community_id, household_id=household.id, idempotency_key=key, pin_hash=pin_hash,
            status=PinResetStatus.pending.value, requested_by_user_id=by_user_id, requested_at=now,
            expires_at=now + timedelta(minutes=RESET_MINUTES),
        )
        .on_conflict_do_nothing(index_elements=["household_id", "idempotency_key"])
        .returning(RESET.c.id)
    ).scalar()
    if reset_id is None:  # a concurrent retry stored it first
        return reset_by_key(session, household.id, key), True
    _supersede(session, household.id, but=reset_id)
    return session.get(PinReset, reset_id), False


def confirm(session: Session, reset: PinReset, by_user_id: int, how: PinResetConfirmation) -> str | None:
    """Mark a pending reset confirmed and answer its PIN's hash, for the caller to make it the
    household's. Does not commit. None when it was confirmed already (a retry); refuses the
    requester confirming their own reset with a second staff member, and a reset that expired or
    was superseded."""
    if how == PinResetConfirmation.staff and by_user_id == reset.requested_by_user_id:
        raise Forbidden(
            "pin_reset_same_staff",
            "重置兑换密码需另一名工作人员当面确认，不能由发起人本人确认",
            "A second staff member must confirm a PIN reset in person, not the one who requested it",
            "pin_reset_id",
        )
    now = utcnow()
    pin_hash = reset.pin_hash  # as read; the UPDATE below only succeeds while it is still pending, so unchanged
    won = session.execute(
        update(RESET)
        .where(RESET.c.id == reset.id, RESET.c.status == PinResetStatus.pending, RESET.c.expires_at > now)
        .values(status=PinResetStatus.confirmed.value, confirmed_by_user_id=by_user_id, confirmed_with=how.value, confirmed_at=now,
                pin_hash="")  # the household keeps the one copy
        .returning(RESET.c.id)
    ).scalar()
    session.refresh(reset)
    if won is not None:
        return pin_hash
    if reset.status == PinResetStatus.confirmed:
        return None
    if reset.status == PinResetStatus.superseded:
        raise Conflict("pin_reset_superseded", "该密码重置已被更新的设置取代", "A later PIN change superseded this reset", "pin_reset_id")
    raise Conflict(
        "pin_reset_expired", f"该密码重置已过期（{RESET_MINUTES}分钟内未确认），请重新发起",
        f"This PIN reset expired (not confirmed within {RESET_MINUTES} minutes): request it again", "pin_reset_id",
    )


def _supersede(session: Session, household_id: int, but: int | None = None) -> None:
    stmt = update(RESET).where(RESET.c.household_id == household_id, RESET.c.status == PinResetStatus.pending)
    if but is not None:
        stmt = stmt.where(RESET.c.id != but)
    session.execute(stmt.values(status=PinResetStatus.superseded.value, pin_hash=""))


def pin_changed(session: Session, household_id: int) -> None:
    """The household has a new PIN: pending resets can no longer replace it, and the wrong guesses at
    the old one (and any lockout they caused) are forgotten. Does not commit."""
    _supersede(session, household_id)
    throttle.succeeded(session, [CONSENT_HOUSEHOLD.key(str(household_id))])
