"""A batch job over many patients survives one poisoned patient (issue 11 item 5): the others are
served, the failure is logged with ids only and counted in waymark_job_item_failures_total."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.alerts import evaluation as alert_evaluation
from api.alerts.models import Alert
from api.auth.models import User
from api.medications import services as medication_services
from api.medications.models import Dose, Medication
from api.summaries import services as summary_services
from api.summaries.models import WeeklySummary
from jobs import alerts as alert_job
from jobs import isolation, missed_doses, weekly_summaries
from tests.consenting import sign
from tests.medications.conftest import NOW, regimen
from tests.support.demo import generate_demo
from tests.support.demo_seed import seed_demo

POISON_ZONE = "Pacific/Chatham"  # the poisoned patient's zone: how the patched code knows it
N = 3


def failures(job: str) -> float:
    return isolation.ITEM_FAILURES.labels(job)._value.get()


def _logged_ids_only(text: str, job: str, secret: str) -> None:
    lines = [json.loads(x) for x in text.splitlines() if '"job.item_failed"' in x]
    assert lines, "the failure was not logged"
    assert all(line["job"] == job for line in lines)
    assert secret not in text  # the error's message is never logged


def _patients(
    session: Session, make_patient: Callable[..., Any], make_clinician: Callable[..., Any]
) -> tuple[list[Any], Any]:
    """N patients seeded with the demo's weeks (alerts to raise, summaries to build), all sharing
    everything with one clinician; the last one is the poisoned one (its own zone)."""
    demo = generate_demo(seed=6)
    clinician = make_clinician()
    patients = []
    for i in range(N):
        zone = POISON_ZONE if i == N - 1 else demo.timezone
        patient = make_patient(timezone=zone)
        seed_demo(session, demo, patient_id=patient.id, created_at=demo.start, fresh_ids=True)
        session.commit()
        sign(
            session,
            patient=patient,
            clinician=clinician,
            categories=["symptoms", "medications", "counseling"],
            now=demo.start - timedelta(days=1),
            days=120,
            share_weekly_summary=True,
        )
        patients.append(patient)
    return patients, demo


def test_the_alert_job_serves_every_patient_but_the_poisoned_one(
    app: Flask,
    session: Session,
    make_patient: Callable[..., Any],
    make_clinician: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    patients, demo = _patients(session, make_patient, make_clinician)
    real = alert_evaluation.evaluate

    def poisoned(data: Any, *, window: Any, **kw: Any) -> Any:
        if window.timezone == POISON_ZONE:
            raise OverflowError("date value out of range: SECRET-VALUE")
        return real(data, window=window, **kw)

    monkeypatch.setattr(alert_evaluation, "evaluate", poisoned)
    before = failures("alerts")
    capsys.readouterr()
    raised = alert_job.evaluate_alerts(session, now=demo.now, config=app.config)
    _logged_ids_only(capsys.readouterr().out, "alerts", "SECRET-VALUE")
    assert failures("alerts") == before + 1
    per_patient = dict(
        session.execute(select(Alert.patient_id, func.count()).group_by(Alert.patient_id)).all()
    )
    assert set(per_patient) == {p.id for p in patients[:-1]}
    assert raised == sum(per_patient.values()) > 0


def test_a_year_one_regimen_no_longer_poisons_the_alert_job(
    app: Flask,
    session: Session,
    make_patient: Callable[..., Any],
    make_clinician: Callable[..., Any],
) -> None:
    # The finding itself: a medication starting 0001-01-01, stored before dates were bounded.
    patients, demo = _patients(session, make_patient, make_clinician)
    session.add(
        Medication(
            user_id=patients[-1].id,
            name="Regimen",
            dose=8.0,
            unit="mg",
            times=["08:00"],
            days_of_week=None,
            start_date=date(1, 1, 1),
            end_date=None,
            as_needed=False,
            schedule_timezone=POISON_ZONE,
            created_at=demo.start,
            updated_at=demo.start,
        )
    )
    session.commit()
    alert_job.evaluate_alerts(session, now=demo.now, config=app.config)
    alerted = set(session.scalars(select(Alert.patient_id).distinct()))
    assert {p.id for p in patients[:-1]} <= alerted


def test_the_weekly_summary_job_serves_every_patient_but_the_poisoned_one(
    app: Flask,
    session: Session,
    make_patient: Callable[..., Any],
    make_clinician: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    patients, _demo = _patients(session, make_patient, make_clinician)
    real = summary_services.week_of

    def poisoned(now: datetime, timezone: str) -> Any:
        if timezone == POISON_ZONE:
            raise OverflowError("SECRET-VALUE")
        return real(now, timezone)

    monkeypatch.setattr(summary_services, "week_of", poisoned)
    before = failures("weekly_summaries")
    capsys.readouterr()
    build = datetime(2026, 11, 17, 12, 0, tzinfo=UTC)
    built = weekly_summaries.build_weekly_summaries(session, now=build, config=app.config)
    _logged_ids_only(capsys.readouterr().out, "weekly_summaries", "SECRET-VALUE")
    assert failures("weekly_summaries") == before + 1
    assert built == N - 1
    stored = set(session.scalars(select(WeeklySummary.patient_id)))
    assert stored == {p.id for p in patients[:-1]}


def test_the_missed_dose_job_serves_every_regimen_but_the_poisoned_one(
    app: Flask,
    session: Session,
    make_patient: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    users: list[User] = [make_patient() for _ in range(N)]
    regimens = [
        medication_services.create_medication(
            session, user_id=u.id, timezone=u.timezone, body=regimen(name="med"), now=NOW
        )[0]
        for u in users
    ]
    session.commit()
    poisoned_id = regimens[-1].id
    real = medication_services.regimen_doses

    def poisoned(medication: Any, start: datetime, end: datetime) -> Any:
        if medication.id == poisoned_id:
            raise OverflowError("SECRET-VALUE")
        return real(medication, start, end)

    monkeypatch.setattr(medication_services, "regimen_doses", poisoned)
    before = failures("missed_doses")
    capsys.readouterr()
    with time_machine.travel(NOW, tick=False):
        stored = missed_doses.run(
            session, now=NOW, window_minutes=60, lookback_days=7, batch_size=10
        )
    _logged_ids_only(capsys.readouterr().out, "missed_doses", "SECRET-VALUE")
    assert failures("missed_doses") == before + 1
    per_regimen = dict(
        session.execute(
            select(Dose.medication_id, func.count())
            .where(Dose.status == "missed")
            .group_by(Dose.medication_id)
        ).all()
    )
    assert set(per_regimen) == {m.id for m in regimens[:-1]}
    assert stored == sum(per_regimen.values()) > 0


def test_a_database_outage_is_not_skipped_as_an_item(session: Session) -> None:
    from sqlalchemy.exc import OperationalError

    def down(_after: Any, _limit: int) -> tuple[int, Any]:
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    with pytest.raises(OperationalError):
        isolation.keyset_batches(
            session, job="test", item="id", run=down, next_key=lambda _a: uuid.uuid4(), limit=5
        )


def test_the_reminder_dispatcher_serves_every_rule_but_the_poisoned_one(
    session: Session,
    make_patient: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from api.notifications.models import Notification
    from api.reminders import services as reminder_services
    from api.reminders.dispatch import DispatchSettings
    from api.reminders.models import ReminderRule
    from jobs.reminders import dispatch_reminders

    created = datetime(2026, 12, 1, 13, 0, tzinfo=UTC)
    rules = []
    for i in range(N):
        user = make_patient(timezone=POISON_ZONE if i == N - 1 else "America/New_York")
        body = {"kind": "checkin", "local_time": "09:00", "channels": ["inbox"]}
        rule, _ = reminder_services.create_rule(session, user=user, body=body, now=created)
        session.commit()
        rules.append(rule)
    real = reminder_services.next_occurrence

    def poisoned(rule: Any, **kw: Any) -> Any:
        if rule.timezone == POISON_ZONE:
            raise OverflowError("SECRET-VALUE")
        return real(rule, **kw)

    monkeypatch.setattr(reminder_services, "next_occurrence", poisoned)
    before = failures("reminder_dispatch")
    capsys.readouterr()
    settings = DispatchSettings(grace=timedelta(minutes=30), batch_size=50)
    dispatch_reminders(session, now=created + timedelta(days=1), settings=settings)
    _logged_ids_only(capsys.readouterr().out, "reminder_dispatch", "SECRET-VALUE")
    assert failures("reminder_dispatch") == before + 1
    notified = set(session.scalars(select(Notification.rule_id)))
    assert notified == {r.id for r in rules[:-1]}
    # The poisoned rule is parked for an hour, not claimed again by every run.
    parked = session.get(ReminderRule, rules[-1].id)
    assert parked is not None
    session.refresh(parked)
    assert parked.next_fire_at is not None and parked.next_fire_at > created + timedelta(days=1)
