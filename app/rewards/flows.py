"""Redemption workflows behind the routes: whose consent, which service calls, one commit."""

from __future__ import annotations

from sqlmodel import Session

from app.checkins import service as checkins
from app.identity.auth import Principal
from app.kit.errors import BadRequest, Forbidden, not_found
from app.places import service as places
from app.places.models import Household
from app.rewards import consent, pins, service
from app.rewards.models import (
    Consent,
    ConsentCode,
    CounterRequest,
    FulfilRequest,
    LapseRunResult,
    PinResetConfirmation,
    PinResetPublic,
    PinResetRequest,
    PinSet,
    RedemptionPublic,
    RedemptionStatus,
    ReserveRequest,
)
from app.rewards.service import _audit

# --- resident ----------------------------------------------------------------------------------

def reserve(session: Session, principal: Principal, household_id: int, data: ReserveRequest) -> RedemptionPublic:
    """A resident reserves an item from their own mini-program (their sign-in is the consent)."""
    household = places.get_household(session, household_id)
    redemption, replayed, balance = service.reserve(
        session, household, data.item_id, data.quantity, data.idempotency_key, actor_user_id=principal.user_id
    )
    session.commit()
    return service.redemption_public(session, redemption, replayed=replayed, balance_after=balance)


def new_consent_code(session: Session, household_id: int) -> ConsentCode:
    places.get_household(session, household_id)
    return consent.issue_code(household_id)


def set_pin(session: Session, principal: Principal, household_id: int, data: PinSet) -> None:
    """A resident sets their household's PIN from the mini-program (their sign-in is the consent).
    Staff cannot set one: they reset it (`reset_pin`) and the resident confirms."""
    household = places.get_household(session, household_id)
    places.set_household_pin(session, household.id, pins.hash_pin(data.pin), reset_by_user_id=None)
    pins.pin_changed(session, household.id)
    session.commit()


def reset_pin(session: Session, principal: Principal, household_id: int, data: PinResetRequest) -> PinResetPublic:
    """A staff member resets the PIN of a resident without a phone, typed in with them (密码重置).
    It becomes the household's PIN only once the resident confirms: at once with their consent code,
    else when a second staff member confirms it in person (`confirm_pin_reset`). Until then the old
    PIN and its throttles stand; the staff member who reset it may never spend with it."""
    household = places.get_household(session, household_id)
    found = pins.reset_by_key(session, household.id, data.idempotency_key)
    if found is not None:
        return pins.reset_public(found, replayed=True)
    pin_hash = pins.hash_pin(data.pin)
    if data.consent_code:
        consent.read_code(session, data.consent_code, principal.user_id)  # a forgery is counted (committed) before any write
    reset, replayed = pins.request_reset(session, household, data.idempotency_key, pin_hash, principal.user_id)
    if replayed:  # a concurrent retry stored it first
        return pins.reset_public(reset, replayed=True)
    if data.consent_code:
        consent.use_code(session, household.id, data.consent_code, principal.user_id)
    _audit(session, principal, "rewards.pin_reset", "household", household.id, household.community_id, pin_reset=reset.id)
    if data.consent_code:
        _apply_reset(session, principal, reset, PinResetConfirmation.code)
    session.commit()
    return pins.reset_public(reset)


def confirm_pin_reset(session: Session, principal: Principal, pin_reset_id: int) -> PinResetPublic:
    """A second staff member, with the resident in front of them, confirms a colleague's PIN reset."""
    reset = pins.get_reset(session, pin_reset_id)
    if not _apply_reset(session, principal, reset, PinResetConfirmation.staff):
        return pins.reset_public(reset, replayed=True)
    session.commit()
    return pins.reset_public(reset)


def _apply_reset(session: Session, principal: Principal, reset, how: PinResetConfirmation) -> bool:
    pin_hash = pins.confirm(session, reset, principal.user_id, how)
    if pin_hash is None:
        return False
    places.set_household_pin(session, reset.household_id, pin_hash, reset_by_user_id=reset.requested_by_user_id)
    pins.pin_changed(session, reset.household_id)
    _audit(session, principal, "rewards.pin_reset_confirm", "household", reset.household_id, reset.community_id,
           pin_reset=reset.id, requested_by=reset.requested_by_user_id, confirmed_with=how.value)
    return True


def household_redemptions(session: Session, household_id: int, status, cursor, limit):
    household = places.get_household(session, household_id)
    rows, next_cursor = service.list_for_household(session, household.id, status, cursor, limit)
    return [service.redemption_public(session, r) for r in rows], next_cursor


def read_redemption(session: Session, redemption_id: int) -> RedemptionPublic:
    return service.redemption_public(session, service.get_redemption(session, redemption_id))


