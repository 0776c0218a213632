"""Check-ins: create (offline-safe), list, read, edit (re-scored), delete (tombstone)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from api import idempotency
from api.checkins.models import CRAVING_SCALE, Checkin
from api.checkins.schemas import CheckinSchema
from api.errors import Conflict, NotFound, ValidationError
from api.instruments import services as instruments
from api.offline import create_once
from api.pagination import keyset_page
from api.sync.services import record_change, register_entity

log = structlog.get_logger("waymark.checkins")

MAX_FUTURE = timedelta(minutes=10)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # older is a clock or typing error
_CONTENT = ("instrument", "symptoms", "craving", "sleep_hours", "note")


def _check_recorded_at(value: datetime, *, now: datetime) -> None:
    offset = value.utcoffset()
    if offset is None or offset.total_seconds() % 60:
        raise ValidationError({"recorded_at": ["Use an offset in whole minutes."]})
    if value < EARLIEST:
        raise ValidationError({"recorded_at": ["Must be in 2000 or later."]})
    if value > now + MAX_FUTURE:
        raise ValidationError({"recorded_at": ["Must not be more than 10 minutes in the future."]})


def _score(checkin: Checkin, instrument: str | None, answers: Any) -> None:
    if instrument is None:
        checkin.instrument = checkin.instrument_version = None
        checkin.answers = checkin.total = checkin.severity = None
        return
    result = instruments.score(instrument, answers)  # validates every item first
    definition = instruments.get_instrument(instrument)
    checkin.instrument = instrument
    checkin.instrument_version = definition.version
    checkin.answers = {item.key: answers[item.key] for item in definition.items}  # item order
    checkin.total = result.total
    checkin.severity = result.severity


def _set_craving(checkin: Checkin, value: int | None) -> None:
    checkin.craving = value
    checkin.craving_scale = None if value is None else CRAVING_SCALE


def _require_content(checkin: Checkin) -> None:
    if all(getattr(checkin, name) in (None, "", {}) for name in _CONTENT):
        raise ValidationError(
            {"_schema": [f"Record at least one of: {', '.join(_CONTENT)}."]},
        )


def create_checkin(
    session: Session, *, user_id: uuid.UUID, body: dict[str, Any], now: datetime
) -> tuple[Checkin, bool]:
    """Returns (check-in, created). Raises ValidationError (bad answers, recorded_at in the
    future), Conflict (the id is used with another body, or belongs to a deleted check-in)."""
    _check_recorded_at(body["recorded_at"], now=now)
    checkin = Checkin(id=body.get("id"), user_id=user_id, created_at=now, updated_at=now)
    checkin.set_recorded_at(body["recorded_at"])
    _score(checkin, body.get("instrument"), body.get("answers"))
    checkin.symptoms = body.get("symptoms")
    _set_craving(checkin, body.get("craving"))
    checkin.sleep_hours = body.get("sleep_hours")
    checkin.note = body.get("note")
    _require_content(checkin)

    # The feed row is written with the check-in (one statement on PostgreSQL).
    checkin, created = create_once(session, checkin, body=body, feed="checkin", now=now)
    if checkin.deleted_at is not None:
        raise Conflict("This check-in was deleted; its id cannot be used again.")
    if created:
        log.info("checkin.created", checkin_id=str(checkin.id), user_id=str(user_id))
    return checkin, created


def list_checkins(
    session: Session,
    *,
    user_id: uuid.UUID,
    from_: datetime | None,
    to: datetime | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Checkin], str | None]:
    """Newest first; `from_` inclusive, `to` exclusive, on recorded_at."""
    if from_ is not None and to is not None and from_ > to:
        raise ValidationError({"to": ["Must not be before from."]})
    stmt = select(Checkin).where(Checkin.user_id == user_id, Checkin.deleted_at.is_(None))
    if from_ is not None:
        stmt = stmt.where(Checkin.recorded_at >= from_)
    if to is not None:
        stmt = stmt.where(Checkin.recorded_at < to)
    return keyset_page(
        session, stmt, order=Checkin.recorded_at, tiebreak=Checkin.id, limit=limit, cursor=cursor
    )


def _own(session: Session, *, user_id: uuid.UUID, checkin_id: uuid.UUID) -> Checkin | None:
    return session.scalar(
        select(Checkin).where(Checkin.id == checkin_id, Checkin.user_id == user_id)
    )


def get_checkin(session: Session, *, user_id: uuid.UUID, checkin_id: uuid.UUID) -> Checkin:
    """Raises NotFound for another user's, a deleted or an unknown check-in."""
    checkin = _own(session, user_id=user_id, checkin_id=checkin_id)
    if checkin is None or checkin.deleted_at is not None:
        raise NotFound("No such check-in.")
    return checkin


