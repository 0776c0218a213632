"""The missed-dose job: registered, batched, idempotent, safe when two runs overlap."""

from __future__ import annotations

import threading
import uuid
from datetime import date, timedelta

import pytest
import time_machine
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from api.auth.models import User
from api.medications import queries, services
from api.medications.models import Dose
from api.sync.models import Change
from jobs import missed_doses
from jobs.__main__ import build_scheduler, run_in_transaction
from tests.medications.conftest import NOW, regimen


@pytest.fixture
def db(committed_db: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=committed_db, expire_on_commit=False)


def seed(factory: sessionmaker[Session], regimens: int = 3) -> User:
    """A patient with `regimens` twice-daily regimens from 2026-06-08 (5 doses due at NOW)."""
    with factory() as session:
        user = User(
            email=f"{uuid.uuid4().hex}@example.test",
            password_hash="x",
            display_name="Job test",
            timezone="America/New_York",
        )
        session.add(user)
        session.flush()
        for i in range(regimens):
            services.create_medication(
                session,
                user_id=user.id,
                timezone=user.timezone,
                body=regimen(name=f"med {i}"),
                now=NOW,
            )
        session.commit()
        return user


def missed_rows(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(Dose).where(Dose.status == "missed"))


def test_the_scheduler_runs_it_every_few_minutes(app: Flask) -> None:
    job = build_scheduler(app).get_job("missed_doses")
    assert job is not None
    assert job.trigger.interval == timedelta(seconds=app.config["MISSED_DOSES_INTERVAL"])
    assert job.args[1] is missed_doses.run


def test_run_commits_in_batches_and_is_idempotent(
    app: Flask, db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The app fixture swaps the engine but not the sessionmaker bound to the first one; jobs
    # open sessions from it, so point it at the test engine (no connection left open).
    monkeypatch.setattr(app.extensions["db"], "sessionmaker", db)
    seed(db, regimens=3)
    kwargs = {"window_minutes": 60, "lookback_days": 7, "batch_size": 2}
    with time_machine.travel(NOW, tick=False):
        assert run_in_transaction(app, missed_doses.run, **kwargs) == 15
        assert run_in_transaction(app, missed_doses.run, **kwargs) == 0
    assert missed_rows(db) == 15
    with db() as session:
        upserts = session.scalar(
            select(func.count()).select_from(Change).where(Change.entity_type == "dose")
        )
    assert upserts == 15


def test_the_lookback_bounds_the_job_not_the_reads(db: sessionmaker[Session]) -> None:
    user = seed(db, regimens=1)
    with db() as session:
        stored = services.mark_missed_doses(session, now=NOW, lookback=timedelta(days=1))
        session.commit()
        # Only doses after NOW - 1 day: 06-10 00:00Z and 06-10 12:00Z.
        assert stored == 2
        report = queries.adherence_report(
            session, user_id=user.id, now=NOW, start=NOW - timedelta(days=7), end=NOW
        )
    assert report["overall"]["missed"] == 5


@pytest.mark.postgres_only
def test_overlapping_runs_store_each_missed_dose_once(
    backend: str, db: sessionmaker[Session]
) -> None:
    if backend != "postgresql":
        pytest.skip("real concurrency needs PostgreSQL")
    seed(db, regimens=4)
    barrier = threading.Barrier(2)
    results: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with db() as session:
                barrier.wait(timeout=10)
                results.append(services.mark_missed_doses(session, now=NOW))
                session.commit()
        except BaseException as exc:  # reported below; a thread cannot fail the test itself
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert sum(results) == 20
    assert missed_rows(db) == 20


def test_a_regimen_that_ended_is_left_alone(db: sessionmaker[Session]) -> None:
    with db() as session:
        user = User(
            email=f"{uuid.uuid4().hex}@example.test",
            password_hash="x",
            display_name="Ended",
            timezone="America/New_York",
        )
        session.add(user)
        session.flush()
        services.create_medication(
            session,
            user_id=user.id,
            timezone=user.timezone,
            body=regimen(start_date=date(2026, 1, 1), end_date=date(2026, 1, 31)),
            now=NOW,
        )
        session.commit()
        with_counter = services.mark_missed_doses(session, now=NOW)
        session.commit()
    assert with_counter == 0
