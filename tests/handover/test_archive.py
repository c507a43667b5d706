"""A community's complete record as one archive (issue 21): exported from one database with
`jianfei handover export`, imported into another with `jianfei handover import` — every record there,
households without phone numbers, the ledger verifying with its keys, the reports equal; importing
twice changes nothing; a damaged archive is refused."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from app.cli import app
from app.core.db import get_engine, make_engine, set_engine
from app.core.migrate import upgrade
from app.handover.archive import KEYED, _conditions, _tables
from tests.backup.test_backup import ENV, Street, own_database  # noqa: F401 - a fixture
from tests.conftest import drop_pg_database, fresh_pg_database


@pytest.fixture
def street(own_database, clock):  # noqa: F811 - the fixture imported above
    client, engine = own_database
    return Street(client, engine, clock)


@pytest.fixture
def other_deployment():
    url = fresh_pg_database("archive")
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        street_id = conn.execute(text("INSERT INTO street (city, district, name, created_at) "
                                      "VALUES ('苏州市', '昆山市', '接手街道', now()) RETURNING id")).scalar_one()
    yield engine, street_id
    engine.dispose()
    drop_pg_database(url)


def counts(engine, community_id: int) -> dict[str, int]:
    tables = _tables()
    cond = _conditions(tables)
    with engine.connect() as conn:
        return {t.name: conn.execute(text(f"SELECT count(*) FROM {t.name} WHERE {cond[t.name]}"), {"c": community_id}).scalar_one()
                for t in tables}


def run(engine, *args: str):
    """A `jianfei` command against `engine`'s database."""
    previous = get_engine()
    set_engine(engine)
    try:
        return CliRunner().invoke(app, list(args), env=ENV)
    finally:
        set_engine(previous)


def totals(engine, community_id: int, month: str, path) -> bytes:
    r = run(engine, "reports", "export-totals", "--community", str(community_id), "--month", month, "-o", str(path))
    assert r.exit_code == 0, r.output
    return path.read_bytes()


def test_a_community_moves_to_another_deployment_whole_and_once(street, other_deployment, tmp_path, clock):
    engine = street.engine
    target, street_id = other_deployment
    c = street.community
    archive = tmp_path / "community.zip"
    r = run(engine, "handover", "export", "--community", str(c), "-o", str(archive))
    assert r.exit_code == 0, r.output
    manifest = json.loads(zipfile.ZipFile(archive).read("manifest.json"))
    assert manifest["community"]["id"] == c and "household_member" in manifest["left_out"]
    assert all(len(f["sha256"]) == 64 for f in manifest["files"].values())

    r = run(target, "handover", "import", str(archive), "--street", str(street_id))
    assert r.exit_code == 0, r.output
    imported = json.loads(r.output.strip().splitlines()[-1])
    new_c = imported["community_id"]

    source_counts = counts(engine, c)
    assert counts(target, new_c) == source_counts
    for kind in ("household", "checkin", "compost_drop", "weigh_in", "redemption", "voucher", "activity", "journal_entry", "posting"):
        assert source_counts[kind] > 0, kind
    with target.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM household WHERE community_id = :c AND (phone_hash IS NOT NULL "
                                 "OR phone_masked IS NOT NULL OR pin_hash IS NOT NULL)"), {"c": new_c}).scalar_one() == 0
        assert conn.execute(text("SELECT street_id FROM community WHERE id = :c"), {"c": new_c}).scalar_one() == street_id

    def keys(eng, cid):
        with eng.connect() as conn:
            client_ids = set(conn.execute(text("SELECT client_id FROM checkin WHERE community_id = :c"), {"c": cid}).scalars())
            ledger = set(conn.execute(text("SELECT idempotency_key FROM journal_entry WHERE community_id = :c"), {"c": cid}).scalars())
            balances = conn.execute(text(
                "SELECT b.name, h.unit, h.door_plate, a.balance, a.version FROM ledger_account a JOIN household h ON h.id = a.household_id "
                "JOIN building b ON b.id = h.building_id WHERE a.community_id = :c ORDER BY 1, 2, 3"), {"c": cid}).all()
            credited = conn.execute(text(
                "SELECT count(*) FROM checkin k WHERE k.community_id = :c AND k.credited AND NOT EXISTS "
                "(SELECT 1 FROM journal_entry e WHERE e.idempotency_key = 'checkin:' || k.id)"), {"c": cid}).scalar_one()
        sent = {k for k in ledger if k.split(":", 1)[0] not in KEYED and not k.startswith("reverse:")}
        return client_ids, sent, balances, credited

    src, dst = keys(engine, c), keys(target, new_c)
    assert dst[0] == src[0]  # the check-ins' client ids: a phone's retry is still recognised
    assert dst[1] == src[1]  # ledger keys clients sent, as they were
    assert dst[2] == src[2]  # every household's balance and number of postings
    assert dst[3] == 0  # each check-in's credit is found under its new id
    month = clock.today().strftime("%Y-%m")
    assert totals(target, new_c, month, tmp_path / "b.csv") == totals(engine, c, month, tmp_path / "a.csv")

    # Imported again: nothing changes.
    again = run(target, "handover", "import", str(archive), "--street", str(street_id))
    assert again.exit_code == 0, again.output
    second = json.loads(again.output.strip().splitlines()[-1])
    assert second["community_id"] == new_c and set(second["inserted"].values()) == {0} and second["users_created"] == 0
    assert counts(target, new_c) == source_counts
    with target.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM community")).scalar_one() == 1


def test_a_damaged_or_foreign_archive_is_refused(world, engine, other_deployment, tmp_path):
    target, street_id = other_deployment
    archive = tmp_path / "community.zip"
    assert run(engine, "handover", "export", "--community", str(world.community.id), "-o", str(archive)).exit_code == 0
    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(damaged, "w") as out:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "tables/household.json":
                data = data.replace(b'"members":3', b'"members":4', 1)
            out.writestr(item, data)
    r = run(target, "handover", "import", str(damaged), "--street", str(street_id))
    assert r.exit_code == 1 and "checksum" in r.output
    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(foreign, "w") as out:
        out.writestr("manifest.json", json.dumps({"format": "something-else"}))
    assert run(target, "handover", "import", str(foreign), "--street", str(street_id)).exit_code == 1
    notzip = tmp_path / "not.zip"
    notzip.write_bytes(io.BytesIO(b"plain text").getvalue())
    assert run(target, "handover", "import", str(notzip), "--street", str(street_id)).exit_code == 1
    with target.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM household")).scalar_one() == 0
