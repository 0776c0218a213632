"""/v1/cows-assessments over HTTP: a patient reads the COWS assessments recorded about them."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from api.account.erasure import erase_user_data
from api.audit.models import AuditEvent
from api.auth.models import User
from api.cows import services as cows_services
from api.disclosures.models import Disclosure
from api.instruments.definitions import INSTRUMENTS
from tests.clinician.test_cows import answers, published_severity
from tests.consenting import sign
from tests.support.queries import count_queries

URL = "/v1/cows-assessments"
COWS = INSTRUMENTS["cows"]


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/problem+json"
    return response.json


def record(
    session: Session,
    *,
    patient: User,
    clinician: User,
    assessed_at: datetime,
    value: int = 0,
) -> uuid.UUID:
    """A COWS assessment through the clinician's own service (the consent must be in force)."""
    assessment, _ = cows_services.record_cows(
        session,
        clinician_id=clinician.id,
        patient_id=patient.id,
        body={"id": None, "assessed_at": assessed_at, "answers": answers(value)},
        now=datetime.now(UTC),
    )
    session.commit()
    return assessment.id


@pytest.fixture
def consented(session: Session, patient: User, make_clinician: Any) -> User:
    """A clinician with a symptoms consent of the patient's, signed a day ago."""
    clinician = make_clinician(display_name="Dr. Ada Assessor", organization="Harbor Clinic")
    sign(
        session,
        patient=patient,
        clinician=clinician,
        categories=["symptoms"],
        now=datetime.now(UTC) - timedelta(days=1),
    )
    return clinician


def count(session: Session, model: Any) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def test_items_match_what_the_clinician_recorded(
    client: FlaskClient,
    session: Session,
    patient: User,
    patient_headers: dict[str, str],
    consented: User,
    auth_headers: Any,
) -> None:
    clinician_headers = auth_headers(consented)
    now = datetime.now(UTC)
    created = []
    # Values chosen to land in different bands (none, mild, moderate, severe).
    for minutes, value in ((40, 0), (30, 1), (20, 2), (10, 4)):
        body = {
            "assessed_at": (now - timedelta(minutes=minutes)).isoformat(),
            "answers": answers(value),
        }
        response = client.post(
            f"/v1/clinician/patients/{patient.id}/cows", json=body, headers=clinician_headers
        )
        assert response.status_code == 201, response.json
        created.append(response.json)
    disclosures, audits = count(session, Disclosure), count(session, AuditEvent)

    listed = client.get(URL, headers=patient_headers)
    assert listed.status_code == 200
    assert listed.json["next_cursor"] is None
    expected = [
        {
            "id": c["id"],
            "assessed_at": c["assessed_at"],
            "answers": c["answers"],
            "total": sum(c["answers"].values()),
            "severity": published_severity(sum(c["answers"].values())),
            "instrument_version": COWS.version,
            "clinician": {
                "id": str(consented.id),
                "display_name": "Dr. Ada Assessor",
                "organization": "Harbor Clinic",
            },
            "created_at": c["created_at"],
        }
        for c in reversed(created)  # newest assessed_at first
    ]
    assert listed.json["items"] == expected
    assert {item["severity"] for item in expected} == {None, "mild", "moderate", "severe"}
    for item in expected:
        one = client.get(f"{URL}/{item['id']}", headers=patient_headers)
        assert one.status_code == 200 and one.json == item
    # The patient reading their own record is neither a disclosure nor audited.
    assert "notice" not in listed.json
    assert (count(session, Disclosure), count(session, AuditEvent)) == (disclosures, audits)


def test_list_pages_and_range(
    client: FlaskClient,
    session: Session,
    patient: User,
    patient_headers: dict[str, str],
    consented: User,
) -> None:
    now = datetime.now(UTC)
    ids = [
        record(
            session, patient=patient, clinician=consented, assessed_at=now - timedelta(minutes=m)
        )
        for m in range(10, 130, 10)  # 12 assessments, one every 10 minutes
    ]
    first = client.get(URL, query_string={"limit": 5}, headers=patient_headers).json
    assert len(first["items"]) == 5 and first["next_cursor"]
    rest = client.get(
        URL, query_string={"limit": 200, "cursor": first["next_cursor"]}, headers=patient_headers
    ).json
    assert rest["next_cursor"] is None
    assert [i["id"] for i in first["items"] + rest["items"]] == [str(i) for i in ids]

    # from inclusive, to exclusive, on assessed_at.
    ranged = client.get(
        URL,
        query_string={
            "from": (now - timedelta(minutes=60)).isoformat(),
            "to": (now - timedelta(minutes=20)).isoformat(),
        },
        headers=patient_headers,
    ).json
    # 60 minutes ago is in, 20 minutes ago is out.
    assert [i["id"] for i in ranged["items"]] == [str(i) for i in ids[2:6]]
    # The same instant written with another offset is the same bound.
    start = now - timedelta(minutes=60)
    utc, chicago = (
        client.get(URL, query_string={"from": at.isoformat()}, headers=patient_headers).json
        for at in (start, start.astimezone(ZoneInfo("America/Chicago")))
    )
    assert utc == chicago and len(utc["items"]) == 6


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": 201}, "limit"),
        ({"limit": 0}, "limit"),
        ({"from": "2026-01-01T00:00:00"}, "from"),  # no offset
        ({"to": "2026-01-01"}, "to"),
        ({"from": "0001-01-01T00:00:00+01:00"}, "from"),
        ({"to": "9999-12-31T23:59:59-01:00"}, "to"),
        ({"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "to"),
        ({"cursor": "nope"}, "cursor"),
        ({"patient_id": str(uuid.uuid4())}, "patient_id"),  # unknown parameters are refused
        ({"sort": "asc"}, "sort"),
    ],
)
def test_bad_query_is_a_422_naming_the_field(
    client: FlaskClient, patient_headers: dict[str, str], query: dict[str, Any], field: str
) -> None:
    response = client.get(URL, query_string=query, headers=patient_headers)
    assert field in problem(response, 422)["errors"]


