"""Backups (issue 21): `jianfei backup` / `jianfei restore` round trips, taken while scans keep arriving.

What a restore holds is proved two ways. With an exported snapshot (pg_export_snapshot, handed to
pg_dump): every table of the restored database is, row for row, what a transaction in that snapshot
reads. With the command as an operator runs it: the scans one client posted one after another come
back as a prefix of what it sent (nothing after the dump's snapshot, nothing half-written), each with
its ledger entry, and the ledger verifies.
"""

from __future__ import annotations

import threading
import uuid
from datetime import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import Session, select
from typer.testing import CliRunner

from app.backup.service import BackupError, backup, file_name, restore
from app.cli import app
from app.core.db import make_engine
from app.ledger.verify import verify
from app.places.models import Household
from app.places.service import qr_payload
from tests.conftest import drop_pg_database, fresh_pg_database
from tests.field import SHANGHAI, cid, local_day

ENV = {"COLUMNS": "200", "NO_COLOR": "1"}


def url_of(engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def fingerprints(conn) -> dict[str, tuple[int, str]]:
    """Every table's row count and a digest of its rows (each row as text, sorted)."""
    tables = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")).scalars().all()
    out = {}
    for t in tables:
        n, digest = conn.execute(text(
            f"SELECT count(*), md5(coalesce(string_agg(r::text, E'\\n' ORDER BY r::text), '')) FROM \"{t}\" r"
        )).one()
        out[t] = (n, digest)
    return out


class Street:
    """A community with two months of every kind of record (the demo generator: two exchange days), and a
    volunteer's scans of today ready to send."""

    def __init__(self, client, engine, clock):
        clock.set_local(time(20, 30))  # today's evening window is open; both of today's windows can be scanned
        self.client, self.engine = client, engine
        seed = uuid.uuid4().int % 10**9
        r = CliRunner().invoke(app, ["generate-demo", "--seed", str(seed), "--communities", "1", "--households", "30",
                                     "--days", "62", "--workers", "1", "--residents", "0.6"], env=ENV)
        assert r.exit_code == 0, r.output
        self.committee = self.login(f"demo{seed}-c1-committee")
        self.volunteer = self.login(f"demo{seed}-c1-volunteer1")
        self.community = client.get("/api/v1/communities", headers=self.committee).json()["items"][0]["id"]
        c = self.community
        station = client.get(f"/api/v1/communities/{c}/stations", headers=self.committee).json()["items"][0]["id"]
        # What the generator does not make: an activity and a points cheque.
        activity = {"client_id": cid(), "kind": "lecture", "title": "垃圾分类大讲堂", "held_on": local_day(1).isoformat(),
                    "place": "社区活动室", "duration_minutes": 90, "participants": 60, "unique_participants": 45}
        assert client.post(f"/api/v1/communities/{c}/activities", json=activity, headers=self.committee).status_code == 201
        voucher = {"points": 40, "memo": "资源回收日 纸类 4.1kg", "idempotency_key": uuid.uuid4().hex}
        assert client.post(f"/api/v1/communities/{c}/vouchers", json=voucher, headers=self.committee).status_code == 201
        with Session(engine) as s:
            codes = [qr_payload(h) for h in s.exec(select(Household).where(Household.community_id == c).order_by(Household.id))]
        today = local_day()
        self.tag = f"bk{uuid.uuid4().hex[:8]}-"  # this street's scans
        self.scans = [
            {"client_id": f"{self.tag}{uuid.uuid4().hex[:12]}", "payload": code, "station_id": station, "result": "correct",
             "scanned_at": f"{today.isoformat()}T{at}:00+08:00"}
            for at in ("07:30", "18:30") for code in codes
        ]
        self.posted: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._scan)
        self._error: BaseException | None = None

    def login(self, name: str) -> dict[str, str]:
        r = self.client.post("/api/v1/auth/password/login", json={"username": name, "password": "demo-pass-2026"})
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    def _scan(self) -> None:
        try:
            for body in self.scans:
                if self._stop.is_set():
                    return
                r = self.client.post(f"/api/v1/communities/{self.community}/checkins", json=body, headers=self.volunteer)
                assert r.status_code == 201, r.text
                self.posted.append(body["client_id"])
        except BaseException as exc:  # noqa: BLE001 - raised in the test's thread
            self._error = exc

    def start_scanning(self, at_least: int = 10) -> None:
        self._thread.start()
        while len(self.posted) < at_least and self._thread.is_alive():
            self._thread.join(0.01)

    def stop_scanning(self) -> int:
        self._stop.set()
        self._thread.join()
        if self._error:
            raise self._error
        return len(self.posted)


