"""Another patient's ids answer 404 on every route; other roles get 403; no values in logs."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from api.auth.models import User
from api.medications import services
from api.medications.models import Dose, Medication
from tests.medications.conftest import NOW

BODY = {
    "name": "methadone",
    "dose": 60,
    "unit": "mg",
    "times": ["08:00"],
    "start_date": "2026-06-08",
}


@pytest.fixture
def two_patients(
    clock: Any, make_patient: Callable[..., User], auth_headers: Callable[[User], dict[str, str]]
) -> tuple[dict[str, str], dict[str, str]]:
    return auth_headers(make_patient()), auth_headers(make_patient())


def test_another_patients_ids_are_not_found_everywhere(
    client: FlaskClient, session: Session, two_patients: tuple[dict[str, str], dict[str, str]]
) -> None:
    mine, theirs = two_patients
    med = client.post("/v1/medications", json=BODY, headers=theirs).json
    dose = client.post(
        f"/v1/medications/{med['id']}/doses",
        json={"status": "skipped", "scheduled_for": "2026-06-09T12:00:00Z"},
        headers=theirs,
    ).json
    calls = [
        ("get", f"/v1/medications/{med['id']}", None),
        ("patch", f"/v1/medications/{med['id']}", {"dose": 1}),
        ("delete", f"/v1/medications/{med['id']}", None),
        (
            "post",
            f"/v1/medications/{med['id']}/doses",
            {"status": "skipped", "scheduled_for": "2026-06-10T12:00:00Z"},
        ),
        ("get", f"/v1/doses?medication_id={med['id']}", None),
        ("patch", f"/v1/doses/{dose['id']}", {"note": "x"}),
        ("delete", f"/v1/doses/{dose['id']}", None),
    ]
    for method, url, body in calls:
        response = getattr(client, method)(url, json=body, headers=mine)
        assert response.status_code == 404, (method, url)
        assert response.headers["Content-Type"] == "application/problem+json"
    # Nothing of theirs shows in my lists or reports, and nothing of theirs changed.
    assert client.get("/v1/medications?include_archived=true", headers=mine).json["items"] == []
    assert client.get("/v1/doses", headers=mine).json["items"] == []
    assert client.get("/v1/adherence", headers=mine).json["medications"] == []
    session.expire_all()
    stored = session.get(Medication, uuid.UUID(med["id"]))
    assert stored.archived_at is None and stored.dose == 60
    assert session.get(Dose, uuid.UUID(dose["id"])).note is None
    # Their regimen's id as my client id: refused like any reused id, not revealed.
    reused = client.post("/v1/medications", json={**BODY, "id": med["id"]}, headers=mine)
    assert reused.status_code == 409


@pytest.mark.parametrize("role", ["clinician", "admin"])
def test_other_roles_are_forbidden(
    client: FlaskClient,
    clock: Any,
    make_user: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
    role: str,
) -> None:
    extra = {"organization": "Clinic"} if role == "clinician" else {}
    headers = auth_headers(make_user(role=role, **extra))
    some_id = uuid.uuid4()
    calls = [
        ("post", "/v1/medications", BODY),
        ("get", "/v1/medications", None),
        ("get", f"/v1/medications/{some_id}", None),
        ("patch", f"/v1/medications/{some_id}", {"dose": 1}),
        ("delete", f"/v1/medications/{some_id}", None),
        ("post", f"/v1/medications/{some_id}/doses", {"status": "skipped"}),
        ("get", "/v1/doses", None),
        ("patch", f"/v1/doses/{some_id}", {"note": "x"}),
        ("delete", f"/v1/doses/{some_id}", None),
        ("get", "/v1/adherence", None),
    ]
    for method, url, body in calls:
        response = getattr(client, method)(url, json=body, headers=headers)
        assert response.status_code == 403, (method, url)
    assert client.get("/v1/adherence").status_code == 401


CANARIES = ("CANARY-NAME-5c1e", "CANARY-NOTE-77d0", "123.456", "98765431")


def test_logs_carry_no_names_notes_or_values(
    client: FlaskClient,
    session: Session,
    two_patients: tuple[dict[str, str], dict[str, str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    headers, _ = two_patients
    capsys.readouterr()
    med = client.post(
        "/v1/medications",
        json={**BODY, "name": CANARIES[0], "dose": 123.456, "rxnorm_code": CANARIES[3]},
        headers=headers,
    ).json
    client.patch(f"/v1/medications/{med['id']}", json={"name": CANARIES[0] + "!"}, headers=headers)
    client.patch(f"/v1/medications/{med['id']}", json={"times": ["09:00"]}, headers=headers)
    dose = client.post(
        f"/v1/medications/{med['id']}/doses",
        json={
            "status": "taken",
            "scheduled_for": "2026-06-08T12:00:00Z",
            "taken_at": "2026-06-08T12:00:00Z",
            "note": CANARIES[1],
        },
        headers=headers,
    ).json
    client.patch(f"/v1/doses/{dose['id']}", json={"note": CANARIES[1] + "?"}, headers=headers)
    client.post(
        "/v1/medications",
        json={**BODY, "name": CANARIES[0] * 20, "unit": CANARIES[1]},
        headers=headers,
    )
    client.post(
        f"/v1/medications/{med['id']}/doses",
        json={"status": "skipped", "scheduled_for": "2026-06-08T12:00:00Z", "note": CANARIES[1]},
        headers=headers,
    )
    client.get("/v1/doses", headers=headers)
    client.get("/v1/adherence", headers=headers)
    services.mark_missed_doses(session, now=NOW)
    session.commit()
    client.delete(f"/v1/medications/{med['id']}", headers=headers)
    out = capsys.readouterr()
    logged = out.out + out.err
    assert "dose.logged" in logged and "medication.created" in logged
    for canary in CANARIES:
        assert canary not in logged