def test_a_crafted_cursor_is_a_422(client: FlaskClient, patient_headers: dict[str, str]) -> None:
    for crafted in (
        ["2026-01-01T00:00:00", str(uuid.uuid4())],
        ["0001-01-01T00:00:00+05:00", str(uuid.uuid4())],
        ["2026-01-01T00:00:00+00:00", "not-a-uuid"],
    ):
        raw = base64.urlsafe_b64encode(json.dumps(crafted).encode()).decode()
        response = client.get(URL, query_string={"cursor": raw}, headers=patient_headers)
        assert "cursor" in problem(response, 422)["errors"]


def test_another_patients_assessment_is_not_found(
    client: FlaskClient,
    session: Session,
    patient: User,
    patient_headers: dict[str, str],
    consented: User,
    make_patient: Any,
    auth_headers: Any,
) -> None:
    mine = record(session, patient=patient, clinician=consented, assessed_at=datetime.now(UTC))
    intruder = auth_headers(make_patient())
    problem(client.get(f"{URL}/{mine}", headers=intruder), 404)
    assert client.get(URL, headers=intruder).json == {"items": [], "next_cursor": None}
    problem(client.get(f"{URL}/{uuid.uuid4()}", headers=patient_headers), 404)
    assert client.get(f"{URL}/{mine}", headers=patient_headers).status_code == 200


@pytest.mark.parametrize("role", ["clinician", "admin"])
def test_for_patients_only(
    client: FlaskClient,
    session: Session,
    patient: User,
    consented: User,
    make_user: Any,
    auth_headers: Any,
    role: str,
) -> None:
    mine = record(session, patient=patient, clinician=consented, assessed_at=datetime.now(UTC))
    # Even the clinician who recorded it reads it through the consent gate, not here.
    staff = auth_headers(consented if role == "clinician" else make_user(role=role))
    for path in (URL, f"{URL}/{mine}"):
        problem(client.get(path, headers=staff), 403)
        problem(client.get(path), 401)


def test_clinician_is_null_once_their_account_is_erased(
    client: FlaskClient,
    app: Any,
    session: Session,
    patient: User,
    patient_headers: dict[str, str],
    consented: User,
    tmp_path: Path,
) -> None:
    mine = record(session, patient=patient, clinician=consented, assessed_at=datetime.now(UTC))
    with app.app_context():
        erase_user_data(session, user_id=consented.id, export_dir=tmp_path, now=datetime.now(UTC))
    session.commit()
    item = client.get(f"{URL}/{mine}", headers=patient_headers).json
    assert item["clinician"] is None
    assert item["total"] == sum(answers(0).values())  # the record stays the patient's


def test_queries_do_not_grow_with_the_page(
    client: FlaskClient,
    session: Session,
    engine: Engine,
    patient: User,
    patient_headers: dict[str, str],
    make_clinician: Any,
) -> None:
    """The clinicians' names of a page come in one query, not one per item."""
    now = datetime.now(UTC)

    def add_from_a_new_clinician(minutes_ago: int) -> None:
        clinician = make_clinician()
        sign(session, patient=patient, clinician=clinician, now=now - timedelta(days=1))
        record(
            session,
            patient=patient,
            clinician=clinician,
            assessed_at=now - timedelta(minutes=minutes_ago),
        )

    def run() -> int:
        with count_queries(engine, only="SELECT") as statements:
            response = client.get(URL, headers=patient_headers)
        assert response.status_code == 200
        assert all(i["clinician"] is not None for i in response.json["items"])
        return len(statements)

    add_from_a_new_clinician(1)
    one = run()
    for minutes in range(2, 8):
        add_from_a_new_clinician(minutes)
    assert len(client.get(URL, headers=patient_headers).json["items"]) == 7
    assert run() == one
