"""Roster import rules: validate every row, then write the valid ones in one set-based transaction.

A row is a household, keyed by (building, unit, door plate). Re-importing the same file changes
nothing; a row whose members or phone differ updates that household. A blank members or phone cell
leaves the stored value alone (a roster without phones must not wipe the phones already bound).
The resident's name may be in the file but is never stored: personal data is kept to the minimum.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from app.audit import service as audit
from app.core.db import utcnow
from app.core.security import normalize_phone
from app.identity.auth import Principal
from app.kit.cells import neutral
from app.kit.errors import BadRequest, Conflict, not_found
from app.kit.pagination import cursor_id, encode_cursor
from app.places import service as places
from app.places.models import Building, Compound, Household, HouseholdStatus
from app.roster.models import ImportMode, ProblemPublic, RosterImport, RosterImportPublic, RosterImportSummary
from app.roster.reader import Sheet, read_roster

MAX_MEMBERS = 30  # as HouseholdBase.members
MAX_LEN = {"building": 30, "unit": 10, "door_plate": 20}
SHOWN_ERRORS = 200
RETRY_WINDOW = timedelta(minutes=10)  # an upload without Idempotency-Key resent this soon is a retry

Progress = Callable[[str, int, int], None]


@dataclass
class ImportOptions:
    mode: ImportMode = ImportMode.dry_run
    compound_id: int | None = None
    # Create buildings the file names but the community lacks, under `compound_id`.
    create_buildings: bool = False


@dataclass
class _Plan:
    creates: list[tuple[object, dict[str, Any]]] = field(default_factory=list)  # (building key, columns)
    updates: list[dict[str, Any]] = field(default_factory=list)
    unchanged: int = 0
    new_buildings: dict[tuple[int, str], None] = field(default_factory=dict)  # ordered set of (compound id, name)
    errors: list[dict[str, Any]] = field(default_factory=list)
    valid_rows: int = 0


_FIELD_ZH = {"compound": "小区", "building": "楼栋", "unit": "单元", "door_plate": "门牌", "members": "人数", "phone": "电话"}


def _problem(sheet: Sheet, row: int, fld: str, code: str, zh: str, en: str) -> dict[str, Any]:
    return {"row": row, "column": sheet.columns.get(fld) or _FIELD_ZH[fld], "code": code, "zh": zh, "en": en}


def _clean_unit(text: str) -> str:
    return text[: -len("单元")].strip() if text.endswith("单元") else text


def _clean_door_plate(text: str) -> str:
    return text[:-1].strip() if text.endswith("室") else text


def _parse_members(text: str) -> int | None | str:
    """An int, None for blank, or an error code."""
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return "invalid_members"
    if not value.is_integer() or value < 1:
        return "invalid_members"
    if value > MAX_MEMBERS:
        return "members_too_large"
    return int(value)


class _Buildings:
    """Resolve the building (and optional compound) names written in the file to building ids."""

    def __init__(self, session: Session, community_id: int, options: ImportOptions):
        self.compounds = dict(session.exec(select(Compound.name, Compound.id).where(Compound.community_id == community_id)).all())
        self.by_name: dict[str, list[tuple[int, int]]] = {}  # name → [(compound id, building id)]
        for bid, name, cid in session.exec(
            select(Building.id, Building.name, Building.compound_id).where(Building.community_id == community_id)
        ).all():
            self.by_name.setdefault(name, []).append((cid, bid))
        self.default_compound = options.compound_id
        self.create = options.create_buildings

    @staticmethod
    def canonical(name: str) -> str:
        # Committees often write just "3" for 3号楼.
        return f"{name}号楼" if name.isdigit() else name

    def resolve(self, name: str, compound_name: str) -> tuple[str, object]:
        """('ok', building id), ('new', (compound id, name)), or ('unknown' | 'ambiguous' | 'unknown_compound', None).

        A compound named in the row wins; otherwise the compound chosen for the import, if any.
        """
        compound_id = self.default_compound
        if compound_name:
            compound_id = self.compounds.get(compound_name)
            if compound_id is None:
                return "unknown_compound", None
        candidates = self.by_name.get(name) or self.by_name.get(self.canonical(name)) or []
        ids = [bid for cid, bid in candidates if compound_id is None or cid == compound_id]
        if len(ids) == 1:
            return "ok", ids[0]
        if len(ids) > 1:
            return "ambiguous", None
        if self.create and compound_id is not None:
            return "new", (compound_id, self.canonical(name))
        return "unknown", None


def _plan(session: Session, community_id: int, sheet: Sheet, options: ImportOptions, progress: Progress | None) -> _Plan:
    plan = _Plan()
    buildings = _Buildings(session, community_id, options)
    existing: dict[tuple[int, str, str], tuple[int, int, str | None]] = {
        (b, u, d): (i, m, p)
        for i, b, u, d, m, p in session.exec(
            select(
                Household.id, Household.building_id, Household.unit, Household.door_plate, Household.members, Household.phone_hash
            ).where(Household.community_id == community_id)
        ).all()
    }
    seen: dict[tuple[object, str, str], int] = {}
    total = len(sheet.rows)
    for index, (row, cells) in enumerate(sheet.rows, start=1):
        if progress and (index % 500 == 0 or index == total):
            progress("validate", index, total)
        problems: list[dict[str, Any]] = [
            _problem(
                sheet, row, f, "date_cell",
                "该单元格被 Excel 识别成了日期，请把此列设为「文本」格式后重新填写",
                "Excel turned this cell into a date: format the column as Text and type it again",
            )
            for f in ("compound", "building", "unit", "door_plate") if f in sheet.dates.get(row, ())
        ]
        building_text = cells.get("building", "")
        unit = _clean_unit(cells.get("unit", ""))
        door_plate = _clean_door_plate(cells.get("door_plate", ""))

        building_key: object = None
        if not building_text:
            problems.append(_problem(sheet, row, "building", "missing_building", "缺少楼栋", "Building is missing"))
        elif len(building_text) > MAX_LEN["building"]:
            problems.append(_problem(sheet, row, "building", "too_long", "楼栋名称过长（最多30个字符）", "Building name too long (30 characters at most)"))
        else:
            compound_text = cells.get("compound", "")
            state, value = buildings.resolve(building_text, compound_text)
            if state == "ok":
                building_key = value
            elif state == "new":
                building_key = value
            elif state == "unknown_compound":
                problems.append(_problem(
                    sheet, row, "compound", "unknown_compound",
                    f"小区「{compound_text}」不存在，请先创建该小区",
                    f"Unknown compound '{compound_text}': create it first",
                ))
            elif state == "ambiguous":
                problems.append(_problem(
                    sheet, row, "building", "ambiguous_building",
                    f"楼栋「{building_text}」在多个小区中都有，请指定小区后再导入",
                    f"Building '{building_text}' exists in several compounds: choose the compound",
                ))
            else:
                problems.append(_problem(
                    sheet, row, "building", "unknown_building",
                    f"楼栋「{building_text}」不存在，请先创建该楼栋，或选择自动创建楼栋",
                    f"Unknown building '{building_text}': create it first or choose to create buildings",
                ))
        if not door_plate:
            problems.append(_problem(sheet, row, "door_plate", "missing_door_plate", "缺少门牌号", "Door plate is missing"))
        elif len(door_plate) > MAX_LEN["door_plate"]:
            problems.append(_problem(sheet, row, "door_plate", "too_long", "门牌号过长（最多20个字符）", "Door plate too long (20 characters at most)"))
        if len(unit) > MAX_LEN["unit"]:
            problems.append(_problem(sheet, row, "unit", "too_long", "单元过长（最多10个字符）", "Unit too long (10 characters at most)"))

        members = _parse_members(cells.get("members", ""))
        if members == "invalid_members":
            problems.append(_problem(sheet, row, "members", "invalid_members", "人数应为正整数", "Members must be a positive whole number"))
        elif members == "members_too_large":
            problems.append(_problem(sheet, row, "members", "invalid_members", f"人数不能超过{MAX_MEMBERS}", f"Members cannot exceed {MAX_MEMBERS}"))

        phone_text = cells.get("phone", "")
        phone = None
        if phone_text:
            normalized = normalize_phone(phone_text)
            if normalized is None:
                # The number itself is not repeated in the report: the error file may travel.
                problems.append(_problem(sheet, row, "phone", "invalid_phone", "手机号格式不正确（应为11位手机号）", "Malformed mobile number (11 digits expected)"))
            else:
                phone = places.phone_columns(normalized)

        if building_key is not None and door_plate and not any(p["code"] == "too_long" for p in problems):
            key = (building_key, unit, door_plate)
            first = seen.get(key)
            if first is not None:
                problems.append(_problem(
                    sheet, row, "door_plate", "duplicate_household",
                    f"与第{first}行重复（同一楼栋、单元、门牌）",
                    f"Same household as row {first} (same building, unit and door plate)",
                ))
            else:
                seen[key] = row

        if problems:
            plan.errors.extend(problems)
            continue
        plan.valid_rows += 1
        current = existing.get((building_key, unit, door_plate)) if isinstance(building_key, int) else None
        if current is None:
            if isinstance(building_key, tuple):
                plan.new_buildings[building_key] = None
            plan.creates.append((
                building_key,
                {"unit": unit, "door_plate": door_plate, "members": members or 1,
                 "phone_hash": phone["phone_hash"] if phone else None,
                 "phone_masked": phone["phone_masked"] if phone else None},
            ))
            continue
        household_id, old_members, old_phone_hash = current
        changes: dict[str, Any] = {}
        if members is not None and members != old_members:
            changes["members"] = members
        if phone is not None and phone["phone_hash"] != old_phone_hash:
            changes.update(phone)
        if changes:
            plan.updates.append({"id": household_id, **changes})
        else:
            plan.unchanged += 1
    return plan


def import_roster(
    session: Session,
    *,
    community_id: int,
    data: bytes,
    filename: str,
    options: ImportOptions,
    actor_user_id: int | None,
    request_id: str | None = None,
    progress: Progress | None = None,
    via: str = "api",
    idempotency_key: str | None = None,
) -> RosterImport:
    """Check the file and, unless it is a dry run, write it. Everything, report included, is one commit.

    With `idempotency_key`, the report row is stored before any household is written: a concurrent
    upload with the same key fails on the unique key and rolls back (the caller returns the first).
    """
    places.get_community(session, community_id)
    compound = None
    if options.compound_id is not None:
        compound = places.get_compound(session, options.compound_id)
        if compound.community_id != community_id:
            raise not_found("小区", "Compound", "compound_id")
    sheet = read_roster(data)
    if options.create_buildings and compound is None and "compound" not in sheet.columns:
        raise BadRequest(
            "compound_required",
            "自动创建楼栋时需要指定小区（或在文件中加「小区」列）",
            "Choose the compound the new buildings belong to (or add a compound column)",
            "compound_id",
        )
    plan = _plan(session, community_id, sheet, options, progress)

    apply = options.mode == ImportMode.valid_rows or (options.mode == ImportMode.all_or_nothing and not plan.errors)
    record = RosterImport(
        community_id=community_id,
        actor_user_id=actor_user_id,
        mode=options.mode.value,
        filename=filename[:200],
        file_sha256=hashlib.sha256(data).hexdigest(),
        rows=len(sheet.rows),
        valid_rows=plan.valid_rows,
        created=len(plan.creates),
        updated=len(plan.updates),
        unchanged=plan.unchanged,
        buildings_created=len(plan.new_buildings),
        applied=apply,
        errors=plan.errors,
        idempotency_key=idempotency_key,
    )
    session.add(record)
    session.flush()
    if apply:
        if progress:
            progress("write", 0, len(plan.creates) + len(plan.updates))
        new_ids = places.create_buildings_bulk(session, community_id, list(plan.new_buildings)) if plan.new_buildings else {}
        creates = [{"building_id": new_ids[key] if isinstance(key, tuple) else key, **cols} for key, cols in plan.creates]
        places.write_households_bulk(session, community_id, creates, plan.updates)
        if progress:
            progress("write", len(creates) + len(plan.updates), len(creates) + len(plan.updates))
    audit.record(
        session,
        actor_user_id=actor_user_id,
        action="roster.import" if apply else "roster.check",
        object_type="roster_import",
        object_id=record.id,
        community_id=community_id,
        request_id=request_id,
        detail={
            "via": via,
            "mode": record.mode,
            "filename": record.filename,
            "rows": record.rows,
            "created": record.created if apply else 0,
            "updated": record.updated if apply else 0,
            "buildings_created": record.buildings_created if apply else 0,
            "errors": len(plan.errors),
        },
    )
    session.commit()
    return record


def _by_key(session: Session, community_id: int, key: str) -> RosterImport | None:
    return session.exec(
        select(RosterImport).where(RosterImport.community_id == community_id, RosterImport.idempotency_key == key)
    ).first()


def upload_key(session: Session, community_id: int, data: bytes, options: ImportOptions, client_key: str | None) -> tuple[str, RosterImport | None]:
    """The key an upload is stored under, and the first report if this upload is a retry.

    A client's Idempotency-Key names the upload; the same key with another file or mode is refused.
    Without one, the same file with the same mode and options, sent again within RETRY_WINDOW and
    before any other import of the community, is a retry (a phone resending after a timeout); sent
    later, or after another import, it is a new import (its key names the import it followed, so two
    copies racing each other still collide on the unique key).
    """
    sha = hashlib.sha256(data).hexdigest()
    if client_key:
        key = f"key:{client_key}"
        first = _by_key(session, community_id, key)
        if first is not None and (first.file_sha256 != sha or first.mode != options.mode.value):
            raise Conflict(
                "idempotency_key_reused",
                "该请求编号已用于另一个文件或导入方式",
                "This Idempotency-Key was already used for another file or mode",
                "Idempotency-Key",
            )
        return key, first
    stem = f"file:{sha}:{options.mode.value}:{options.compound_id or 0}:{int(options.create_buildings)}@"
    latest = session.exec(
        select(RosterImport).where(RosterImport.community_id == community_id).order_by(RosterImport.id.desc()).limit(1)
    ).first()
    if latest is not None and (latest.idempotency_key or "").startswith(stem):
        at = latest.created_at if latest.created_at.tzinfo else latest.created_at.replace(tzinfo=UTC)
        if at > utcnow() - RETRY_WINDOW:
            return latest.idempotency_key, latest
    return f"{stem}{latest.id if latest is not None else 0}", None


def import_roster_as(
    session: Session,
    principal: Principal,
    community_id: int,
    data: bytes,
    filename: str,
    options: ImportOptions,
    client_key: str | None = None,
) -> tuple[RosterImport, bool]:
    """An upload from the dashboard: (the report, whether it is the first report of a retried upload)."""
    key, first = upload_key(session, community_id, data, options, client_key)
    if first is not None:
        return first, True
    try:
        record = import_roster(
            session,
            community_id=community_id,
            data=data,
            filename=filename,
            options=options,
            actor_user_id=principal.user_id,
            request_id=principal.request_id,
            idempotency_key=key,
        )
    except IntegrityError:
        session.rollback()
        first = _by_key(session, community_id, key)
        if first is None:
            raise
        return first, True
    return record, False


def get_import(session: Session, import_id: int) -> RosterImport:
    record = session.get(RosterImport, import_id)
    if record is None:
        raise not_found("导入记录", "Roster import", "import_id")
    return record


def to_public(record: RosterImport, english: bool, replayed: bool = False) -> RosterImportPublic:
    return RosterImportPublic(
        replayed=replayed,
        id=record.id,
        community_id=record.community_id,
        mode=ImportMode(record.mode),
        filename=record.filename,
        applied=record.applied,
        rows=record.rows,
        valid_rows=record.valid_rows,
        created=record.created,
        updated=record.updated,
        unchanged=record.unchanged,
        buildings_created=record.buildings_created,
        error_count=len(record.errors),
        errors=[
            ProblemPublic(row=e["row"], column=e["column"], code=e["code"], message=e["en"] if english else e["zh"])
            for e in record.errors[:SHOWN_ERRORS]
        ],
        errors_url=f"/api/v1/roster-imports/{record.id}/errors?format=csv" if record.errors else None,
        created_at=record.created_at,
    )


def list_imports(session: Session, community_id: int, cursor: str | None, limit: int):
    # Newest first: the dashboard shows the latest upload on top.
    stmt = select(RosterImport).where(RosterImport.community_id == community_id)
    before = cursor_id(cursor)
    if before is not None:
        stmt = stmt.where(RosterImport.id < before)
    rows = list(session.exec(stmt.order_by(RosterImport.id.desc()).limit(limit + 1)).all())
    next_cursor = encode_cursor({"id": rows[limit - 1].id}) if len(rows) > limit else None
    rows = rows[:limit]
    return [RosterImportSummary.model_validate(r, update={"error_count": len(r.errors)}) for r in rows], next_cursor


EXPORT_HEADERS = ("小区", "楼栋", "单元", "门牌", "人数", "电话", "已登记电话（仅供核对，导入时忽略）")


def export_roster(session: Session, principal: Principal, community_id: int) -> bytes:
    """The community's active households as an XLSX in the import format: edit it and import it back.

    Phones are stored only as a hash, so the phone column is left blank (blank keeps the stored
    phone on re-import) and the masked number is shown beside it for checking.
    """
    import io

    import xlsxwriter

    community = places.get_community(session, community_id)
    rows = session.exec(
        select(Compound.name, Building.name, Household.unit, Household.door_plate, Household.members, Household.phone_masked)
        .join(Building, Building.id == Household.building_id)
        .join(Compound, Compound.id == Building.compound_id)
        .where(Household.community_id == community_id, Household.status == HouseholdStatus.active)
        .order_by(Compound.name, Building.name, Household.unit, Household.door_plate)
    ).all()
    buf = io.BytesIO()
    book = xlsxwriter.Workbook(buf, {"in_memory": True, "strings_to_formulas": False, "strings_to_numbers": False})
    sheet = book.add_worksheet("花名册")
    bold = book.add_format({"bold": True})
    sheet.write_row(0, 0, EXPORT_HEADERS, bold)
    sheet.set_column(0, 1, 14)
    sheet.set_column(6, 6, 34)
    sheet.freeze_panes(1, 0)
    for i, (compound, building, unit, door_plate, members, masked) in enumerate(rows, start=1):
        sheet.write_row(i, 0, (compound, building, unit, door_plate, members, "", masked or ""))
    book.close()
    audit.record(
        session,
        actor_user_id=principal.user_id,
        action="roster.export",
        object_type="community",
        object_id=community.id,
        community_id=community_id,
        request_id=principal.request_id,
        detail={"households": len(rows)},
    )
    session.commit()
    return buf.getvalue()


def errors_csv(record: RosterImport, english: bool) -> bytes:
    """The problems as a CSV Excel opens correctly (UTF-8 with BOM): row, column, problem."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["row", "column", "problem"] if english else ["行号", "列", "问题"])
    for e in record.errors:
        writer.writerow([e["row"], neutral(e["column"]), neutral(e["en"] if english else e["zh"])])
    return out.getvalue().encode("utf-8-sig")
