"""Counseling sessions and attendance. Services flush, never commit."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.counseling import signals
from api.counseling.models import ATTENDANCE, CounselingSession
from api.counseling.schemas import CounselingSessionSchema
from api.errors import NotFound, ValidationError
from api.offline import create_once
from api.pagination import keyset_page
from api.sync.services import record_change, register_entity

log = structlog.get_logger("waymark.counseling")

_FIELDS = (
    "kind",
    "title",
    "starts_at",
    "duration_minutes",
    "provider_name",
    "location",
    "attendance",
    "note",
)


def _changed(session: Session, item: CounselingSession, *, op: str, now: datetime) -> None:
    record_change(
        session,
        user_id=item.user_id,
        entity_type="counseling_session",
        entity_id=item.id,
        op=op,
        now=now,
    )
    # Counseling reminders aim at the next scheduled session: added, moved, cancelled or gone.
    signals.send_sessions_changed(session, user_id=item.user_id, now=now)


def get_session_for(
    session: Session, *, user_id: uuid.UUID, session_id: uuid.UUID
) -> CounselingSession:
    """Raises NotFound unless the counseling session exists and is the user's."""
    item = session.get(CounselingSession, session_id)
    if item is None or item.user_id != user_id:
        raise NotFound("No such counseling session.")
    return item


def list_sessions(
    session: Session,
    *,
    user_id: uuid.UUID,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[CounselingSession], str | None]:
    """The user's sessions with starts_at in [start, end), latest first."""
    stmt = select(CounselingSession).where(CounselingSession.user_id == user_id)
    if start is not None:
        stmt = stmt.where(CounselingSession.starts_at >= start)
    if end is not None:
        stmt = stmt.where(CounselingSession.starts_at < end)
    return keyset_page(
        session,
        stmt,
        order=CounselingSession.starts_at,
        tiebreak=CounselingSession.id,
        limit=limit,
        cursor=cursor,
    )


def create_session(
    session: Session, *, user_id: uuid.UUID, body: dict[str, Any], now: datetime
) -> tuple[CounselingSession, bool]:
    """Store a session (idempotent on a client id). Returns (session, created)."""
    values = {key: body[key] for key in _FIELDS}
    values["starts_at"] = values["starts_at"].astimezone(UTC)
    item = CounselingSession(
        id=body.get("id"), user_id=user_id, created_at=now, updated_at=now, **values
    )
    item, created = create_once(session, item, body=body)
    if created:
        _changed(session, item, op="upsert", now=now)
        log.info("counseling_session.created", session_id=str(item.id), user_id=str(user_id))
    return item, created


def update_session(
    session: Session,
    *,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    changes: dict[str, Any],
    now: datetime,
) -> CounselingSession:
    item = get_session_for(session, user_id=user_id, session_id=session_id)
    for key in ("kind", "title", "starts_at", "duration_minutes", "attendance"):
        if key in changes and changes[key] is None:
            raise ValidationError({key: ["Field may not be null."]})
    for key, value in changes.items():
        setattr(item, key, value.astimezone(UTC) if key == "starts_at" else value)
    item.updated_at = now
    session.flush()
    _changed(session, item, op="upsert", now=now)
    log.info("counseling_session.updated", session_id=str(item.id), user_id=str(user_id))
    return item


def set_attendance(
    session: Session, *, user_id: uuid.UUID, session_id: uuid.UUID, status: str, now: datetime
) -> CounselingSession:
    """PUT .../attendance: record whether the session happened and was attended."""
    return update_session(
        session, user_id=user_id, session_id=session_id, changes={"attendance": status}, now=now
    )


def delete_session(
    session: Session, *, user_id: uuid.UUID, session_id: uuid.UUID, now: datetime
) -> None:
    item = get_session_for(session, user_id=user_id, session_id=session_id)
    session.delete(item)
    session.flush()
    _changed(session, item, op="delete", now=now)
    log.info("counseling_session.deleted", session_id=str(session_id), user_id=str(user_id))


def attendance_summary(
    session: Session,
    *,
    user_id: uuid.UUID,
    start: datetime | None = None,
    end: datetime | None = None,
) -> dict[str, Any]:
    """Sessions per attendance status with starts_at in [start, end), and attendance_rate =
    attended / (attended + missed), null when neither (one query)."""
    if start is not None and end is not None and start >= end:
        raise ValidationError({"to": ["to must be after from."]})
    stmt = (
        select(CounselingSession.attendance, func.count())
        .where(CounselingSession.user_id == user_id)
        .group_by(CounselingSession.attendance)
    )
    if start is not None:
        stmt = stmt.where(CounselingSession.starts_at >= start)
    if end is not None:
        stmt = stmt.where(CounselingSession.starts_at < end)
    counts = dict.fromkeys(ATTENDANCE, 0)
    counts.update(dict(session.execute(stmt).all()))
    decided = counts["attended"] + counts["missed"]
    return {
        "from": start,
        "to": end,
        "counts": counts,
        "total": sum(counts.values()),
        "attendance_rate": round(counts["attended"] / decided, 4) if decided else None,
    }


def load_sessions(
    session: Session, user_id: uuid.UUID, ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    rows = session.scalars(
        select(CounselingSession).where(
            CounselingSession.user_id == user_id, CounselingSession.id.in_(list(ids))
        )
    )
    schema = CounselingSessionSchema()
    return {row.id: schema.dump(row) for row in rows}


register_entity("counseling_session", load_sessions)