@pytest.fixture
def own_database(fake_wechat):
    """The app on a database of the test's own: a restore verifies the whole ledger, and the suite's
    shared database holds other tests' records, some with a balance tampered with on purpose."""
    from fastapi.testclient import TestClient

    from app.core.db import set_engine
    from app.core.migrate import upgrade
    from app.kit import cache
    from app.main import app as asgi

    url = fresh_pg_database("own")
    upgrade(url)
    engine = make_engine(url)
    set_engine(engine)
    cache.invalidate_all()  # ids repeat across databases
    try:
        with TestClient(asgi) as client:
            yield client, engine
    finally:
        set_engine(None)
        cache.invalidate_all()
        engine.dispose()
        drop_pg_database(url)


@pytest.fixture
def street(own_database, clock):
    client, engine = own_database
    return Street(client, engine, clock)


@pytest.fixture
def empty_database():
    url = fresh_pg_database("restore")
    yield url
    drop_pg_database(url)


def test_a_backup_taken_while_scans_arrive_holds_exactly_its_snapshot(street, empty_database, tmp_path):
    engine = street.engine
    street.start_scanning()
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as snap:
        snapshot = snap.execute(text("SELECT pg_export_snapshot()")).scalar_one()
        sent_before = len(street.posted)
        done = backup(url_of(engine), tmp_path, snapshot=snapshot)
        sent_during = len(street.posted) - sent_before
        expected = fingerprints(snap)  # read in the snapshot the dump was taken from
        in_snapshot = snap.execute(text("SELECT count(*) FROM checkin WHERE client_id LIKE :t"), {"t": street.tag + "%"}).scalar_one()
    sent = street.stop_scanning()
    assert sent_during > 0 and 0 < in_snapshot < sent  # scans came before, during and after the dump

    restored = restore(done.path, empty_database, migrate=False)
    assert restored.checksum is True and restored.revision_before == restored.revision_after
    target = make_engine(empty_database)
    try:
        with target.connect() as conn:
            got = fingerprints(conn)
        # Every kind of record made it into the dump, and every table is identical to the snapshot.
        for table in ("household", "checkin", "compost_drop", "compost_claim", "weigh_in", "recycling_destination",
                      "redemption", "voucher", "activity", "journal_entry", "posting", "ledger_account", "audit_log"):
            assert expected[table][0] > 0, table
        assert got == expected
        with Session(target) as s:
            assert verify(s).clean
    finally:
        target.dispose()


