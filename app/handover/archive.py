"""A community's complete record as one archive, and its import into another deployment of the service.

The archive is a zip: `manifest.json` (format, schema revision, source key, the community, every file
with its row count and SHA-256, what was left out and why) and one JSON file per table under `tables/`
(the rows as PostgreSQL's row_to_json writes them; imported with json_populate_recordset, so every type
comes back as it was). Which rows: those with the community's `community_id`, and those whose foreign
key reaches them (postings of its entries, claims of its harvests...). Left out: people's identifiers
and credentials (households travel without phone numbers or PINs; a user referred to by a record
travels as a name without account, WeChat binding or phone), sessions, throttles, job runs, roll-ups
(recomputed), outboxes, the audit log (the source deployment's record of its staff) and the place above
the community (the import names the street it goes in).

An import checks every checksum and the schema revision, gives each row a new id (remembered in
`archive_import_map`: importing the same archive again inserts nothing), rewrites the ledger's
idempotency keys that name a row (`checkin:<id>`, `redemption:<id>:hold`...) to the row's new id and
keeps the others (the keys clients sent) as they were, then verifies the community's ledger; all in one
transaction.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from datetime import UTC
from typing import Any

from sqlalchemy import Table, text
from sqlmodel import Session

from app.core import clock
from app.kit.errors import BadRequest, Conflict, not_found

FORMAT = "jianfei-community-archive"
VERSION = 1

# Tables that stay behind, and why (the manifest lists them).
LEFT_OUT = {
    "app_user": "accounts: a user a record names travels as a name only (users.json)",
    "household_member": "who belongs to a household is personal: residents join again",
    "message_subscription": "personal: a resident's reminder subscriptions",
    "subscription_report": "personal: a resident's reminder answers",
    "refresh_token": "sessions",
    "role_grant": "staff roles are granted in the receiving deployment (or passed by a handover)",
    "volunteer_team_member": "people: teams are joined again",
    "pin_reset": "PINs are not exported",
    "consent_use": "one-time spending consents",
    "reminder_outbox": "reminders to send",
    "roster_import": "roster files name people",
    "audit_log": "the source deployment's record of its staff",
    "household_day_points": "a roll-up, recomputed",
    "household_month_points": "a roll-up, recomputed",
    "point_rollup_state": "a roll-up's watermark",
    "job_run": "this deployment's job runs",
    "throttle": "this deployment's throttles",
    "wechat_access_token": "this deployment's WeChat token",
    "street": "the import names the street the community goes in",
    "organisation": "organisations are the deployment's (a handover links them)",
    "organisation_community": "organisations are the deployment's (a handover links them)",
    "archive_import_map": "this deployment's imports",
    "idempotent_request": "answers kept a day for retried writes",
    "network": "networks of organisations are the deployment's",
    "network_partner": "networks of organisations are the deployment's",
}
# Columns emptied on the way out: personal identifiers, and references to what stays behind.
CLEARED = {
    "household": {"phone_hash": None, "phone_masked": None, "pin_hash": None, "pin_reset_by_user_id": None},
    "activity": {"organisation_id": None},
    "media_item": {"organisation_id": None},
}
# Ledger keys that name a row: prefix → the table of the id that follows it.
KEYED = {"checkin": "checkin", "checkin-amend": "checkin_amendment", "weighin": "weigh_in", "compost": "compost_drop",
         "voucher": "voucher", "redemption": "redemption", "challenge": "challenge_enrolment", "adjustment": "household",
         "expiry": "household", "reversal": "journal_entry"}
KEY_COLUMNS = {"journal_entry": ("idempotency_key",), "checkin_amendment": ("credit_key",)}
_KEY = re.compile(r"^([a-z-]+):(\d+)(.*)$", re.S)


def _tables() -> list[Table]:
    from app.models import metadata

    return [t for t in metadata.sorted_tables if t.name not in LEFT_OUT]


def _conditions(tables: list[Table]) -> dict[str, str]:
    """Each table's WHERE for the community's rows (parameter :c), parents before children."""
    cond: dict[str, str] = {}
    for t in tables:
        if t.name == "community":
            cond[t.name] = "id = :c"
        elif "community_id" in t.c:
            cond[t.name] = "community_id = :c"
        else:
            parts = [f"{fk.parent.name} IN (SELECT id FROM {fk.column.table.name} WHERE {cond[fk.column.table.name]})"
                     for fk in t.foreign_keys if fk.column.table.name in cond and fk.column.table.name != t.name]
            if not parts:
                raise RuntimeError(f"archive: {t.name} reaches no community row; list it in LEFT_OUT")
            cond[t.name] = " OR ".join(parts)
    return cond


def _user_columns(t: Table) -> list[str]:
    return [fk.parent.name for fk in t.foreign_keys if fk.column.table.name == "app_user"]


def _order(t: Table) -> str:
    return ", ".join(f"r.{c.name}" for c in t.primary_key.columns)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _revision(session: Session) -> str:
    return ",".join(sorted(session.execute(text("SELECT version_num FROM alembic_version")).scalars()))


# --- export -------------------------------------------------------------------------------------------

def export_community(session: Session, community_id: int) -> tuple[bytes, dict[str, Any]]:
    """The community's archive (zip bytes) and its manifest. Read in one REPEATABLE READ snapshot."""
    session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    row = session.execute(text("SELECT name, created_at FROM community WHERE id = :c"), {"c": community_id}).first()
    if row is None:
        raise not_found("社区", "Community", "community_id")
    name, created_at = row
    database = session.execute(text("SELECT d.oid, d.datname FROM pg_database d WHERE d.datname = current_database()")).one()
    source = _sha256(f"{database[1]}:{database[0]}:{community_id}:{created_at.isoformat()}".encode())[:32]
    tables = _tables()
    cond = _conditions(tables)
    files: dict[str, bytes] = {}
    users: set[int] = set()
    for t in tables:
        rows = json.loads(session.execute(
            text(f"SELECT coalesce(json_agg(r ORDER BY {_order(t)}), '[]')::text FROM (SELECT * FROM {t.name} WHERE {cond[t.name]}) r"),
            {"c": community_id},
        ).scalar_one())
        for r in rows:
            r.update(CLEARED.get(t.name, {}))
            users.update(r[c] for c in _user_columns(t) if r[c] is not None)
        files[f"tables/{t.name}.json"] = json.dumps(rows, ensure_ascii=False, separators=(",", ":")).encode()
    named = session.execute(text("SELECT id, CASE WHEN username IS NOT NULL THEN display_name ELSE '' END FROM app_user "
                                 "WHERE id = ANY(:ids) ORDER BY id"), {"ids": sorted(users)}).all()
    files["users.json"] = json.dumps([{"id": i, "display_name": n} for i, n in named], ensure_ascii=False).encode()
    manifest = {
        "format": FORMAT, "version": VERSION, "schema_revision": _revision(session), "source": source,
        "community": {"id": community_id, "name": name},
        "exported_at": clock.now().astimezone(UTC).isoformat(),
        "tables": [t.name for t in tables],
        "files": {path: {"rows": len(json.loads(data)), "sha256": _sha256(data)} for path, data in files.items()},
        "left_out": LEFT_OUT, "cleared": {t: sorted(c) for t, c in CLEARED.items()},
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", json.dumps(manifest, ensure_ascii=False, indent=1))
        for path, data in files.items():
            z.writestr(path, data)
    session.rollback()
    return out.getvalue(), manifest


# --- import -------------------------------------------------------------------------------------------

def _bad(en: str, zh: str) -> BadRequest:
    return BadRequest("archive_invalid", zh, en, "archive")


def read_archive(data: bytes) -> tuple[dict[str, Any], dict[str, list]]:
    """The manifest and every file's rows, each file checked against its checksum and row count."""
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
        manifest = json.loads(z.read("manifest.json"))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise _bad(f"Not a community archive: {exc}", "不是社区档案文件") from None
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise _bad("Not a community archive of this format", "档案格式不符")
    contents = {}
    for path, meta in manifest["files"].items():
        try:
            raw = z.read(path)
        except KeyError:
            raise _bad(f"The archive lacks {path}", f"档案缺少 {path}") from None
        if _sha256(raw) != meta["sha256"]:
            raise _bad(f"{path} does not match its checksum: the archive is damaged", f"{path} 校验和不符，档案已损坏")
        rows = json.loads(raw)
        if len(rows) != meta["rows"]:
            raise _bad(f"{path} holds {len(rows)} rows, the manifest says {meta['rows']}", f"{path} 行数与清单不符")
        contents[path] = rows
    return manifest, contents


class _Ids:
    """Source id → id here, by table: what earlier imports of this source made, and this one's."""

    def __init__(self, session: Session, source: str):
        self.session, self.source = session, source
        self.known: dict[tuple[str, int], int] = {
            (t, s): d for t, s, d in session.execute(
                text("SELECT table_name, source_id, target_id FROM archive_import_map WHERE source = :s"), {"s": source})
        }
        self.new: list[dict[str, Any]] = []

    def get(self, table: str, source_id: int) -> int:
        try:
            return self.known[(table, source_id)]
        except KeyError:
            raise _bad(f"{table} {source_id} is referred to but not in the archive", "档案引用了其中没有的记录") from None

    def add(self, table: str, source_id: int, target_id: int) -> None:
        self.known[(table, source_id)] = target_id
        self.new.append({"s": self.source, "t": table, "src": source_id, "dst": target_id})

    def save(self) -> None:
        if self.new:
            self.session.execute(text("INSERT INTO archive_import_map (source, table_name, source_id, target_id) "
                                      "VALUES (:s, :t, :src, :dst)"), self.new)


def _rekey(key: str | None, ids: _Ids) -> str | None:
    if key is None:
        return None
    if key.startswith("reverse:"):
        return "reverse:" + _rekey(key[len("reverse:"):], ids)
    m = _KEY.match(key)
    if m is None or m.group(1) not in KEYED:
        return key  # a key a client sent: kept as it was
    return f"{m.group(1)}:{ids.get(KEYED[m.group(1)], int(m.group(2)))}{m.group(3)}"


def import_community(session: Session, data: bytes, street_id: int) -> dict[str, Any]:
    """Import an archive into the street `street_id` of this deployment. Idempotent: the same archive
    again inserts nothing. One transaction; the community's ledger must verify or nothing is kept."""
    from app.ledger.verify import verify
    from app.places.service import new_public_code

    manifest, contents = read_archive(data)
    if manifest["schema_revision"] != _revision(session):
        raise Conflict("archive_schema", "档案的数据库版本与本部署不同，请先将两边升级到同一版本",
                       f"The archive's schema ({manifest['schema_revision']}) is not this deployment's "
                       f"({_revision(session)}): bring both to the same release first", "archive")
    if session.execute(text("SELECT 1 FROM street WHERE id = :s"), {"s": street_id}).first() is None:
        raise not_found("街道", "Street", "street_id")
    tables = {t.name: t for t in _tables()}
    unknown = [n for n in manifest["tables"] if n not in tables]
    if unknown:
        raise _bad(f"Unknown tables in the archive: {unknown}", "档案含有本部署没有的表")
    # One import of a source at a time.
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": manifest["source"]})
    ids = _Ids(session, manifest["source"])
    users_created = codes_changed = 0
    for u in contents["users.json"]:
        if ("app_user", u["id"]) not in ids.known:
            new = session.execute(text("INSERT INTO app_user (display_name, is_active, created_at, token_version) "
                                       "VALUES (:n, false, now(), 0) RETURNING id"), {"n": u["display_name"]}).scalar_one()
            ids.add("app_user", u["id"], new)
            users_created += 1
    # First every row's new id (a ledger key may name a row of a table that comes later), then the rows.
    pending: dict[str, list[dict[str, Any]]] = {}
    for name in manifest["tables"]:
        t = tables[name]
        rows = contents[f"tables/{name}.json"]
        if [c.name for c in t.primary_key.columns] == ["id"]:
            rows = [r for r in rows if (name, r["id"]) not in ids.known]
            fresh = session.execute(text(f"SELECT nextval(pg_get_serial_sequence('{name}', 'id')) FROM generate_series(1, :n)"),
                                    {"n": len(rows)}).scalars().all() if rows else []
            for r, new in zip(rows, fresh, strict=True):
                ids.add(name, r["id"], new)
                r["id"] = new
        pending[name] = rows
    inserted: dict[str, int] = {}
    for name in manifest["tables"]:
        t, rows = tables[name], pending[name]
        single_id = [c.name for c in t.primary_key.columns] == ["id"]
        for r in rows:
            for fk in t.foreign_keys:
                col, parent = fk.parent.name, fk.column.table.name
                if r.get(col) is None:
                    continue
                r[col] = street_id if parent == "street" else ids.get(parent, r[col])
            if name == "act_reversal" and r["act"] in tables:
                r["act_id"] = ids.get(r["act"], r["act_id"])
            for col in KEY_COLUMNS.get(name, ()):
                r[col] = _rekey(r[col], ids)
            if name == "household" and session.execute(
                text("SELECT 1 FROM household WHERE public_code = :p"), {"p": r["public_code"]}
            ).first() is not None:
                r["public_code"] = new_public_code(session)
                codes_changed += 1
        if rows:
            done = session.execute(
                text(f"INSERT INTO {name} SELECT * FROM json_populate_recordset(NULL::{name}, CAST(:rows AS json)) "
                     + ("" if single_id else "ON CONFLICT DO NOTHING")),
                {"rows": json.dumps(rows, ensure_ascii=False)},
            )
            inserted[name] = done.rowcount
        else:
            inserted[name] = 0
    ids.save()
    community_id = ids.get("community", manifest["community"]["id"])
    report = verify(session, community_id)
    if not report.clean:
        session.rollback()
        raise Conflict("archive_ledger", "导入后积分账不平，已撤销导入", "The imported ledger does not verify: nothing was imported")
    session.commit()
    return {"community_id": community_id, "inserted": inserted, "users_created": users_created, "codes_changed": codes_changed}
