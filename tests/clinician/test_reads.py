"""Per-patient clinician reads: through the gate, cut to the consent's window, as the patient sees
them, each one disclosed and audited."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.audit.models import AuditEvent
from api.counseling import services as counseling
from api.disclosures.models import Disclosure
from api.disclosures.notice import NOTICE_HEADER
from api.medications import services as medications
from tests.consenting import sign

NOW = datetime.now(UTC)


def as_needed(session: Session, patient: Any, *, name: str = "buprenorphine") -> Any:
    medication, _ = medications.create_medication(
        session,
        user_id=patient.id,
        timezone=patient.timezone,
        body={
            "id": None,
            "name": name,
            "dose": 8.0,
            "unit": "film",
            "times": [],
            "days_of_week": None,
            "start_date": (NOW - timedelta(days=30)).date(),
            "end_date": None,
            "as_needed": True,
            "rxnorm_code": None,
        },
        now=NOW - timedelta(days=30),
    )
    return medication


def take(session: Session, medication: Any, at: datetime, note: str | None = None) -> Any:
    dose, _ = medications.log_dose(
        session,
        user_id=medication.user_id,
        medication_id=medication.id,
        body={"id": None, "status": "taken", "scheduled_for": None, "taken_at": at, "note": note},
        now=at,
    )
    return dose


def counsel(session: Session, patient: Any, at: datetime, note: str) -> Any:
    item, _ = counseling.create_session(
        session,
        user_id=patient.id,
        body={
            "id": None,
            "kind": "group",
            "title": "Tuesday group",
            "starts_at": at,
            "duration_minutes": 60,
            "provider_name": None,
            "location": None,
            "attendance": "attended",
            "note": note,
        },
        now=at,
    )
    return item


@pytest.fixture
def people(make_patient: Any, make_clinician: Any, auth_headers: Any) -> dict[str, Any]:
    patient, clinician = make_patient(), make_clinician()
    return {
        "patient": patient,
        "clinician": clinician,
        "patient_headers": auth_headers(patient),
        "headers": auth_headers(clinician),
    }


def ledger(session: Session) -> list[Disclosure]:
    session.expire_all()
    return list(session.scalars(select(Disclosure).order_by(Disclosure.at)))


def test_doses_in_the_window_as_the_patient_sees_them(
    client: FlaskClient, session: Session, app: Any, people: dict[str, Any]
) -> None:
    patient, clinician = people["patient"], people["clinician"]
    medication = as_needed(session, patient)
    before = take(session, medication, NOW - timedelta(days=10), note="before")
    inside = [take(session, medication, NOW - timedelta(days=d)) for d in (3, 2, 1)]
    session.commit()
    since = NOW - timedelta(days=5)  # the consent names the last five days
    consent = sign(
        session,
        patient=patient,
        clinician=clinician,
        categories=["medications"],
        now=NOW - timedelta(hours=1),
        data_from=since,
    )
    url = f"/v1/clinician/patients/{patient.id}/doses"
    asked_from = NOW - timedelta(days=20)
    first = client.get(
        url, query_string={"limit": 2, "from": asked_from.isoformat()}, headers=people["headers"]
    )
    assert first.status_code == 200, first.json
    assert first.json["notice"] == app.config["REDISCLOSURE_NOTICE"]
    assert NOTICE_HEADER in first.headers
    second = client.get(
        url,
        query_string={
            "limit": 2,
            "from": asked_from.isoformat(),
            "cursor": first.json["next_cursor"],
        },
        headers=people["headers"],
    )
    seen = [d["id"] for d in first.json["items"] + second.json["items"]]
    assert seen == [str(d.id) for d in reversed(inside)]
    assert str(before.id) not in seen
    own = client.get("/v1/doses", headers=people["patient_headers"]).json["items"]
    by_id = {d["id"]: d for d in own}
    assert all(item == by_id[item["id"]] for item in first.json["items"])

    rows = ledger(session)
    assert len(rows) == 2  # one per page read
    for row in rows:
        assert (row.patient_id, row.recipient_id, row.consent_id) == (
            patient.id,
            clinician.id,
            consent.id,
        )
        assert row.kind == "read" and row.categories == ["medications"]
        assert row.data_from == since  # the request asked for more; the window cut it
        assert row.data_to == row.at
    audit = list(session.scalars(select(AuditEvent).where(AuditEvent.patient_id == patient.id)))
    assert [(a.action, a.outcome) for a in audit] == [("clinician.doses.read", "allowed")] * 2


def test_counseling_sessions_never_carry_their_notes(
    client: FlaskClient, session: Session, people: dict[str, Any]
) -> None:
    patient, clinician = people["patient"], people["clinician"]
    sign(
        session,
        patient=patient,
        clinician=clinician,
        categories=["counseling"],
        now=NOW,
        data_from=NOW - timedelta(days=7),
    )
    item = counsel(session, patient, NOW - timedelta(days=1), note="private-words-123")
    # Upcoming sessions lie after `now`, outside the window of data recorded so far.
    counsel(session, patient, datetime.now(UTC) + timedelta(days=2), note="later")
    session.commit()
    response = client.get(
        f"/v1/clinician/patients/{patient.id}/counseling-sessions",
        query_string={"to": (NOW + timedelta(days=7)).isoformat()},
        headers=people["headers"],
    )
    assert response.status_code == 200
    assert [s["id"] for s in response.json["items"]] == [str(item.id)]
    assert response.json["items"][0]["title"] == "Tuesday group"
    assert "note" not in response.json["items"][0]
    assert "private-words-123" not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("path", "category"),
    [("doses", "medications"), ("counseling-sessions", "counseling")],
)
def test_a_category_not_consented_is_403_naming_it(
    client: FlaskClient, session: Session, people: dict[str, Any], path: str, category: str
) -> None:
    patient = people["patient"]
    sign(session, patient=patient, clinician=people["clinician"], categories=["symptoms"])
    response = client.get(f"/v1/clinician/patients/{patient.id}/{path}", headers=people["headers"])
    assert response.status_code == 403
    assert response.json["missing_category"] == category
    assert category in response.json["detail"]
    assert ledger(session) == []
    audit = session.scalars(select(AuditEvent)).one()
    assert (audit.outcome, audit.status, audit.patient_id) == ("denied", 403, patient.id)


def test_expired_revoked_or_absent_consent_is_404(
    client: FlaskClient, session: Session, people: dict[str, Any], make_patient: Any
) -> None:
    patient, clinician = people["patient"], people["clinician"]
    sign(
        session,
        patient=patient,
        clinician=clinician,
        categories=["medications"],
        now=NOW - timedelta(days=3),
        days=1,
    )
    for patient_id in (patient.id, make_patient().id, uuid.uuid4()):
        response = client.get(
            f"/v1/clinician/patients/{patient_id}/doses", headers=people["headers"]
        )
        assert response.status_code == 404
    assert ledger(session) == []


def test_another_patients_medication_filter_is_404_and_not_disclosed(
    client: FlaskClient, session: Session, people: dict[str, Any], make_patient: Any
) -> None:
    patient = people["patient"]
    other_medication = as_needed(session, make_patient())
    session.commit()
    sign(session, patient=patient, clinician=people["clinician"], categories=["medications"])
    response = client.get(
        f"/v1/clinician/patients/{patient.id}/doses",
        query_string={"medication_id": str(other_medication.id)},
        headers=people["headers"],
    )
    assert response.status_code == 404
    assert ledger(session) == []  # the failed read's ledger row was rolled back with it


def test_checkins_only_from_the_window(
    client: FlaskClient, session: Session, people: dict[str, Any]
) -> None:
    from api.checkins import services as checkins

    patient, clinician = people["patient"], people["clinician"]

    def checkin(at: datetime) -> Any:
        item, _ = checkins.create_checkin(
            session,
            user_id=patient.id,
            body={"id": None, "recorded_at": at, "craving": 3, "note": None},
            now=at,
        )
        session.commit()
        return item

    checkin(datetime.now(UTC) - timedelta(days=1))  # before the consent: never shown
    sign(session, patient=patient, clinician=clinician, categories=["symptoms"])
    shown = checkin(datetime.now(UTC))
    url = f"/v1/clinician/patients/{patient.id}/checkins"
    response = client.get(url, headers=people["headers"])
    assert response.status_code == 200
    assert [c["id"] for c in response.json["items"]] == [str(shown.id)]
    backwards = client.get(
        url,
        query_string={"from": NOW.isoformat(), "to": (NOW - timedelta(days=1)).isoformat()},
        headers=people["headers"],
    )
    assert backwards.status_code == 422 and "to" in backwards.json["errors"]
    assert len(ledger(session)) == 1
