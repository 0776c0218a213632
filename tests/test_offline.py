"""create_once: client ids make creates safe to resend (contract: Conventions)."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, inspect, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from api.checkins.models import Checkin
from api.errors import Conflict
from api.offline import create_once

NOW = datetime(2026, 3, 8, 12, 0, tzinfo=UTC)


def new(user_id: uuid.UUID, checkin_id: uuid.UUID | None, note: str = "n") -> Checkin:
    checkin = Checkin(id=checkin_id, user_id=user_id, note=note, created_at=NOW, updated_at=NOW)
    checkin.set_recorded_at(NOW)
    return checkin


def body(checkin_id: uuid.UUID | None, note: str = "n") -> dict[str, Any]:
    return {"id": checkin_id, "recorded_at": NOW, "note": note}


def test_created_object_is_persistent_and_editable(session: Session, patient: Any) -> None:
    checkin_id = uuid.uuid4()
    obj, created = create_once(session, new(patient.id, checkin_id), body=body(checkin_id))
    assert created and inspect(obj).persistent and obj.id == checkin_id
    assert obj.deleted_at is None  # every column is loaded, none is left to lazy-load
    obj.note = "edited"
    session.commit()
    session.expire_all()
    stored = session.get(Checkin, checkin_id)
    assert stored is not None and stored.note == "edited"
    assert stored.create_fingerprint == obj.create_fingerprint


def test_server_ids_resends_and_mismatches(
    session: Session, patient: Any, make_patient: Any
) -> None:
    fresh, created = create_once(session, new(patient.id, None), body=body(None))
    assert created and fresh.id is not None
    checkin_id = uuid.uuid4()
    create_once(session, new(patient.id, checkin_id), body=body(checkin_id))
    again, created = create_once(session, new(patient.id, checkin_id), body=body(checkin_id))
    assert (again.id, created) == (checkin_id, False)
    with pytest.raises(Conflict):
        create_once(session, new(patient.id, checkin_id, "x"), body=body(checkin_id, "x"))
    with pytest.raises(Conflict):
        create_once(session, new(make_patient().id, checkin_id), body=body(checkin_id))
    assert session.scalar(select(func.count()).select_from(Checkin)) == 2


def test_an_object_already_in_the_session_takes_the_savepoint_path(
    session: Session, patient: Any
) -> None:
    checkin_id = uuid.uuid4()
    pending = new(patient.id, checkin_id)
    session.add(pending)
    obj, created = create_once(session, pending, body=body(checkin_id))
    assert created and obj is pending and inspect(obj).persistent
    again, created = create_once(session, new(patient.id, checkin_id), body=body(checkin_id))
    assert not created and again is pending


def test_concurrent_resends_store_one_row(app: Any, committed_db: Engine) -> None:
    from tests.test_idempotency import _committed_patient

    _committed_patient(app)
    with Session(committed_db) as s:
        from api.auth.models import User

        user_id = s.scalars(select(User.id)).one()
    checkin_id = uuid.uuid4()
    barrier = threading.Barrier(2)
    outcomes: list[bool] = []

    def resend() -> None:
        with Session(committed_db) as s:
            barrier.wait()
            _, created = create_once(s, new(user_id, checkin_id), body=body(checkin_id))
            s.commit()
            outcomes.append(created)

    threads = [threading.Thread(target=resend) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == [False, True]
    with committed_db.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Checkin)) == 1
