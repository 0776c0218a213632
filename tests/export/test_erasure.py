"""DELETE /v1/me: the account and its health data go at once; only the ledger's bare facts stay."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

import api.all_models  # noqa: F401 - every table on Base.metadata
from api.auth.models import User
from api.db import Base
from api.disclosures.models import Disclosure
from tests.export.data import seed_patient_data

PASSWORD = "correct horse battery"

# Tables allowed to keep the erased user's id, by design (docs/export.md, "Erasure").
LEDGER_TABLES = {"disclosures", "audit_events"}


def traces(session: Session, user_id: uuid.UUID, canaries: list[str]) -> list[str]:
    """Every row in every table that still names the user or holds one of the canary values."""
    needles = [str(user_id), user_id.hex, *canaries]
    found = []
    for table in Base.metadata.sorted_tables:
        for row in session.execute(select(table)).mappings():
            for column, value in row.items():
                if value is None:
                    continue
                text = value if isinstance(value, str) else None
                if isinstance(value, dict | list):
                    text = json.dumps(value)
                if value == user_id or (text and any(n in text for n in needles)):
                    if table.name in LEDGER_TABLES and value == user_id:
                        continue
                    found.append(f"{table.name}.{column}")
    return found


def files_with(folder: Path, needles: list[str]) -> list[Path]:
    if not folder.exists():
        return []
    return [
        path
        for path in folder.rglob("*")
        if path.is_file() and any(n in path.read_text(errors="ignore") for n in needles)
    ]


def login(client: FlaskClient, email: str) -> Any:
    return client.post("/v1/auth/token", json={"email": email, "password": PASSWORD})


def erase(client: FlaskClient, token: str, password: str = PASSWORD) -> Any:
    return client.delete(
        "/v1/me", json={"password": password}, headers={"Authorization": f"Bearer {token}"}
    )


@pytest.fixture
def canary_patient(make_patient: Callable[..., User]) -> User:
    tag = uuid.uuid4().hex[:8]
    return make_patient(display_name=f"Canary{tag}", email=f"canary-{tag}@example.test")


def test_wrong_password_is_refused_and_changes_nothing(
    client: FlaskClient, canary_patient: User, export_dir: Path
) -> None:
    token = login(client, canary_patient.email).json["access_token"]
    refused = erase(client, token, "not my password")
    assert refused.status_code == 403
    assert refused.mimetype == "application/problem+json"
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert login(client, canary_patient.email).status_code == 200


def test_password_guessing_is_throttled(
    client: FlaskClient, canary_patient: User, export_dir: Path
) -> None:
    token = login(client, canary_patient.email).json["access_token"]
    for _ in range(5):
        assert erase(client, token, "guess").status_code == 403
    throttled = erase(client, token, PASSWORD)
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) > 0


def test_password_is_required(
    client: FlaskClient, patient_headers: dict[str, str], export_dir: Path
) -> None:
    resp = client.delete("/v1/me", json={}, headers=patient_headers)
    assert resp.status_code == 422
    assert "password" in resp.json["errors"]


def test_erasure_leaves_no_trace(
    app: Flask,
    client: FlaskClient,
    session: Session,
    canary_patient: User,
    make_patient: Callable[..., User],
    make_admin: Callable[..., User],
    make_clinician: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
    run_export_job: Callable[..., Any],
    export_dir: Path,
) -> None:
    user_id, email = canary_patient.id, canary_patient.email
    bystander = make_patient()
    first = login(client, canary_patient.email).json
    second = login(client, canary_patient.email).json
    token = first["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    seeded = seed_patient_data(app, client, session, bearer)
    # A stored Idempotency-Key answer holds the health data it returned.
    replayable = client.post(
        "/v1/checkins",
        json={"recorded_at": "2026-03-08T08:00:00-05:00", "note": seeded.canaries[-1] + "-idem"},
        headers={**bearer, "Idempotency-Key": "k-" + uuid.uuid4().hex},
    )
    assert replayable.status_code == 201
    canaries = [canary_patient.display_name, canary_patient.email, *seeded.canaries]
    # Rows keyed by the user: an export counted, a wrong erase password counted.
    assert client.get("/v1/export", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert erase(client, token, "wrong password").status_code == 403
    # A consent (the typed signature is a canary) and a clinician's read: ledger and audit rows.
    clinician = make_clinician()
    clinician_headers = auth_headers(clinician)
    signature = f"Signature{uuid.uuid4().hex[:8]}"
    canaries.append(signature)
    signed = client.post(
        "/v1/consents",
        json={
            "recipient_id": str(clinician.id),
            "categories": ["symptoms", "medications", "counseling"],
            "purpose": "treatment",
            "expires_at": None,
            "data_from": "2026-01-01T00:00:00+00:00",
            "signature": signature,
            "consent_text_version": "2026-01",
        },
        headers=bearer,
    )
    assert signed.status_code == 201
    patient_url = f"/v1/clinician/patients/{user_id}/checkins"
    assert client.get(patient_url, headers=clinician_headers).status_code == 200
    # An admin's bulk export holds the patient's data in a file on our disk.
    admin = auth_headers(make_admin())
    started = client.get("/fhir/Patient/$export", headers={**admin, "Prefer": "respond-async"})
    status_url = "/" + started.headers["Content-Location"].split("/", 3)[3]
    job = run_export_job()
    assert files_with(export_dir, canaries)

    assert erase(client, token).status_code == 204

    session.expire_all()
    assert traces(session, user_id, canaries) == []
    assert files_with(export_dir, canaries) == []
    session.commit()  # end the test session's savepoint before the requests below open theirs
    # Every login ended, the account is gone, the bulk file that held it too.
    for pair in (first, second):
        headers = {"Authorization": f"Bearer {pair['access_token']}"}
        assert client.get("/v1/me", headers=headers).status_code == 401
        refresh = client.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        assert refresh.status_code == 401
    assert login(client, email).status_code == 401
    assert client.get(status_url, headers=admin).status_code == 404
    assert not (export_dir / str(job.id)).exists()
    # The clinician sees nothing of the patient any more.
    roster = client.get("/v1/clinician/patients", headers=clinician_headers).json["items"]
    assert str(user_id) not in json.dumps(roster)
    assert client.get(patient_url, headers=clinician_headers).status_code == 404
    # What the ledger keeps: who received which categories when, no values.
    kept = session.scalars(select(Disclosure).where(Disclosure.patient_id == user_id)).all()
    assert kept and {d.recipient_id for d in kept} == {clinician.id}
    # Others are untouched.
    assert session.get(User, bystander.id) is not None


def test_the_trace_walk_finds_what_is_left(
    session: Session, canary_patient: User, export_dir: Path
) -> None:
    """The checker itself: before erasure it must see the user and the canaries."""
    found = traces(session, canary_patient.id, [canary_patient.display_name])
    assert "users.id" in found and "users.display_name" in found
