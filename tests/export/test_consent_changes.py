"""A finished bulk export is disclosure at rest (issue 11, items 2 and 3): a consent revoked,
expired or narrowed after it finished makes every later poll and download impossible and deletes
its files at once; and every exported section is judged by a time, MedicationStatement too."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from api.auth.models import User
from api.consent.gate import Grant
from api.export import services as export_services
from api.export.sections import all_sections
from jobs import bulk_export
from tests.export.test_consented_bulk import ASYNC, _path, consent, fetch_all

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:time_machine")


@pytest.fixture
def pair(
    make_patient: Callable[..., User],
    make_clinician: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
) -> dict[str, Any]:
    patient, clinician = make_patient(), make_clinician()
    return {
        "patient": patient,
        "clinician": clinician,
        "patient_headers": auth_headers(patient),
        "headers": auth_headers(clinician),
    }


def _checkin(client: FlaskClient, headers: dict[str, str], at: datetime) -> None:
    resp = client.post(
        "/v1/checkins", json={"recorded_at": at.isoformat(), "craving": 4}, headers=headers
    )
    assert resp.status_code == 201, resp.get_json()


def _medication(
    client: FlaskClient, headers: dict[str, str], start: date, end: date | None, name: str
) -> None:
    resp = client.post(
        "/v1/medications",
        json={
            "name": name,
            "dose": 8,
            "unit": "mg",
            "times": ["08:00"],
            "start_date": start.isoformat(),
            "end_date": end.isoformat() if end else None,
        },
        headers=headers,
    )
    assert resp.status_code == 201, resp.get_json()


def _finished_export(
    client: FlaskClient, pair: dict[str, Any], run_export_job: Callable[..., Any]
) -> tuple[str, dict[str, Any]]:
    started = client.get("/fhir/Patient/$export", headers={**pair["headers"], **ASYNC})
    assert started.status_code == 202
    url = _path(started.headers["Content-Location"])
    job = run_export_job()
    assert job.status == "completed"
    done = client.get(url, headers=pair["headers"])
    assert done.status_code == 200
    return url, done.json


def _refused(client: FlaskClient, pair: dict[str, Any], url: str, manifest: Any) -> None:
    """No poll and no download answers any more, and no file is left on disk."""
    assert client.get(url, headers=pair["headers"]).status_code in (404, 500)
    for output in manifest["output"]:
        resp = client.get(_path(output["url"]), headers=pair["headers"])
        assert resp.status_code in (404, 500), output["type"]
        assert str(pair["patient"].id) not in resp.get_data(as_text=True)
        resp.close()


@pytest.mark.parametrize("change", ["revoke", "narrow_categories", "narrow_window"])
def test_a_consent_change_voids_a_finished_export_at_once(
    client: FlaskClient,
    pair: dict[str, Any],
    run_export_job: Callable[..., Any],
    export_dir: Path,
    change: str,
) -> None:
    now = datetime.now(UTC)
    given = consent(
        client,
        pair["patient_headers"],
        pair["clinician"],
        ["symptoms", "medications"],
        now - timedelta(days=30),
    )
    _checkin(client, pair["patient_headers"], now - timedelta(days=3))
    url, manifest = _finished_export(client, pair, run_export_job)
    assert {o["type"] for o in manifest["output"]} >= {"Patient", "Observation"}
    assert list(export_dir.rglob("*.ndjson"))
    if change == "revoke":
        resp = client.post(f"/v1/consents/{given['id']}/revoke", headers=pair["patient_headers"])
        assert resp.status_code == 200
    else:
        categories = ["medications"] if change == "narrow_categories" else ["symptoms"]
        # A new consent replaces the old one: fewer categories, or data from yesterday only.
        start = now - timedelta(days=30 if change == "narrow_categories" else 1)
        consent(client, pair["patient_headers"], pair["clinician"], categories, start)
    # At once: the files are gone before anyone polls.
    assert list(export_dir.rglob("*.ndjson")) == []
    _refused(client, pair, url, manifest)


def test_an_unchanged_consent_keeps_the_export(
    client: FlaskClient,
    pair: dict[str, Any],
    run_export_job: Callable[..., Any],
    make_patient: Callable[..., User],
    make_clinician: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
) -> None:
    """Another patient's or another clinician's consent changing leaves this export alone."""
    now = datetime.now(UTC)
    consent(
        client, pair["patient_headers"], pair["clinician"], ["symptoms"], now - timedelta(days=9)
    )
    _checkin(client, pair["patient_headers"], now - timedelta(days=3))
    url, manifest = _finished_export(client, pair, run_export_job)
    other = consent(
        client, pair["patient_headers"], make_clinician(), ["symptoms"], now - timedelta(days=9)
    )
    client.post(f"/v1/consents/{other['id']}/revoke", headers=pair["patient_headers"])
    assert client.get(url, headers=pair["headers"]).status_code == 200
    assert fetch_all(client, manifest, pair["headers"])["Observation"]


def test_expiry_voids_a_finished_export_on_the_next_poll_and_in_the_sweep(
    app: Flask,
    client: FlaskClient,
    session: Session,
    pair: dict[str, Any],
    run_export_job: Callable[..., Any],
    export_dir: Path,
) -> None:
    now = datetime.now(UTC)
    resp = client.post(
        "/v1/consents",
        json={
            "recipient_id": str(pair["clinician"].id),
            "categories": ["symptoms"],
            "purpose": "care_coordination",
            "expires_at": (now + timedelta(minutes=1)).isoformat(),
            "data_from": (now - timedelta(days=9)).isoformat(),
            "signature": "Pat Patient",
            "consent_text_version": "2026-01",
        },
        headers=pair["patient_headers"],
    )
    assert resp.status_code == 201, resp.get_json()
    _checkin(client, pair["patient_headers"], now - timedelta(days=3))
    url, manifest = _finished_export(client, pair, run_export_job)
    later = now + timedelta(minutes=2)
    # The scheduler's sweep (no request announces an expiry) deletes the files...
    with app.app_context():
        bulk_export.expire_exports(session, now=later, export_dir=str(export_dir))
        session.commit()
    assert list(export_dir.rglob("*.ndjson")) == []
    with time_machine.travel(later):
        _refused(client, pair, url, manifest)


def test_a_poll_after_expiry_voids_before_answering(
    client: FlaskClient,
    session: Session,
    pair: dict[str, Any],
    run_export_job: Callable[..., Any],
    export_dir: Path,
) -> None:
    now = datetime.now(UTC)
    resp = client.post(
        "/v1/consents",
        json={
            "recipient_id": str(pair["clinician"].id),
            "categories": ["symptoms"],
            "purpose": "care_coordination",
            "expires_at": (now + timedelta(minutes=1)).isoformat(),
            "data_from": (now - timedelta(days=9)).isoformat(),
            "signature": "Pat Patient",
            "consent_text_version": "2026-01",
        },
        headers=pair["patient_headers"],
    )
    assert resp.status_code == 201
    _checkin(client, pair["patient_headers"], now - timedelta(days=3))
    url, manifest = _finished_export(client, pair, run_export_job)
    with time_machine.travel(now + timedelta(minutes=2)):
        file_url = _path(manifest["output"][0]["url"])
        assert client.get(file_url, headers=pair["headers"]).status_code in (404, 500)
        assert list(export_dir.rglob("*.ndjson")) == []
        _refused(client, pair, url, manifest)


def test_a_regimen_that_ended_before_the_window_is_not_exported(
    client: FlaskClient,
    pair: dict[str, Any],
    run_export_job: Callable[..., Any],
) -> None:
    """A MedicationStatement is judged by the time the regimen was in effect: one from 2020 stays
    out of a window that starts 30 days ago; one running now, or ended inside it, goes out."""
    now = datetime.now(UTC)
    consent(
        client,
        pair["patient_headers"],
        pair["clinician"],
        ["medications"],
        now - timedelta(days=30),
    )
    headers = pair["patient_headers"]
    _medication(client, headers, date(2020, 1, 1), date(2020, 6, 30), "Old2020")
    _medication(client, headers, (now - timedelta(days=400)).date(), None, "Running")
    ended = (now - timedelta(days=10)).date()
    _medication(client, headers, ended - timedelta(days=60), ended, "EndedInside")
    _url, manifest = _finished_export(client, pair, run_export_job)
    files = fetch_all(client, manifest, pair["headers"])
    names = {r["medicationCodeableConcept"]["text"] for r in files.get("MedicationStatement", [])}
    assert names == {"Running", "EndedInside"}
    assert "Old2020" not in json.dumps(files)


def test_a_section_of_health_data_without_a_time_is_refused() -> None:
    """The filter never waves a row through because it cannot place it in time."""
    now = datetime.now(UTC)
    grant = Grant(
        patient_id=uuid.uuid4(),
        clinician_id=uuid.uuid4(),
        consent_id=uuid.uuid4(),
        category="medications",
        window_from=now - timedelta(days=1),
        window_to=now,
    )
    grants = dict.fromkeys(("symptoms", "medications", "counseling"), grant)
    for section in all_sections():
        if section.category is None or section.own_only:
            continue
        assert section.when is not None, f"{section.name} has no time to judge by"
        timeless = dataclasses.replace(section, when=lambda _r: None)
        assert not export_services._in_period(timeless, {}, grants), section.name
        bare = dataclasses.replace(section, when=None)
        assert not export_services._in_period(bare, {}, grants), section.name
