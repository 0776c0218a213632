"""The database layer: connection settings, aware UTC datetimes, constraints on both backends."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from api.auth.models import AuthSession, User


def test_connection_settings(engine: Engine, backend: str) -> None:
    with engine.connect() as conn:
        if backend == "sqlite":  # WAL, foreign keys on, a busy timeout
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 15000
        else:
            assert engine.dialect.driver == "psycopg"
            assert conn.exec_driver_sql("SHOW server_encoding").scalar() == "UTF8"
            # No JIT: it compiled for 130-400 ms on the roster's 40 ms query (see api.db).
            assert conn.exec_driver_sql("SHOW jit").scalar() == "off"


def test_datetimes_are_aware_utc_in_and_out(session: Session, patient: User) -> None:
    lisbon_summer = timezone(timedelta(hours=1))
    login = AuthSession(
        user_id=patient.id, created_at=datetime(2026, 7, 1, 9, 30, tzinfo=lisbon_summer)
    )
    session.add(login)
    session.commit()
    session.expire_all()
    stored = session.get(AuthSession, login.id)
    assert stored is not None
    assert stored.created_at == datetime(2026, 7, 1, 8, 30, tzinfo=UTC)
    assert stored.created_at.utcoffset() == timedelta(0)


def test_a_naive_datetime_is_refused(session: Session, patient: User) -> None:
    session.add(AuthSession(user_id=patient.id, created_at=datetime(2026, 7, 1, 9, 30)))  # noqa: DTZ001
    with pytest.raises(StatementError, match="naive datetime refused"):
        session.flush()
    session.rollback()


def test_foreign_keys_and_checks_are_enforced(session: Session) -> None:
    session.add(AuthSession(user_id=uuid.uuid4(), created_at=datetime.now(UTC)))
    with pytest.raises(IntegrityError):  # no such user
        session.flush()
    session.rollback()
    now = datetime.now(UTC)
    with pytest.raises(IntegrityError):  # the role check
        session.execute(
            sa.insert(User).values(
                id=uuid.uuid4(),
                email="x@example.test",
                password_hash="h",
                display_name="X",
                role="superuser",
                timezone="UTC",
                discreet_notifications=False,
                created_at=now,
                updated_at=now,
            )
        )
    session.rollback()
