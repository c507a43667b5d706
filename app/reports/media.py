"""Media items (媒体传播): a committee or NGO records each post or article with its channel and reads,
so the monthly report counts media items and reads from records instead of a hand-typed cell. Every
value of reads is kept as a reading with the time it was recorded (a month reads the last one before
its end), and an item may name the activity it reports.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from app.audit import service as audit
from app.identity.auth import Principal, community_links
from app.kit.errors import not_found
from app.kit.pagination import page_by_id
from app.kit.sql import own_replay
from app.reports.models import (
    MediaItem,
    MediaItemCreate,
    MediaItemPublic,
    MediaItemRecorded,
    MediaItemUpdate,
    MediaReading,
)


def _check_activity(session: Session, community_id: int, activity_id: int | None) -> None:
    from app.activities.service import get_activity

    if activity_id is not None and get_activity(session, activity_id).community_id != community_id:
        raise not_found("活动", "Activity", "activity_id")


def _public(row: MediaItem) -> MediaItemPublic:
    return MediaItemPublic.model_validate(row)


def _recorded(row: MediaItem, replayed: bool = False) -> MediaItemRecorded:
    return MediaItemRecorded.model_validate(row, update={"replayed": replayed})


def create(session: Session, principal: Principal, community_id: int, data: MediaItemCreate) -> MediaItemRecorded:
    """Record a media item; a retried request (same client id) answers with the first record."""
    if data.organisation_id is not None:
        links = community_links(session, community_id)
        if links is None or data.organisation_id not in links[1]:
            raise not_found("社会组织", "Organisation", "organisation_id")
    _check_activity(session, community_id, data.activity_id)

    def stored() -> MediaItem | None:
        return session.exec(
            select(MediaItem).where(MediaItem.community_id == community_id, MediaItem.client_id == data.client_id)
        ).first()

    existing = own_replay(stored(), principal.user_id, "created_by")
    if existing is not None:
        return _recorded(existing, replayed=True)
    row = MediaItem(community_id=community_id, created_by=principal.user_id, **data.model_dump())
    session.add(row)
    try:
        session.flush()
    except IntegrityError:  # the same client id, sent twice at once
        session.rollback()
        return _recorded(stored(), replayed=True)
    session.add(MediaReading(media_item_id=row.id, reads=row.reads, recorded_at=row.created_at))
    audit.record(session, actor_user_id=principal.user_id, action="media_item.create", object_type="media_item",
                 object_id=row.id, community_id=community_id, request_id=principal.request_id,
                 detail={"title": row.title, "channel": row.channel, "reads": row.reads})
    session.commit()
    return _recorded(row)


def list_items(session: Session, community_id: int, start: date | None, end: date | None,
               cursor: str | None, limit: int) -> tuple[list[MediaItemPublic], str | None]:
    stmt = select(MediaItem).where(MediaItem.community_id == community_id)
    if start is not None:
        stmt = stmt.where(MediaItem.published_on >= start)
    if end is not None:
        stmt = stmt.where(MediaItem.published_on <= end)
    rows, next_cursor = page_by_id(session, stmt, MediaItem.id, cursor, limit)
    return [_public(r) for r in rows], next_cursor


def _plain(values: dict) -> dict:
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in values.items()}


def get_item(session: Session, media_item_id: int) -> MediaItem:
    row = session.get(MediaItem, media_item_id)
    if row is None:
        raise not_found("媒体记录", "Media item", "media_item_id")
    return row


def update(session: Session, principal: Principal, media_item_id: int, data: MediaItemUpdate) -> MediaItemPublic:
    """Correct a media item or bring its reads up to date; sending the same values again changes nothing."""
    row = get_item(session, media_item_id)
    changes = {k: v for k, v in data.model_dump(exclude_unset=True, exclude_none=True).items() if getattr(row, k) != v}
    if not changes:
        return _public(row)
    if "activity_id" in changes:
        _check_activity(session, row.community_id, changes["activity_id"])
    if "reads" in changes:
        session.add(MediaReading(media_item_id=row.id, reads=changes["reads"]))
    before = {k: getattr(row, k) for k in changes}
    for k, v in changes.items():
        setattr(row, k, v)
    audit.record(session, actor_user_id=principal.user_id, action="media_item.update", object_type="media_item",
                 object_id=row.id, community_id=row.community_id, request_id=principal.request_id,
                 detail={"before": _plain(before), "after": _plain(changes)})
    session.commit()
    session.refresh(row)
    return _public(row)