# --- exchange point ----------------------------------------------------------------------------

def _consent(session: Session, principal: Principal, household: Household, proof) -> str:
    return consent.require_consent(session, household, principal.user_id, proof.consent_code, proof.pin)


def fulfil(session: Session, principal: Principal, redemption_id: int, data: FulfilRequest) -> RedemptionPublic:
    redemption = service.get_redemption(session, redemption_id)
    if redemption.status == RedemptionStatus.fulfilled:
        return service.redemption_public(session, redemption, replayed=True)
    household = places.get_household(session, redemption.household_id)
    how = _consent(session, principal, household, data)
    done = service.fulfil(session, redemption, actor_user_id=principal.user_id, consent=how)
    if done:
        _audit(session, principal, "rewards.fulfil", "redemption", redemption.id, redemption.community_id, points=redemption.points, consent=how)
    session.commit()
    return service.redemption_public(session, redemption, replayed=not done)


def cancel(session: Session, principal: Principal, redemption_id: int, reason: str | None) -> RedemptionPublic:
    """The resident or a clerk cancels a held redemption; points, stock and limit come back."""
    redemption = service.get_redemption(session, redemption_id)
    by_member = redemption.household_id in principal.household_ids
    if redemption.status == RedemptionStatus.cancelled:
        return service.redemption_public(session, redemption, replayed=True)
    why = (reason or "").strip() or ("居民取消" if by_member else "兑换员取消")
    done = service.release(session, redemption.id, RedemptionStatus.cancelled, actor_user_id=principal.user_id, reason=why)
    if not done:
        session.rollback()
        session.refresh(redemption)
        if redemption.status == RedemptionStatus.cancelled:
            return service.redemption_public(session, redemption, replayed=True)
        raise service._not_held(redemption)
    if not by_member:
        _audit(session, principal, "rewards.cancel", "redemption", redemption.id, redemption.community_id, reason=why)
    session.commit()
    session.refresh(redemption)
    return service.redemption_public(session, redemption)


def _counter_household(session: Session, principal: Principal, community_id: int, data: CounterRequest) -> int:
    """The household a counter request is for: the one its consent code names, or the one given, by id
    or by its door plate (a scanned QR code or the typed hand-entry code, refused as a scan would be)."""
    household_id = data.household_id
    if data.payload:
        named = checkins.households_for_scans(session, principal, community_id, [data.payload])[data.payload]
        if household_id is not None and household_id != named:
            raise BadRequest("household_mismatch", "门牌码与所选住户不一致", "The door-plate code names another household", "payload")
        household_id = named
    if data.consent_code:
        code_household = consent.code_household(session, data.consent_code, principal.user_id)
        if household_id is not None and household_id != code_household:
            raise Forbidden("consent_code_other_household", "授权码不属于该住户", "This consent code belongs to another household", "consent_code")
        household_id = code_household
    if household_id is None:
        raise BadRequest("household_required", "请指定住户或扫描居民授权码", "Give the household or scan the resident's consent code", "household_id")
    return household_id


def counter_spend(session: Session, principal: Principal, community_id: int, data: CounterRequest):
    """Spend at the counter (柜台兑换): the clerk picks items for a resident who is present and
    consents; each item is reserved and fulfilled at once, all in one transaction."""
    from app.rewards.models import Consent, CounterResult

    household = places.get_household(session, _counter_household(session, principal, community_id, data))
    if household.community_id != community_id:
        raise Forbidden("forbidden", "该住户不属于本社区", "This household is not in this community", "household_id")
    keys = [f"counter:{data.idempotency_key}:{i}" for i in range(len(data.items))]
    first = service.redemption_by_key(session, household.id, keys[0])
    if first is not None:
        found = [service.redemption_by_key(session, household.id, k) for k in keys]
        rows = [service.redemption_public(session, r, replayed=True) for r in found if r is not None]
        return CounterResult(household_id=household.id, points=sum(r.points for r in rows), redemptions=rows, replayed=True)
    how = _consent(session, principal, household, data)
    out = []
    for key, line in zip(keys, data.items, strict=True):
        redemption, _, balance = service.reserve(session, household, line.item_id, line.quantity, key, actor_user_id=principal.user_id)
        service.fulfil(session, redemption, actor_user_id=principal.user_id, consent=how)
        out.append(service.redemption_public(session, redemption, balance_after=balance))
    _audit(
        session, principal, "rewards.counter_spend", "household", household.id, community_id,
        redemptions=[r.id for r in out], points=sum(r.points for r in out), consent=Consent(how).value,
    )
    session.commit()
    return CounterResult(household_id=household.id, points=sum(r.points for r in out), redemptions=out)


