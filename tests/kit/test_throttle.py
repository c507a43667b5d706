"""The shared throttle, alone: escalation, and how it is forgotten after a quiet spell."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text
from sqlmodel import Session

from app.core.db import utcnow
from app.kit import throttle
from app.kit.throttle import Limit

LIMIT = Limit("test:escalation", default_attempts=2, window=timedelta(minutes=1), lockout=timedelta(minutes=1), longest=timedelta(minutes=10))


def _lockout(session: Session, at) -> int:
    """Minutes the key is locked out for, seen from `at` (0 when it is not)."""
    try:
        throttle.refuse_if_locked(session, [LIMIT.key("x")], now=at)
    except throttle.TooManyAttempts as e:
        return round(e.extra["retry_after"] / 60)
    return 0


def test_lockouts_double_up_to_the_longest_and_start_over_after_a_quiet_spell(engine):
    t = utcnow()
    with Session(engine) as s:
        s.execute(text("DELETE FROM throttle WHERE key = :k"), {"k": LIMIT.key("x")})
        s.commit()
        minutes = []
        for _ in range(6):
            assert throttle.failed(s, [(LIMIT, "x")], now=t) == {LIMIT.key("x"): 1}
            assert throttle.failed(s, [(LIMIT, "x")], now=t) == {LIMIT.key("x"): 0}
            minutes.append(_lockout(s, t))
            t += timedelta(minutes=minutes[-1])  # the lockout runs out; the next guesses come at once
        assert minutes == [1, 2, 4, 8, 10, 10]
        # Quiet for as long as the longest lockout after it ended: the next lockout is the first again.
        t += timedelta(minutes=10)
        throttle.failed(s, [(LIMIT, "x")], now=t)
        throttle.failed(s, [(LIMIT, "x")], now=t)
        assert _lockout(s, t) == 1
        throttle.succeeded(s, [LIMIT.key("x")])
        s.commit()