def update_checkin(
    session: Session,
    *,
    user_id: uuid.UUID,
    checkin_id: uuid.UUID,
    changes: dict[str, Any],
    now: datetime,
) -> Checkin:
    """Apply a partial edit; a changed instrument or answer set is validated and scored again.

    Raises NotFound, ValidationError.
    """
    checkin = get_checkin(session, user_id=user_id, checkin_id=checkin_id)
    if not changes:
        return checkin
    if "recorded_at" in changes:
        _check_recorded_at(changes["recorded_at"], now=now)
        checkin.set_recorded_at(changes["recorded_at"])
    if "instrument" in changes or "answers" in changes:
        instrument, answers = _edited_answers(checkin, changes)
        _score(checkin, instrument, answers)
    if "symptoms" in changes:
        checkin.symptoms = changes["symptoms"]
    if "craving" in changes:
        _set_craving(checkin, changes["craving"])
    for name in ("sleep_hours", "note"):
        if name in changes:
            setattr(checkin, name, changes[name])
    _require_content(checkin)
    checkin.updated_at = now
    record_change(
        session, user_id=user_id, entity_type="checkin", entity_id=checkin.id, op="upsert", now=now
    )
    session.flush()
    log.info("checkin.updated", checkin_id=str(checkin.id), user_id=str(user_id))
    return checkin


def _edited_answers(checkin: Checkin, changes: dict[str, Any]) -> tuple[str | None, Any]:
    """The instrument and answers after an edit; they change together or stay consistent."""
    instrument = changes.get("instrument", checkin.instrument)
    if instrument is None:
        if changes.get("answers") is not None:
            raise ValidationError({"answers": ["Must be null when instrument is null."]})
        return None, None
    if "answers" in changes:
        if changes["answers"] is None:
            raise ValidationError({"answers": ["Required with instrument; null both to clear."]})
        return instrument, changes["answers"]
    if instrument != checkin.instrument:
        raise ValidationError({"answers": ["Required when the instrument changes."]})
    return instrument, checkin.answers


def delete_checkin(
    session: Session, *, user_id: uuid.UUID, checkin_id: uuid.UUID, now: datetime
) -> None:
    """Erase the content and keep a tombstone; deleting again is a no-op. Raises NotFound."""
    checkin = _own(session, user_id=user_id, checkin_id=checkin_id)
    if checkin is None:
        raise NotFound("No such check-in.")
    if checkin.deleted_at is not None:
        return
    checkin.erase(now=now)
    idempotency.forget_resource(session, user_id=user_id, resource_id=checkin.id)
    record_change(
        session, user_id=user_id, entity_type="checkin", entity_id=checkin.id, op="delete", now=now
    )
    session.flush()
    log.info("checkin.deleted", checkin_id=str(checkin.id), user_id=str(user_id))


_OUTPUT = CheckinSchema()


def load_checkins(
    session: Session, user_id: uuid.UUID, ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    """Sync loader: live check-ins of the user among `ids`, as the API shows them; one query."""
    rows = session.scalars(
        select(Checkin).where(
            Checkin.user_id == user_id, Checkin.id.in_(list(ids)), Checkin.deleted_at.is_(None)
        )
    )
    return {row.id: _OUTPUT.dump(row) for row in rows}


register_entity("checkin", load_checkins)