def test_the_commands_back_up_while_scanning_and_restore_a_consistent_prefix(street, empty_database, tmp_path):
    engine = street.engine
    runner = CliRunner()
    street.start_scanning()
    r = runner.invoke(app, ["backup", "-o", str(tmp_path), "--database-url", url_of(engine)], env=ENV)
    sent = street.stop_scanning()
    assert r.exit_code == 0, r.output
    [dump] = tmp_path.glob("jianfei-*.dump")
    assert (tmp_path / f"{dump.name}.sha256").read_text().split()[1] == dump.name
    assert dump.stat().st_mode & 0o077 == 0  # password and phone hashes inside: the owner's only

    r = runner.invoke(app, ["restore", str(dump), "--database-url", empty_database], env=ENV)
    assert r.exit_code == 0, r.output
    assert "Ledger is consistent" in r.output
    target = make_engine(empty_database)
    try:
        with target.connect() as conn:
            mine = {"t": street.tag + "%"}
            kept = conn.execute(text("SELECT client_id FROM checkin WHERE client_id LIKE :t"), mine).scalars().all()
            # Each kept scan has its ledger entry (a scan and its credit are one transaction).
            uncredited = conn.execute(text(
                "SELECT count(*) FROM checkin c WHERE c.client_id LIKE :t AND c.credited AND NOT EXISTS "
                "(SELECT 1 FROM journal_entry e WHERE e.idempotency_key = 'checkin:' || c.id)"
            ), mine).scalar_one()
    finally:
        target.dispose()
    # One client posted one scan after another: the dump holds the first k of them, no gap, none later.
    assert 0 < len(kept) < sent
    assert set(kept) == set(street.posted[: len(kept)])
    assert uncredited == 0

    # The restored database is no longer empty: a second restore is refused unless forced.
    r = runner.invoke(app, ["restore", str(dump), "--database-url", empty_database], env=ENV)
    assert r.exit_code == 1 and "not empty" in r.output
    r = runner.invoke(app, ["restore", str(dump), "--database-url", empty_database, "--force"], env=ENV)
    assert r.exit_code == 0 and "after clearing the database" in r.output and "Ledger is consistent" in r.output


def test_a_damaged_backup_is_refused_before_the_target_is_touched(engine, world, empty_database, tmp_path):
    done = backup(url_of(engine), tmp_path)
    # A changed byte: the checksum beside it no longer matches.
    damaged = tmp_path / "damaged.dump"
    data = bytearray(done.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    Path(f"{damaged}.sha256").write_text(Path(f"{done.path}.sha256").read_text())
    with pytest.raises(BackupError, match="checksum"):
        restore(damaged, empty_database)
    # A truncated file without a checksum: pg_restore --list cannot read it.
    truncated = tmp_path / "truncated.dump"
    truncated.write_bytes(done.path.read_bytes()[:200])
    r = CliRunner().invoke(app, ["restore", str(truncated), "--database-url", empty_database], env=ENV)
    assert r.exit_code == 1 and "not a readable pg_dump archive" in " ".join(r.output.split())
    target = make_engine(empty_database)
    try:
        with target.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")).scalar_one() == 0
    finally:
        target.dispose()


def test_the_backup_job_keeps_the_newest_backups(engine, clock, tmp_path, monkeypatch):
    """The job `backup`: off with DATABASE_URL unless BACKUP_ENABLED; on, it writes into BACKUP_DIR and
    keeps BACKUP_KEEP."""
    from app.core.config import get_settings
    from app.jobs.registry import find

    job = find("backup")
    assert job is not None and job.schedule.describe(SHANGHAI).startswith("daily")
    monkeypatch.setenv("DATABASE_URL", url_of(engine))
    monkeypatch.setenv("BACKUP_DIR", str(tmp_path))
    monkeypatch.setenv("BACKUP_KEEP", "3")
    get_settings.cache_clear()
    try:
        assert job.run() == {"off": 1} and not list(tmp_path.iterdir())
        monkeypatch.setenv("BACKUP_ENABLED", "true")
        get_settings.cache_clear()
        clock.set(clock.now(), frozen=True)
        names = []
        for _ in range(5):
            names.append(file_name(clock.now()))
            counts = job.run()
            clock.advance(days=1)
        assert counts["removed"] == 1 and counts["bytes"] > 0
        assert sorted(p.name for p in tmp_path.glob("jianfei-*.dump")) == names[-3:]
        assert sorted(p.name for p in tmp_path.glob("*.sha256")) == [f"{n}.sha256" for n in names[-3:]]
    finally:
        get_settings.cache_clear()
