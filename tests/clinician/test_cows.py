"""COWS assessments recorded by a clinician under a consent covering symptoms, scored exactly."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.audit.models import AuditEvent
from api.cows import services
from api.disclosures.models import Disclosure
from api.instruments.definitions import INSTRUMENTS
from tests.consenting import sign

COWS_ITEMS = INSTRUMENTS["cows"].items
NOW = datetime.now(UTC)


def published_severity(total: int) -> str | None:
    """Wesson & Ling (2003): 5-12 mild, 13-24 moderate, 25-36 moderately severe, >36 severe."""
    if total < 5:
        return None
    if total <= 12:
        return "mild"
    if total <= 24:
        return "moderate"
    if total <= 36:
        return "moderately_severe"
    return "severe"


def answers(value: int = 0) -> dict[str, int]:
    """Every item at the allowed value nearest `value` from below."""
    return {i.key: max(v for v in (i.allowed or (0,)) if v <= value) for i in COWS_ITEMS}


@pytest.fixture
def consented(
    session: Session, make_patient: Any, make_clinician: Any, auth_headers: Any
) -> dict[str, Any]:
    patient, clinician = make_patient(), make_clinician()
    consent = sign(session, patient=patient, clinician=clinician, categories=["symptoms"])
    return {
        "patient": patient,
        "clinician": clinician,
        "consent": consent,
        "headers": auth_headers(clinician),
        "url": f"/v1/clinician/patients/{patient.id}/cows",
    }


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_scored_exactly(session: Session, consented: dict[str, Any], data: st.DataObject) -> None:
    chosen = {
        item.key: data.draw(st.sampled_from(item.allowed or (0,)), label=item.key)
        for item in COWS_ITEMS
    }
    with session.begin_nested() as nested:
        assessment, created = services.record_cows(
            session,
            clinician_id=consented["clinician"].id,
            patient_id=consented["patient"].id,
            body={"id": None, "assessed_at": datetime.now(UTC), "answers": chosen},
            now=datetime.now(UTC),
        )
        assert created
        assert assessment.total == sum(chosen.values())
        assert assessment.severity == published_severity(assessment.total)
        assert assessment.consent_id == consented["consent"].id
        nested.rollback()


def test_record_over_http(client: FlaskClient, consented: dict[str, Any]) -> None:
    # Assessed after the consent was signed, so it falls in the window the list shows.
    at = datetime.now(UTC).isoformat()
    body = {"id": str(uuid.uuid4()), "assessed_at": at, "answers": answers(2)}
    created = client.post(consented["url"], json=body, headers=consented["headers"])
    assert created.status_code == 201, created.json
    expected_total = sum(answers(2).values())
    assert created.json["total"] == expected_total
    assert created.json["severity"] == published_severity(expected_total)
    assert created.json["instrument"] == "cows"
    assert created.json["patient_id"] == str(consented["patient"].id)
    again = client.post(consented["url"], json=body, headers=consented["headers"])
    assert again.status_code == 200 and again.json == created.json
    changed = client.post(
        consented["url"], json={**body, "answers": answers(0)}, headers=consented["headers"]
    )
    assert changed.status_code == 409

    listed = client.get(consented["url"], headers=consented["headers"])
    assert listed.status_code == 200
    assert [a["id"] for a in listed.json["items"]] == [body["id"]]
    assert listed.json["notice"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (
            {"answers": {k: v for k, v in answers(0).items() if k != "resting_pulse"}},
            "answers.resting_pulse",
        ),
        ({"answers": {**answers(0), "resting_pulse": 3}}, "answers.resting_pulse"),
        ({"answers": {**answers(0), "pulse_rate": 1}}, "answers.pulse_rate"),
        ({"answers": {**answers(0), "sweating": "2"}}, "answers.sweating"),
        ({"answers": [1, 2]}, "answers"),
        ({"assessed_at": (NOW + timedelta(hours=1)).isoformat()}, "assessed_at"),
        ({"assessed_at": "2026-03-01T10:00:00"}, "assessed_at"),
        ({"total": 3}, "total"),
    ],
)
def test_invalid_input_names_the_field(
    client: FlaskClient, consented: dict[str, Any], change: dict[str, Any], field: str
) -> None:
    body = {"assessed_at": NOW.isoformat(), "answers": answers(0), **change}
    response = client.post(consented["url"], json=body, headers=consented["headers"])
    assert response.status_code == 422, response.json
    assert field in response.json["errors"]


def test_needs_a_consent_covering_symptoms(
    client: FlaskClient,
    session: Session,
    make_patient: Any,
    make_clinician: Any,
    auth_headers: Any,
) -> None:
    patient, clinician = make_patient(), make_clinician()
    headers = auth_headers(clinician)
    body = {"assessed_at": NOW.isoformat(), "answers": answers(0)}
    url = f"/v1/clinician/patients/{patient.id}/cows"
    assert client.post(url, json=body, headers=headers).status_code == 404
    sign(session, patient=patient, clinician=clinician, categories=["medications"])
    refused = client.post(url, json=body, headers=headers)
    assert refused.status_code == 403 and refused.json["missing_category"] == "symptoms"
    assert client.post(url, json=body, headers=auth_headers(patient)).status_code == 403
    audit = list(session.scalars(select(AuditEvent).order_by(AuditEvent.at)))
    assert [(a.action, a.status) for a in audit] == [
        ("clinician.cows.create", s) for s in (404, 403, 403)
    ]
    # Recording discloses nothing; reading assessments does.
    assert list(session.scalars(select(Disclosure))) == []


def test_the_same_id_for_another_patient_is_a_conflict(
    client: FlaskClient, session: Session, consented: dict[str, Any], make_patient: Any
) -> None:
    other = make_patient()
    sign(session, patient=other, clinician=consented["clinician"], categories=["symptoms"])
    body = {"id": str(uuid.uuid4()), "assessed_at": NOW.isoformat(), "answers": answers(0)}
    assert client.post(consented["url"], json=body, headers=consented["headers"]).status_code == 201
    response = client.post(
        f"/v1/clinician/patients/{other.id}/cows", json=body, headers=consented["headers"]
    )
    assert response.status_code == 409


def test_a_clinician_never_learns_which_other_clinician_assessed(
    client: FlaskClient,
    session: Session,
    consented: dict[str, Any],
    make_clinician: Any,
    auth_headers: Any,
) -> None:
    """Another clinician's id next to the patient would reveal another treating relationship."""
    other = make_clinician()
    sign(session, patient=consented["patient"], clinician=other, categories=["symptoms"])
    body = {"assessed_at": datetime.now(UTC).isoformat(), "answers": answers(2)}
    created = client.post(consented["url"], json=body, headers=consented["headers"])
    assert created.status_code == 201
    mine = client.get(consented["url"], headers=consented["headers"]).json["items"]
    assert [a["clinician_id"] for a in mine] == [str(consented["clinician"].id)]
    theirs = client.get(consented["url"], headers=auth_headers(other))
    assert [a["clinician_id"] for a in theirs.json["items"]] == [None]
    assert str(consented["clinician"].id) not in theirs.get_data(as_text=True)