def counter_spend_many(session: Session, principal: Principal, community_id: int, requests: list[CounterRequest]) -> list:
    """A queue of residents at the counter (an exchange day) in one go: for each request what
    `counter_spend` answers — its `CounterResult`, or the `DomainError` it would raise — all or
    nothing per resident, in a few set-based statements and one commit for the whole queue.
    Requests consenting with a PIN go through `counter_spend` one by one afterwards (a PIN check
    commits its own attempt counter)."""
    from app.kit.errors import DomainError
    from app.rewards.models import CounterResult

    out: list = [None] * len(requests)
    household_of: dict[int, int] = {}
    by_pin: list[int] = []
    for n, data in enumerate(requests):
        if data.pin and not data.consent_code:
            by_pin.append(n)
            continue
        try:
            household_id = _counter_household(session, principal, community_id, data)
            if not data.consent_code:
                raise consent.consent_required()
        except DomainError as e:
            out[n] = e
            continue
        household_of[n] = household_id
    households = places.get_households(session, set(household_of.values()))
    keys = {n: service.counter_keys(requests[n].idempotency_key, len(requests[n].items)) for n in household_of}
    stored = service.redemptions_by_keys(session, [(household_of[n], k) for n in household_of for k in keys[n]])

    def replayed(n: int) -> CounterResult:
        rows = [service.redemption_public(session, stored[(household_of[n], k)], replayed=True) for k in keys[n] if (household_of[n], k) in stored]
        return CounterResult(household_id=household_of[n], points=sum(r.points for r in rows), redemptions=rows, replayed=True)

    todo: list[int] = []
    for n, household_id in household_of.items():
        household = households.get(household_id)
        if household is None:
            out[n] = not_found("住户", "Household", "household_id")
        elif household.community_id != community_id:
            out[n] = Forbidden("forbidden", "该住户不属于本社区", "This household is not in this community", "household_id")
        elif (household_id, keys[n][0]) in stored:
            out[n] = replayed(n)
        else:
            todo.append(n)
    for n, error in zip(todo, consent.use_codes(session, [(household_of[n], requests[n].consent_code) for n in todo]), strict=True):
        out[n] = error
    todo = [n for n in todo if out[n] is None]
    spent = service.spend_many(
        session, community_id,
        [service.CounterSpend(households[household_of[n]], [(i.item_id, i.quantity) for i in requests[n].items], requests[n].idempotency_key, Consent.code.value) for n in todo],
        actor_user_id=principal.user_id,
    )
    consent.unuse_codes(session, [requests[n].consent_code for n, r in zip(todo, spent, strict=True) if not isinstance(r, list)])
    late = []
    for n, result in zip(todo, spent, strict=True):
        if isinstance(result, list):
            out[n] = CounterResult(household_id=household_of[n], points=sum(r.points for r in result), redemptions=result)
            _audit(
                session, principal, "rewards.counter_spend", "household", household_of[n], community_id,
                redemptions=[r.id for r in result], points=out[n].points, consent=Consent.code.value,
            )
        elif result is None:
            late.append(n)
        else:
            out[n] = result
    session.commit()
    if late:  # stored by a concurrent retry of the same requests meanwhile: answer what it stored
        stored = service.redemptions_by_keys(session, [(household_of[n], k) for n in late for k in keys[n]])
        for n in late:
            out[n] = replayed(n)
    for n in by_pin:
        try:
            out[n] = counter_spend(session, principal, community_id, requests[n])
        except DomainError as e:
            session.rollback()
            out[n] = e
    return out


def community_redemptions(session: Session, community_id: int, status, household_id, cursor, limit):
    rows, next_cursor = service.list_for_community(session, community_id, status, household_id, cursor, limit)
    return [service.redemption_public(session, r) for r in rows], next_cursor


def lapse_everywhere(session: Session, community_id: int | None = None) -> tuple[int, int, int]:
    """The scheduled clean-up (job `rewards-lapse`): release held redemptions past their time and forget
    consent codes too old to be shown again. Commits. Returns (lapsed, points released, codes forgotten)."""
    lapsed, points = service.lapse_due(session, community_id)
    forgotten = consent.prune_used_codes(session)
    session.commit()
    return lapsed, points, forgotten


def run_lapse(session: Session, principal: Principal, community_id: int) -> LapseRunResult:
    lapsed, points = service.lapse_due(session, community_id)
    _audit(session, principal, "rewards.lapse_run", "community", community_id, community_id, lapsed=lapsed, points=points)
    session.commit()
    return LapseRunResult(lapsed=lapsed, points_released=points)
