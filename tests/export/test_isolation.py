"""The bulk export job over many patients survives poisoned ones (issue 11 item 5): the others'
data is served, each failure is logged with ids only and counted, the manifest's error array
names the patients left out (an OperationOutcome, no health data), and nothing of theirs stays
in any file."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from api.auth.models import User
from api.checkins.models import Checkin
from api.export import fhir as export_fhir
from api.export.sections import SECTIONS
from api.observability import ITEM_FAILURES
from tests.export.data import seed_patient_data
from tests.export.test_consented_bulk import ASYNC, _path, _subject, consent, fetch_all


def failures() -> float:
    return ITEM_FAILURES.labels("bulk_export")._value.get()


def _poison_checkins(session: Session, patient: User) -> None:
    """A check-in stored before dates were bounded: year 1, written at UTC-1. Building its
    record (the time as the patient wrote it: year 0) raises OverflowError inside the read."""
    session.execute(
        update(Checkin)
        .where(Checkin.user_id == patient.id)
        .values(recorded_at=datetime(1, 1, 1, tzinfo=UTC), recorded_offset_minutes=-60)
    )
    session.commit()


@pytest.mark.parametrize("requester", ["clinician", "admin"])
def test_the_bulk_export_serves_every_patient_but_the_poisoned_ones(
    requester: str,
    app: Flask,
    client: FlaskClient,
    session: Session,
    make_patient: Callable[..., User],
    make_clinician: Callable[..., User],
    make_admin: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
    run_export_job: Callable[..., Any],
    export_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    now = datetime.now(UTC)
    clinician = make_clinician()
    patients: list[User] = []
    canaries: list[list[str]] = []
    for _ in range(4):
        patient = make_patient()
        headers = auth_headers(patient)
        canaries.append(seed_patient_data(app, client, session, headers, now=now).canaries)
        consent(client, headers, clinician, ["symptoms", "medications"], now - timedelta(days=30))
        patients.append(patient)
    good, read_poisoned, map_poisoned = patients[:2], patients[2], patients[3]
    # One poison inside a section's read (the check-ins), one in a record's FHIR mapping (the
    # regimen, a later section than the check-ins that were already written for that patient).
    _poison_checkins(session, read_poisoned)
    medications = SECTIONS["medications"]
    real = medications.to_fhir
    assert real is not None

    def poisoned(record: Any, ctx: Any, patient_id: Any) -> Any:
        if str(patient_id) == str(map_poisoned.id):
            raise ValueError("SECRET-VALUE")
        return real(record, ctx, patient_id)

    monkeypatch.setitem(SECTIONS, "medications", replace(medications, to_fhir=poisoned))

    headers = auth_headers(clinician if requester == "clinician" else make_admin())
    started = client.get("/fhir/Patient/$export", headers={**headers, **ASYNC})
    assert started.status_code == 202
    before = failures()
    capsys.readouterr()
    job = run_export_job()
    logged = capsys.readouterr().out

    assert job.status == "completed"
    assert failures() == before + 2
    lines = [json.loads(x) for x in logged.splitlines() if '"job.item_failed"' in x]
    assert {(line["job"], line["patient_id"]) for line in lines} == {
        ("bulk_export", str(read_poisoned.id)),
        ("bulk_export", str(map_poisoned.id)),
    }
    assert all(line["job_id"] == str(job.id) for line in lines)
    assert "SECRET-VALUE" not in logged

    manifest = client.get(_path(started.headers["Content-Location"]), headers=headers).json
    files = fetch_all(client, manifest, headers)
    good_ids = {str(p.id) for p in good}
    assert {_subject(r) for r in files["Patient"]} == good_ids
    assert {_subject(r) for r in files["QuestionnaireResponse"]} == good_ids
    assert {_subject(r) for r in files["MedicationStatement"]} == good_ids
    # The poisoned patients' lines written before their failure are gone with the first run.
    text = "".join(p.read_text() for p in export_dir.rglob("*.ndjson") if p.stem != "errors")
    for poisoned_patient, planted in ((read_poisoned, canaries[2]), (map_poisoned, canaries[3])):
        assert str(poisoned_patient.id) not in text
        assert not any(c in text for c in planted)

    # The error array names them, by id only.
    [error] = manifest["error"]
    resp = client.get(_path(error["url"]), headers=headers)
    outcomes = [json.loads(x) for x in resp.get_data(as_text=True).splitlines()]
    resp.close()
    assert error["count"] == len(outcomes) == 2
    named = " ".join(o["issue"][0]["diagnostics"] for o in outcomes)
    assert {str(read_poisoned.id), str(map_poisoned.id)} <= set(
        named.replace("Patient/", " ").split()
    )
    assert all(o["resourceType"] == "OperationOutcome" for o in outcomes)
    assert not any(c in named for cs in canaries for c in cs)
    assert "SECRET-VALUE" not in named


def test_an_export_that_fails_for_everyone_still_fails(
    client: FlaskClient,
    make_patient: Callable[..., User],
    make_admin: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
    run_export_job: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Not one patient's data: a failure of every patient's mapping is bounded, the job fails.
    for _ in range(3):
        make_patient()

    def broken(*_a: Any, **_kw: Any) -> Any:
        raise ValueError("broken mapping")

    monkeypatch.setattr(export_fhir, "patient", broken)
    monkeypatch.setattr("api.export.services.MAX_LEFT_OUT", 1)
    headers = auth_headers(make_admin())
    started = client.get("/fhir/Patient/$export", headers={**headers, **ASYNC})
    assert started.status_code == 202
    job = run_export_job()
    assert job.status == "failed"
