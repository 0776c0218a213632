"""Alerts are data about the events they describe (issue 11, items 1 and 4): judged against the
consent's data window by the time of those events, wherever a clinician meets them (the alert
list, the roster count, the on-demand and weekly summaries, the ledger), and acknowledged by
each clinician for themselves, without ever naming another clinician."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.alerts import services
from api.alerts.models import Alert
from api.checkins import services as checkins
from api.clinician import services as clinician_services
from api.counseling import services as counseling
from api.disclosures.models import Disclosure
from api.errors import ValidationError
from api.instruments.definitions import INSTRUMENTS
from api.medications import services as medications
from api.summaries import services as summaries
from api.summaries.models import WeeklySummary
from jobs import alerts as alert_job
from tests.consenting import sign

# A Monday noon: the weekly job's last week then ends at T0's own Monday midnight.
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
ALL = ["symptoms", "medications", "counseling"]


def _severe_checkin(session: Session, patient: Any, at: datetime) -> None:
    answers = {item.key: item.max for item in INSTRUMENTS["sows"].items}
    checkins.create_checkin(
        session,
        user_id=patient.id,
        body={"id": None, "recorded_at": at, "instrument": "sows", "answers": answers},
        now=at,
    )


def _missed_doses(session: Session, patient: Any, start: date, end: date) -> None:
    created = datetime.combine(start, datetime.min.time(), tzinfo=UTC) - timedelta(hours=1)
    medications.create_medication(
        session,
        user_id=patient.id,
        timezone="UTC",
        body={
            "id": None,
            "name": "Bup",
            "dose": 8.0,
            "unit": "mg",
            "times": ["08:00"],
            "days_of_week": None,
            "start_date": start,
            "end_date": end,
            "as_needed": False,
            "rxnorm_code": None,
        },
        now=created,
    )


def _missed_session(session: Session, patient: Any, at: datetime) -> None:
    counseling.create_session(
        session,
        user_id=patient.id,
        body={
            "id": None,
            "kind": "individual",
            "title": "Weekly",
            "starts_at": at,
            "duration_minutes": 50,
            "provider_name": None,
            "location": None,
            "attendance": "missed",
            "note": None,
        },
        now=at,
    )


def _history_before(session: Session, patient: Any, cut: datetime) -> None:
    """One episode of each event-dated kind, wholly before `cut`."""
    _severe_checkin(session, patient, cut - timedelta(days=3))
    day = (cut - timedelta(days=6)).date()
    _missed_doses(session, patient, day, day + timedelta(days=2))
    _missed_session(session, patient, cut - timedelta(days=2))


def _raise(app: Flask, session: Session, now: datetime) -> set[str]:
    alert_job.evaluate_alerts(session, now=now, config=app.config)
    return {a.kind for a in session.scalars(select(Alert))}


def _page(session: Session, clinician: Any, now: datetime, state: str = "open") -> list[Any]:
    return services.list_alerts(
        session, clinician_id=clinician.id, state=state, limit=50, cursor=None, now=now
    )["items"]


def _on_demand(app: Flask, session: Session, clinician: Any, patient: Any, now: datetime) -> Any:
    return summaries.on_demand_summary(
        session,
        clinician_id=clinician.id,
        patient_id=patient.id,
        start=now - timedelta(days=30),
        end=now,
        now=now,
        config=summaries.SummaryConfig.from_mapping(app.config),
    )


def _roster_count(session: Session, clinician: Any, patient: Any, now: datetime) -> int:
    page = clinician_services.roster(
        session, clinician_id=clinician.id, limit=50, cursor=None, now=now
    )
    return {i["patient_id"]: i["open_alerts"] for i in page["items"]}[patient.id]


@pytest.mark.parametrize("window", ["signed", "data_from"])
def test_alerts_about_events_before_the_window_are_never_shown(
    app: Flask,
    session: Session,
    make_patient: Callable[..., Any],
    make_clinician: Callable[..., Any],
    window: str,
) -> None:
    """A severe SOWS check-in, a run of missed doses and a missed session, all before the
    consent's window (before signing, or before its data_from): the job raises them (another
    consent covers that time), but this clinician never meets them."""
    patient, clinician, other = make_patient(timezone="UTC"), make_clinician(), make_clinician()
    _history_before(session, patient, T0)
    # Another clinician's consent covers the history, so the job does raise those alerts.
    sign(session, patient=patient, clinician=other, categories=ALL, now=T0 - timedelta(days=20))
    kw: dict[str, Any] = {"data_from": T0} if window == "data_from" else {}
    signed_at = T0 if window == "signed" else T0 + timedelta(hours=1)
    sign(session, patient=patient, clinician=clinician, categories=ALL, now=signed_at, **kw)
    now = T0 + timedelta(hours=2)
    assert _raise(app, session, now) >= {"withdrawal_threshold", "missed_doses", "missed_session"}
    assert _page(session, clinician, now) == []
    assert _page(session, clinician, now, state="all") == []
    assert _roster_count(session, clinician, patient, now) == 0
    assert _on_demand(app, session, clinician, patient, now)["sections"]["alerts"]["count"] == 0
    # The clinician whose window holds them sees all three.
    assert {a["kind"] for a in _page(session, other, now)} >= {
        "withdrawal_threshold",
        "missed_doses",
        "missed_session",
    }


def test_a_missed_dose_run_that_began_before_the_window_is_not_shown(
    app: Flask,
    session: Session,
    make_patient: Callable[..., Any],
    make_clinician: Callable[..., Any],
) -> None:
    """Its detail counts doses from before the window: the whole run is judged."""
    patient, clinician, other = make_patient(timezone="UTC"), make_clinician(), make_clinician()
    _missed_doses(
        session, patient, (T0 - timedelta(days=3)).date(), (T0 + timedelta(days=1)).date()
    )
    sign(session, patient=patient, clinician=other, categories=ALL, now=T0 - timedelta(days=20))
    sign(session, patient=patient, clinician=clinician, categories=ALL, now=T0)
    now = T0 + timedelta(days=1, hours=12)
    assert "missed_doses" in _raise(app, session, now)
    (alert,) = session.scalars(select(Alert).where(Alert.kind == "missed_doses"))
    assert alert.events_from < T0 < alert.created_at
    assert _page(session, clinician, now) == []
    assert [a["kind"] for a in _page(session, other, now)] == ["missed_doses"]


def test_the_ledger_records_the_period_of_the_events_shown(
    app: Flask,
    session: Session,
    make_patient: Callable[..., Any],
    make_clinician: Callable[..., Any],
) -> None:
    patient, clinician = make_patient(timezone="UTC"), make_clinician()
    consent = sign(
        session,
        patient=patient,
        clinician=clinician,
        categories=ALL,
        now=T0,
        data_from=T0 - timedelta(days=10),
    )
    reading = T0 - timedelta(days=4)
    _severe_checkin(session, patient, reading)
    now = T0 + timedelta(hours=6)
    _raise(app, session, now)
    shown = _page(session, clinician, now)
    assert [a["kind"] for a in shown] == ["withdrawal_threshold"]
    assert (shown[0]["events_from"], shown[0]["events_to"]) == (reading, reading)
    (row,) = session.scalars(select(Disclosure).where(Disclosure.kind == "read"))
    assert (row.consent_id, row.data_from, row.data_to) == (consent.id, reading, reading)


def test_a_narrowed_consent_hides_alerts_raised_before_it(
    app: Flask,
    session: Session,
    make_patient: Callable[..., Any],
    make_clinician: Callable[..., Any],
) -> None:
    """Derived data is judged by the consent in force now, not the one it was raised under."""
    patient, clinician = make_patient(timezone="UTC"), make_clinician()
    sign(session, patient=patient, clinician=clinician, categories=ALL, now=T0 - timedelta(days=9))
    _severe_checkin(session, patient, T0 - timedelta(days=3))
    _raise(app, session, T0)
    assert len(_page(session, clinician, T0)) == 1
    # The patient narrows the window to data from now on (a new consent replaces the old one).
    sign(session, patient=patient, clinician=clinician, categories=ALL, now=T0 + timedelta(hours=1))
    now = T0 + timedelta(hours=2)
    assert _page(session, clinician, now) == []
    assert _roster_count(session, clinician, patient, now) == 0


def test_acknowledging_is_per_clinician(
    app: Flask,
    session: Session,
    make_patient: Callable[..., Any],
    make_clinician: Callable[..., Any],
) -> None:
    patient, first, second = make_patient(timezone="UTC"), make_clinician(), make_clinician()
    for clinician in (first, second):
        sign(session, patient=patient, clinician=clinician, categories=ALL, now=T0)
    _severe_checkin(session, patient, T0 + timedelta(hours=1))
    now = T0 + timedelta(hours=2)
    _raise(app, session, now)
    (alert,) = session.scalars(select(Alert))
    acked = services.acknowledge_alert(session, clinician_id=first.id, alert_id=alert.id, now=now)
    assert (acked["acknowledged_at"], acked["acknowledged_by"]) == (now, first.id)
    # The first clinician's acknowledgement hides it from their own views only.
    assert _page(session, first, now) == []
    assert _roster_count(session, first, patient, now) == 0
    assert _on_demand(app, session, first, patient, now)["sections"]["alerts"]["count"] == 0
    seen = _page(session, second, now)
    assert [a["id"] for a in seen] == [alert.id]
    assert (seen[0]["acknowledged_at"], seen[0]["acknowledged_by"]) == (None, None)
    assert _page(session, second, now, state="acknowledged") == []
    assert _roster_count(session, second, patient, now) == 1
    assert _on_demand(app, session, second, patient, now)["sections"]["alerts"]["count"] == 1
    # The second acknowledges later: each keeps their own time, and sees only their own id.
    later = now + timedelta(hours=1)
    theirs = services.acknowledge_alert(
        session, clinician_id=second.id, alert_id=alert.id, now=later
    )
    assert (theirs["acknowledged_at"], theirs["acknowledged_by"]) == (later, second.id)
    (mine,) = _page(session, first, later, state="acknowledged")
    assert (mine["acknowledged_at"], mine["acknowledged_by"]) == (now, first.id)


def test_the_weekly_summary_shows_only_the_recipients_open_alerts_in_the_window(
    app: Flask,
    session: Session,
    make_patient: Callable[..., Any],
    make_clinician: Callable[..., Any],
) -> None:
    patient, late, early = make_patient(timezone="UTC"), make_clinician(), make_clinician()
    week_start = T0 - timedelta(days=7, hours=12)  # last Monday 00:00
    sign(session, patient=patient, clinician=early, categories=ALL, now=T0 - timedelta(days=20))
    _severe_checkin(session, patient, week_start - timedelta(days=2))  # before late's window
    _severe_checkin(session, patient, week_start + timedelta(days=3))  # inside both
    _raise(app, session, week_start + timedelta(days=4))
    sign(
        session,
        patient=patient,
        clinician=late,
        categories=ALL,
        now=week_start + timedelta(days=1),
        share_weekly_summary=True,
    )
    sign(
        session,
        patient=patient,
        clinician=early,
        categories=ALL,
        now=week_start + timedelta(days=1),
        data_from=T0 - timedelta(days=20),
        share_weekly_summary=True,
    )
    inside = session.scalar(select(Alert).where(Alert.events_from > week_start))
    assert inside is not None
    services.acknowledge_alert(session, clinician_id=early.id, alert_id=inside.id, now=T0)
    config = summaries.SummaryConfig.from_mapping(app.config)
    summaries.build_weekly_batch(session, now=T0, config=config, after=None, limit=50)
    by_recipient = {s.clinician_id: s.content for s in session.scalars(select(WeeklySummary))}
    late_alerts = by_recipient[late.id]["sections"]["alerts"]
    early_alerts = by_recipient[early.id]["sections"]["alerts"]
    # late: only the reading inside its window; early: only the one it has not acknowledged.
    assert [a["id"] for a in late_alerts["items"]] == [str(inside.id)]
    assert late_alerts["count"] == 1 and early_alerts["count"] == 1
    assert early_alerts["items"][0]["id"] != str(inside.id)


def test_no_clinician_sees_another_clinicians_identity(
    app: Flask,
    client: FlaskClient,
    session: Session,
    make_patient: Callable[..., Any],
    make_clinician: Callable[..., Any],
    auth_headers: Callable[[Any], dict[str, str]],
) -> None:
    now = datetime.now(UTC)
    patient, first, second = make_patient(timezone="UTC"), make_clinician(), make_clinician()
    for clinician in (first, second):
        sign(
            session,
            patient=patient,
            clinician=clinician,
            categories=ALL,
            now=now - timedelta(days=2),
        )
    alert, _ = services.raise_alert(
        session,
        patient_id=patient.id,
        kind="withdrawal_threshold",
        category="symptoms",
        episode_key="e",
        now=now - timedelta(hours=1),
    )
    session.commit()
    answer = client.post(
        f"/v1/clinician/alerts/{alert.id}/acknowledge", headers=auth_headers(first)
    )
    assert answer.status_code == 200 and answer.json["acknowledged_by"] == str(first.id)
    for path in (
        "/v1/clinician/alerts?state=all",
        "/v1/clinician/alerts?state=open",
        "/v1/clinician/patients",
        f"/v1/clinician/patients/{patient.id}/summary",
    ):
        body = client.get(path, headers=auth_headers(second))
        assert body.status_code == 200, path
        assert str(first.id) not in json.dumps(body.json), path
    again = client.post(
        f"/v1/clinician/alerts/{alert.id}/acknowledge", headers=auth_headers(second)
    )
    assert again.json["acknowledged_by"] == str(second.id)
    assert str(first.id) not in again.get_data(as_text=True)


def test_an_acknowledgement_note_is_seen_by_its_author_only(
    app: Flask,
    client: FlaskClient,
    session: Session,
    make_patient: Callable[..., Any],
    make_clinician: Callable[..., Any],
    auth_headers: Callable[[Any], dict[str, str]],
) -> None:
    now = datetime.now(UTC)
    patient, first, second = make_patient(timezone="UTC"), make_clinician(), make_clinician()
    for clinician in (first, second):
        sign(
            session,
            patient=patient,
            clinician=clinician,
            categories=ALL,
            now=now - timedelta(days=2),
        )
    alert, _ = services.raise_alert(
        session,
        patient_id=patient.id,
        kind="withdrawal_threshold",
        category="symptoms",
        episode_key="n",
        now=now - timedelta(hours=1),
    )
    session.commit()
    url = f"/v1/clinician/alerts/{alert.id}/acknowledge"
    note = "phoned, stable, follow-up friday"
    answer = client.post(url, json={"note": f"  {note} "}, headers=auth_headers(first))
    assert answer.status_code == 200 and answer.json["acknowledgement_note"] == note
    # A second acknowledgement keeps the first time and note.
    again = client.post(url, json={"note": "other"}, headers=auth_headers(first))
    assert again.json["acknowledgement_note"] == note
    mine = client.get("/v1/clinician/alerts?state=acknowledged", headers=auth_headers(first))
    assert [a["acknowledgement_note"] for a in mine.json["items"]] == [note]
    for path in ("/v1/clinician/alerts?state=all", f"/v1/clinician/patients/{patient.id}/summary"):
        body = client.get(path, headers=auth_headers(second))
        assert body.status_code == 200 and note not in body.get_data(as_text=True), path
    # Acknowledging without a body still works, and has no note.
    theirs = client.post(url, headers=auth_headers(second))
    assert theirs.status_code == 200 and theirs.json["acknowledgement_note"] is None


@pytest.mark.parametrize("note", ["x" * 1001, 5, ["a"]])
def test_a_bad_acknowledgement_note_is_refused_naming_the_field(
    client: FlaskClient,
    session: Session,
    make_patient: Callable[..., Any],
    make_clinician: Callable[..., Any],
    auth_headers: Callable[[Any], dict[str, str]],
    note: Any,
) -> None:
    now = datetime.now(UTC)
    patient, clinician = make_patient(timezone="UTC"), make_clinician()
    sign(session, patient=patient, clinician=clinician, categories=ALL, now=now - timedelta(days=2))
    alert, _ = services.raise_alert(
        session,
        patient_id=patient.id,
        kind="withdrawal_threshold",
        category="symptoms",
        episode_key="b",
        now=now - timedelta(hours=1),
    )
    session.commit()
    answer = client.post(
        f"/v1/clinician/alerts/{alert.id}/acknowledge",
        json={"note": note},
        headers=auth_headers(clinician),
    )
    assert answer.status_code == 422
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    assert "note" in json.dumps(answer.json["errors"])
    assert client.get("/v1/clinician/alerts", headers=auth_headers(clinician)).json["items"]


def test_the_note_is_bounded_in_the_service_and_never_logged(
    session: Session,
    make_patient: Callable[..., Any],
    make_clinician: Callable[..., Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    now = datetime.now(UTC)
    patient, clinician = make_patient(timezone="UTC"), make_clinician()
    sign(session, patient=patient, clinician=clinician, categories=ALL, now=now - timedelta(days=2))
    alert, _ = services.raise_alert(
        session,
        patient_id=patient.id,
        kind="withdrawal_threshold",
        category="symptoms",
        episode_key="s",
        now=now - timedelta(hours=1),
    )
    with pytest.raises(ValidationError):
        services.acknowledge_alert(
            session, clinician_id=clinician.id, alert_id=alert.id, now=now, note="y" * 1001
        )
    acked = services.acknowledge_alert(
        session, clinician_id=clinician.id, alert_id=alert.id, now=now, note="secret-note-text"
    )
    assert acked["acknowledgement_note"] == "secret-note-text"
    out = capsys.readouterr()
    assert "alert.acknowledged" in out.out + out.err
    assert "secret-note-text" not in out.out + out.err
