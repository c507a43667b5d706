"""Every scheduled job, declared once: its name, its schedule (service's TIMEZONE) and what it calls.

Each body is a domain's own "do what is due now" function, safe to repeat and to run on two instances
at once; it returns what it did as counts, which the runner records (`jianfei jobs list`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import time

from sqlmodel import Session

from app.core.db import get_engine
from app.jobs.schedule import Daily, Every, Schedule


@dataclass(frozen=True)
class Job:
    name: str
    schedule: Schedule
    run: Callable[[], dict[str, int]]
    about: str


def expire_points() -> dict[str, int]:
    from app.ledger.expiry import run_expiry_everywhere

    with Session(get_engine()) as session:
        communities, households, points = run_expiry_everywhere(session)
    return {"communities": communities, "households": households, "points": points}


def lapse_reservations() -> dict[str, int]:
    from app.rewards.flows import lapse_everywhere

    with Session(get_engine()) as session:
        lapsed, points, codes = lapse_everywhere(session)
    return {"lapsed": lapsed, "points": points, "consent_codes_forgotten": codes}


def expire_vouchers() -> dict[str, int]:
    from app.vouchers.service import expire_due

    with Session(get_engine()) as session:
        count, points = expire_due(session)
    return {"vouchers": count, "points": points}


def send_reminders() -> dict[str, int]:
    from app.reminders.service import run_reminders

    with Session(get_engine(), expire_on_commit=False) as session:
        report = run_reminders(session)
    return {"enqueued": report.enqueued, **{str(status): n for status, n in sorted(report.outcomes.items())}}


def roll_up_point_totals() -> dict[str, int]:
    from app.reports.rollup import refresh_everywhere

    done = refresh_everywhere(get_engine())
    return {"timezones": len(done), "entries": sum(r.watermark - r.watermark_before for r in done),
            "transactions": sum(r.transactions for r in done)}


def forget_retry_answers() -> dict[str, int]:
    from app.kit.idempotency import purge

    with Session(get_engine()) as session:
        return {"forgotten": purge(session)}


def back_up() -> dict[str, int]:
    from app.backup.service import backup
    from app.core.config import get_settings

    settings = get_settings()
    if not settings.backups_on:
        return {"off": 1}
    done = backup(settings.resolved_database_url(), keep=settings.backup_keep)
    return {"bytes": done.bytes, "removed": len(done.removed)}


JOBS: tuple[Job, ...] = (
    # Expiry moments are local midnights (year-end or rolling, app.ledger.expiry): just after one.
    Job("ledger-expiry", Daily(time(0, 5)), expire_points, "Expire points past their policy's date (积分过期)"),
    # A reservation's points and stock are held until it lapses: give them back within 15 minutes.
    Job("rewards-lapse", Every(15), lapse_reservations, "Release reservations not collected in time"),
    # Cheques expire on a date set at issue; an hour late is soon enough.
    Job("vouchers-expire", Every(60), expire_vouchers, "Expire unclaimed points cheques (积分支票)"),
    # Sends only in REMINDER_HOURS, local time of each community (app.reminders.service).
    Job("reminders", Every(15), send_reminders, "Send due reminders (订阅消息)"),
    # After the night's expiry; the exports are exact whenever it last ran (app.reports.rollup).
    Job("reports-rollup", Daily(time(2, 30)), roll_up_point_totals, "Roll up point totals for the exports"),
    # Answers kept for retries (Idempotency-Key) are kept a day (app.kit.idempotency).
    Job("idempotency-purge", Every(60), forget_retry_answers, "Forget answers kept for retried writes after 24 h"),
    # The quiet hour, after the night's expiry and roll-up; on by default for the embedded database.
    Job("backup", Daily(time(3, 30)), back_up, "Back up the database (pg_dump) into BACKUP_DIR, keep BACKUP_KEEP"),
)


def find(name: str, jobs: tuple[Job, ...] = JOBS) -> Job | None:
    return next((j for j in jobs if j.name == name), None)
