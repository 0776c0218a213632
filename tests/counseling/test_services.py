"""Counseling sessions and attendance through the service functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.counseling import services
from api.errors import NotFound, ValidationError
from api.sync.models import Change
from api.sync.services import LOADERS

NOW = datetime(2026, 6, 10, 16, 0, tzinfo=UTC)


def body(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": None,
        "kind": "individual",
        "title": "Weekly check-in",
        "starts_at": NOW,
        "duration_minutes": 50,
        "provider_name": None,
        "location": None,
        "attendance": "scheduled",
        "note": None,
    }
    values.update(overrides)
    return values


def add(session: Session, user: Any, **overrides: Any) -> Any:
    item, _ = services.create_session(session, user_id=user.id, body=body(**overrides), now=NOW)
    return item


def test_attendance_summary_counts_and_rate(session: Session, patient: Any) -> None:
    statuses = [
        "attended",
        "attended",
        "attended",
        "missed",
        "cancelled",
        "rescheduled",
        "scheduled",
    ]
    for i, status in enumerate(statuses):
        add(session, patient, starts_at=NOW - timedelta(days=i), attendance=status)
    summary = services.attendance_summary(session, user_id=patient.id)
    assert summary["counts"] == {
        "scheduled": 1,
        "attended": 3,
        "missed": 1,
        "cancelled": 1,
        "rescheduled": 1,
    }
    assert summary["total"] == 7
    assert summary["attendance_rate"] == 0.75
    # A range on starts_at: [from, to).
    ranged = services.attendance_summary(
        session, user_id=patient.id, start=NOW - timedelta(days=2), end=NOW
    )
    assert ranged["counts"]["attended"] == 2 and ranged["total"] == 2
    assert ranged["attendance_rate"] == 1.0


def test_rate_is_null_without_attended_or_missed(
    session: Session, patient: Any, make_patient
) -> None:
    add(session, patient, attendance="cancelled")
    assert services.attendance_summary(session, user_id=patient.id)["attendance_rate"] is None
    assert services.attendance_summary(session, user_id=make_patient().id)["total"] == 0
    with pytest.raises(ValidationError):
        services.attendance_summary(session, user_id=patient.id, start=NOW, end=NOW)


def test_changes_are_recorded_and_the_loader_dumps(
    session: Session, patient: Any, make_patient
) -> None:
    item = add(session, patient, note="private")
    services.set_attendance(
        session, user_id=patient.id, session_id=item.id, status="attended", now=NOW
    )
    gone = add(session, patient)
    services.delete_session(session, user_id=patient.id, session_id=gone.id, now=NOW)
    other = add(session, make_patient())
    feed = session.execute(
        select(Change.entity_id, Change.op)
        .where(Change.user_id == patient.id, Change.entity_type == "counseling_session")
        .order_by(Change.seq)
    ).all()
    assert [tuple(row) for row in feed] == [
        (item.id, "upsert"),
        (item.id, "upsert"),
        (gone.id, "upsert"),
        (gone.id, "delete"),
    ]
    loaded = LOADERS["counseling_session"](session, patient.id, [item.id, gone.id, other.id])
    assert list(loaded) == [item.id]
    assert loaded[item.id]["attendance"] == "attended"
    assert loaded[item.id]["starts_at"] == NOW.isoformat()


def test_another_users_session_is_not_found(session: Session, patient: Any, make_patient) -> None:
    item = add(session, make_patient())
    for call in (
        lambda: services.get_session_for(session, user_id=patient.id, session_id=item.id),
        lambda: services.set_attendance(
            session, user_id=patient.id, session_id=item.id, status="missed", now=NOW
        ),
        lambda: services.delete_session(session, user_id=patient.id, session_id=item.id, now=NOW),
    ):
        with pytest.raises(NotFound):
            call()
    assert item.attendance == "scheduled"
