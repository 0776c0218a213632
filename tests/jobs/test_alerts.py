"""The alert job over the database: what the pure rules find is stored, once per episode, for
the categories some consent in force shares; clinicians see it with its detail."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.alerts import evaluation
from api.alerts.models import Alert
from api.alerts.rules import Window, evaluate
from jobs import alerts as alert_job
from tests.consenting import sign
from tests.support.demo import DemoPatient, generate_demo
from tests.support.demo_seed import seed_demo
from tests.support.queries import count_queries


@pytest.fixture
def demo() -> DemoPatient:
    return generate_demo(seed=6)


def seeded(
    session: Session, demo: DemoPatient, make_patient: Callable[..., Any], *, fresh: bool = False
) -> Any:
    patient = make_patient(timezone=demo.timezone)
    seed_demo(session, demo, patient_id=patient.id, created_at=demo.start, fresh_ids=fresh)
    session.commit()
    return patient


def expected_keys(app: Flask, demo: DemoPatient, categories: list[str]) -> set[tuple[str, str]]:
    """The pure rules over the demo's own rows, with the job's window."""
    settings = evaluation.alert_settings(app.config)
    window = Window(
        demo.now - timedelta(days=app.config["ALERT_LOOKBACK_DAYS"]), demo.now, demo.timezone
    )
    starts = {
        m.row.id: min(s.scheduled_for for s in demo.scheduled_doses if s.medication_id == m.row.id)
        for m in demo.medications
        if not m.row.as_needed
    }
    return {
        (a.rule, a.episode_key)
        for a in evaluate(
            demo.data(),
            window=window,
            settings=settings,
            categories=categories,
            schedule_starts=starts,
        )
    }


def test_the_job_stores_what_the_rules_find_once(
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    app: Flask,
    session: Session,
    demo: DemoPatient,
    make_patient: Callable[..., Any],
    make_clinician: Callable[..., Any],
) -> None:
    patient = seeded(session, demo, make_patient)
    all_categories = ["symptoms", "medications", "counseling"]
    sign(
        session,
        patient=patient,
        clinician=make_clinician(),
        categories=all_categories,
        now=demo.start,
        days=90,
    )
    capsys.readouterr()
    raised = alert_job.evaluate_alerts(session, now=demo.now, config=app.config)
    logged = "".join(capsys.readouterr()) + caplog.text
    stored = {(a.kind, a.episode_key) for a in session.scalars(select(Alert))}
    # The log names alerts and patients by id only: an alert's kind is health data.
    assert "alert.raised" in logged
    assert not [kind for kind, _ in stored if kind in logged]
    want = expected_keys(app, demo, all_categories)
    assert stored == want and raised == len(want)
    assert {kind for kind, _ in stored} == {
        "severe_withdrawal",
        "rising_trend",
        "checkin_gap",
        "missed_doses",
        "missed_session",
    }
    for alert in session.scalars(select(Alert)):
        assert alert.detail and alert.triggered_at is not None
    # Again, later: nothing new for the same episodes, and nothing even sent to be refused by
    # the unique key (the job re-judges the whole window every run).
    with count_queries(session) as statements:
        rerun = alert_job.evaluate_alerts(
            session, now=demo.now + timedelta(hours=1), config=app.config
        )
    assert rerun == 0
    assert statements and not [s for s in statements if s.lstrip().upper().startswith("INSERT")]


def test_only_the_categories_a_consent_shares_are_evaluated(
    app: Flask,
    session: Session,
    demo: DemoPatient,
    make_patient: Callable[..., Any],
    make_clinician: Callable[..., Any],
) -> None:
    patient = seeded(session, demo, make_patient)
    unconsented = seeded(session, demo, make_patient, fresh=True)  # no consent: never evaluated
    sign(
        session,
        patient=patient,
        clinician=make_clinician(),
        categories=["symptoms"],
        now=demo.start,
        days=90,
    )
    alert_job.evaluate_alerts(session, now=demo.now, config=app.config)
    rows = list(session.scalars(select(Alert)))
    assert rows and {a.category for a in rows} == {"symptoms"}
    assert {a.patient_id for a in rows} == {patient.id}
    assert unconsented.id not in {a.patient_id for a in rows}


def test_clinicians_see_alerts_with_their_detail(
    app: Flask,
    session: Session,
    client: FlaskClient,
    demo: DemoPatient,
    make_patient: Callable[..., Any],
    make_clinician: Callable[..., Any],
    auth_headers: Callable[[Any], dict[str, str]],
) -> None:
    patient = seeded(session, demo, make_patient)
    clinician = make_clinician()
    sign(
        session,
        patient=patient,
        clinician=clinician,
        categories=["counseling"],
        now=demo.start,
        days=90,
    )
    alert_job.evaluate_alerts(session, now=demo.now, config=app.config)
    session.commit()
    listed = client.get("/v1/clinician/alerts", headers=auth_headers(clinician))
    assert listed.status_code == 200
    items = listed.json["items"]
    assert {i["kind"] for i in items} == {"missed_session"}
    assert all("marked missed" in i["detail"] for i in items)
