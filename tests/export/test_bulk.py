"""FHIR Bulk Data: kick-off, polling, manifest, NDJSON files, _type/_since, cancel, expiry."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.audit.models import AuditEvent
from api.auth.models import User
from api.export import fhir, services, writers
from api.export.models import ExportJob, ExportJobPatient
from jobs import bulk_export
from jobs.__main__ import build_scheduler
from tests.export.data import seed_patient_data
from tests.export.fhir_check import fhir_errors

ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}


def _path(url: str) -> str:
    return url.split("://", 1)[1].split("/", 1)[1].join(["/", ""])


def fetch(client: FlaskClient, url: str, headers: dict[str, str] | None = None) -> Any:
    """GET a file and close the response (send_file keeps the file open until then)."""
    resp = client.get(url, headers=headers or {})
    resp.get_data()
    resp.close()
    return resp


def kick_off(client: FlaskClient, headers: dict[str, str], query: str = "") -> Any:
    return client.get(f"/fhir/Patient/$export{query}", headers={**headers, **ASYNC})


@pytest.fixture
def admin_headers(
    make_admin: Callable[..., User], auth_headers: Callable[[User], dict[str, str]]
) -> dict[str, str]:
    return auth_headers(make_admin())


def test_kick_off_needs_prefer_respond_async(
    client: FlaskClient, admin_headers: dict[str, str], export_dir: Path
) -> None:
    resp = client.get("/fhir/Patient/$export", headers=admin_headers)
    assert resp.status_code == 400
    assert resp.mimetype == "application/fhir+json"  # under /fhir: an OperationOutcome
    assert resp.json["resourceType"] == "OperationOutcome"
    assert "respond-async" in resp.json["issue"][0]["diagnostics"]


def test_patients_cannot_bulk_export(
    client: FlaskClient, patient_headers: dict[str, str], export_dir: Path
) -> None:
    assert kick_off(client, patient_headers).status_code == 403


def test_admin_export_round_trip(
    client: FlaskClient,
    admin_headers: dict[str, str],
    make_patient: Callable[..., User],
    make_clinician: Callable[..., User],
    run_export_job: Callable[..., Any],
    export_dir: Path,
) -> None:
    patients = [make_patient() for _ in range(3)]
    make_clinician()  # not a patient: not in the export
    started = kick_off(client, admin_headers)
    assert started.status_code == 202
    status_url = _path(started.headers["Content-Location"])
    assert status_url.startswith("/fhir/bulkstatus/")

    # Nothing runs in the web worker: the job waits for the scheduler.
    pending = client.get(status_url, headers=admin_headers)
    assert pending.status_code == 202
    assert pending.headers["X-Progress"].startswith("queued")
    assert int(pending.headers["Retry-After"]) > 0
    assert not export_dir.exists() or not any(export_dir.iterdir())

    run_export_job()
    done = client.get(status_url, headers=admin_headers)
    assert done.status_code == 200
    manifest = done.json
    assert manifest["requiresAccessToken"] is True
    assert manifest["request"].endswith("/fhir/Patient/$export")
    assert manifest["error"] == []
    assert "extension" not in manifest  # an admin's export is not a disclosure
    datetime.fromisoformat(manifest["transactionTime"])
    assert "Expires" in done.headers
    by_type = {o["type"]: o for o in manifest["output"]}
    assert by_type["Patient"]["count"] >= 3

    file = fetch(client, _path(by_type["Patient"]["url"]), admin_headers)
    assert file.status_code == 200
    assert file.mimetype == "application/fhir+ndjson"
    lines = [json.loads(line) for line in file.get_data().decode().splitlines()]
    assert len(lines) == by_type["Patient"]["count"]
    assert {str(p.id) for p in patients} <= {r["id"] for r in lines}
    assert all(fhir_errors(r) == [] for r in lines)


def test_admin_export_holds_every_feature(
    app: Flask,
    client: FlaskClient,
    session: Session,
    admin_headers: dict[str, str],
    make_patient: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
    run_export_job: Callable[..., Any],
) -> None:
    patients = [make_patient() for _ in range(2)]
    for patient in patients:
        seed_patient_data(app, client, session, auth_headers(patient))
    status_url = _path(kick_off(client, admin_headers).headers["Content-Location"])
    run_export_job()
    manifest = client.get(status_url, headers=admin_headers).json
    by_type = {o["type"]: o for o in manifest["output"]}
    assert by_type["MedicationStatement"]["count"] >= 2
    assert by_type["Appointment"]["count"] >= 4
    assert by_type["Encounter"]["count"] >= 2
    for output in manifest["output"]:
        lines = fetch(client, _path(output["url"]), admin_headers).get_data().decode().splitlines()
        assert len(lines) == output["count"]
        for line in lines:
            resource = json.loads(line)
            assert resource["resourceType"] == output["type"]
            assert fhir_errors(resource) == []


def test_files_only_for_the_requester(
    client: FlaskClient,
    admin_headers: dict[str, str],
    make_admin: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
    make_patient: Callable[..., User],
    run_export_job: Callable[..., Any],
) -> None:
    make_patient()
    status_url = _path(kick_off(client, admin_headers).headers["Content-Location"])
    run_export_job()
    url = _path(client.get(status_url, headers=admin_headers).json["output"][0]["url"])
    other = auth_headers(make_admin())
    assert client.get(status_url, headers=other).status_code == 404
    assert client.get(url, headers=other).status_code == 404
    assert client.get(url).status_code == 401
    assert fetch(client, url, admin_headers).status_code == 200


def test_type_and_since_are_honoured(
    client: FlaskClient,
    admin_headers: dict[str, str],
    make_patient: Callable[..., User],
    run_export_job: Callable[..., Any],
) -> None:
    make_patient()
    bad = kick_off(client, admin_headers, "?_type=Patient,Spaceship")
    assert bad.status_code == 422
    assert ["_type"] in [i.get("expression") for i in bad.json["issue"]]
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert kick_off(client, admin_headers, f"?_since={future}").status_code == 422

    url = _path(kick_off(client, admin_headers, "?_type=Patient").headers["Content-Location"])
    run_export_job()
    assert [o["type"] for o in client.get(url, headers=admin_headers).json["output"]] == ["Patient"]

    # _since after every change: nothing to send.
    later = datetime.now(UTC) + timedelta(seconds=1)
    with time_machine.travel(later + timedelta(seconds=1)):
        since = later.isoformat().replace("+00:00", "Z")
        url = _path(
            kick_off(client, admin_headers, f"?_type=Patient&_since={since}").headers[
                "Content-Location"
            ]
        )
        run_export_job(now=datetime.now(UTC))
        assert client.get(url, headers=admin_headers).json["output"] == []


def test_one_export_at_a_time(
    client: FlaskClient,
    admin_headers: dict[str, str],
    make_admin: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
    run_export_job: Callable[..., Any],
) -> None:
    assert kick_off(client, admin_headers).status_code == 202
    second = kick_off(client, admin_headers)
    assert second.status_code == 429
    assert second.mimetype == "application/fhir+json"
    assert second.json["issue"][0]["code"] == "throttled"
    assert int(second.headers["Retry-After"]) > 0
    # Someone else is not held up.
    assert kick_off(client, auth_headers(make_admin())).status_code == 202
    run_export_job()
    assert kick_off(client, admin_headers).status_code == 202


def test_delete_cancels_and_removes_files(
    client: FlaskClient,
    admin_headers: dict[str, str],
    make_patient: Callable[..., User],
    run_export_job: Callable[..., Any],
    export_dir: Path,
) -> None:
    make_patient()
    queued = _path(kick_off(client, admin_headers).headers["Content-Location"])
    assert client.delete(queued, headers=admin_headers).status_code == 202
    assert client.get(queued, headers=admin_headers).status_code == 404
    assert run_export_job() is None  # nothing queued any more

    done = _path(kick_off(client, admin_headers).headers["Content-Location"])
    job = run_export_job()
    assert any((export_dir / str(job.id)).iterdir())
    assert client.delete(done, headers=admin_headers).status_code == 202
    assert not (export_dir / str(job.id)).exists()
    assert client.get(done, headers=admin_headers).status_code == 404
    assert client.delete(done, headers=admin_headers).status_code == 404


def test_cancel_seen_by_a_running_job(
    app: Flask,
    session: Session,
    make_admin: Callable[..., User],
    make_patient: Callable[..., User],
    export_dir: Path,
) -> None:
    """A DELETE that lands while the scheduler runs the job stops it at the next checkpoint."""
    make_patient()
    admin = make_admin()
    job = ExportJob(
        requester_id=admin.id,
        types=["Patient"],
        request_url="x",
        created_at=datetime.now(UTC),
    )
    session.add(job)
    session.commit()
    real_run = bulk_export.services.run_bulk_export

    def run_then_cancel(*args: Any, **kwargs: Any) -> Any:
        session.execute(
            ExportJob.__table__.update().where(ExportJob.id == job.id).values(status="cancelled")
        )
        return real_run(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bulk_export.services, "run_bulk_export", run_then_cancel)
        with app.app_context():
            bulk_export.run_next_export(
                session, now=datetime.now(UTC), export_dir=str(export_dir), base_url="b", ttl=60
            )
    session.expire_all()
    assert session.get(ExportJob, job.id).status == "cancelled"
    assert not (export_dir / str(job.id)).exists()


def test_files_expire_and_are_deleted(
    client: FlaskClient,
    session: Session,
    app: Flask,
    admin_headers: dict[str, str],
    make_patient: Callable[..., User],
    run_export_job: Callable[..., Any],
    export_dir: Path,
) -> None:
    make_patient()
    url = _path(kick_off(client, admin_headers).headers["Content-Location"])
    job = run_export_job()
    later = job.expires_at + timedelta(seconds=1)
    assert bulk_export.expire_exports(session, now=later, export_dir=str(export_dir)) == 1
    session.commit()
    assert not (export_dir / str(job.id)).exists()
    assert session.get(ExportJob, job.id).status == "expired"
    assert client.get(url, headers=admin_headers).status_code == 404
    assert (
        session.scalars(select(ExportJobPatient).where(ExportJobPatient.job_id == job.id)).all()
        == []
    )


def test_a_failed_job_reports_500_and_keeps_nothing(
    client: FlaskClient,
    admin_headers: dict[str, str],
    make_patient: Callable[..., User],
    run_export_job: Callable[..., Any],
    export_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_patient()
    url = _path(kick_off(client, admin_headers).headers["Content-Location"])

    def boom(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("disk full")

    monkeypatch.setattr(bulk_export.services, "run_bulk_export", boom)
    job = run_export_job()
    assert job.status == "failed"
    failed = client.get(url, headers=admin_headers)
    assert failed.status_code == 500
    assert failed.mimetype == "application/fhir+json"
    assert failed.json["issue"][0]["severity"] == "fatal"
    assert "disk" not in failed.get_data(as_text=True)
    assert not (export_dir / str(job.id)).exists()
    # The requester may start again.
    assert kick_off(client, admin_headers).status_code == 202


def test_the_scheduler_runs_the_export_jobs(app: Flask) -> None:
    scheduler = build_scheduler(app)
    ids = {job.id for job in scheduler.get_jobs()}
    assert {"bulk_export", "expire_exports"} <= ids


def test_bulk_ndjson_is_the_own_export_mapping(
    app: Flask,
    client: FlaskClient,
    session: Session,
    admin_headers: dict[str, str],
    make_patient: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
    run_export_job: Callable[..., Any],
) -> None:
    """Per type, a patient's resources in an admin's bulk NDJSON are exactly those of their own
    FHIR export (same mapping, same records, same order), valid, and each line is the bytes the
    own export's encoder writes: the bulk path's speed-ups cannot drift from the own export."""
    patient = make_patient()
    headers = auth_headers(patient)
    seed_patient_data(app, client, session, headers)
    make_patient()  # someone else, left out of the comparison
    bundle = client.get("/v1/export?format=fhir", headers=headers).get_json()
    own: dict[str, list[dict[str, Any]]] = {}
    for entry in bundle["entry"]:
        own.setdefault(entry["resource"]["resourceType"], []).append(entry["resource"])

    status_url = _path(kick_off(client, admin_headers).headers["Content-Location"])
    run_export_job()
    manifest = client.get(status_url, headers=admin_headers).json
    ref = f"Patient/{patient.id}"
    compared = set()
    for output in manifest["output"]:
        raw = fetch(client, _path(output["url"]), admin_headers).get_data()
        lines = raw.splitlines(keepends=True)
        resources = [json.loads(line) for line in lines]
        for line, resource in zip(lines, resources, strict=True):
            assert fhir_errors(resource) == []
            assert line == (writers.dumps(resource) + "\n").encode()
        if output["type"] in services.SUPPORTING_TYPES:
            # Not the patient's: the Questionnaires and CodeSystems both exports name.
            assert resources == own[output["type"]], output["type"]
            compared.add(output["type"])
            continue
        mine = [
            r
            for r in resources
            if r["id"] == str(patient.id)
            or r.get("subject", {}).get("reference") == ref
            or any(p["actor"].get("reference") == ref for p in r.get("participant", []))
        ]
        assert mine, output["type"]
        assert mine == own[output["type"]], output["type"]
        compared.add(output["type"])
    assert compared == {
        "Patient",
        "QuestionnaireResponse",
        "Observation",
        "MedicationStatement",
        "MedicationAdministration",
        "Appointment",
        "Encounter",
        "Questionnaire",
        "CodeSystem",
    }


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _deleted_urls(client: FlaskClient, manifest: dict[str, Any], headers: Any) -> list[str]:
    """The request.url of every DELETE entry in the manifest's `deleted` files (validated)."""
    urls: list[str] = []
    for item in manifest["deleted"]:
        assert item["type"] == "Bundle"
        lines = fetch(client, _path(item["url"]), headers).get_data().decode().splitlines()
        assert len(lines) == item["count"]
        for line in lines:
            bundle = json.loads(line)
            assert fhir_errors(bundle) == []
            assert bundle["type"] == "transaction"
            for entry in bundle["entry"]:
                assert entry["request"]["method"] == "DELETE"
                urls.append(entry["request"]["url"])
    return urls


def test_since_reports_deleted_resources(
    app: Flask,
    client: FlaskClient,
    session: Session,
    admin_headers: dict[str, str],
    make_patient: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
    run_export_job: Callable[..., Any],
) -> None:
    patient = make_patient()
    headers = auth_headers(patient)
    seeded = seed_patient_data(app, client, session, headers)
    early_checkin, late_checkin = seeded.checkin_ids
    assert client.delete(f"/v1/checkins/{early_checkin}", headers=headers).status_code == 204
    since = datetime.now(UTC)
    with time_machine.travel(since + timedelta(seconds=5)):
        for url in (
            f"/v1/checkins/{late_checkin}",
            f"/v1/counseling-sessions/{seeded.session_ids[0]}",
            f"/v1/doses/{seeded.dose_ids[0]}",
        ):
            assert client.delete(url, headers=headers).status_code == 204, url
    with time_machine.travel(since + timedelta(seconds=10)):
        status_url = _path(
            kick_off(client, admin_headers, f"?_since={_z(since)}").headers["Content-Location"]
        )
        job = run_export_job(now=datetime.now(UTC))
        manifest = client.get(status_url, headers=admin_headers).json
        urls = _deleted_urls(client, manifest, admin_headers)
    # Named only by deletions, the patient is still held by the job (an erasure reaches it).
    held = session.scalars(
        select(ExportJobPatient.patient_id).where(ExportJobPatient.job_id == job.id)
    )
    assert patient.id in set(held)
    # Each deleted record's resources, once; the deletion before _since is not there.
    assert sorted(urls) == sorted(
        [
            f"QuestionnaireResponse/{late_checkin}",
            f"Observation/{fhir.derived_id(late_checkin, 'score')}",
            f"Observation/{fhir.derived_id(late_checkin, 'ratings')}",
            f"Appointment/{seeded.session_ids[0]}",
            f"Encounter/{fhir.derived_id(seeded.session_ids[0], 'encounter')}",
            f"MedicationAdministration/{seeded.dose_ids[0]}",
        ]
    )
    assert all(early_checkin not in url for url in urls)
    assert "Bundle" not in {o["type"] for o in manifest["output"]}

    # _type narrows the deletions too; without _since there is no `deleted` array.
    with time_machine.travel(since + timedelta(seconds=20)):
        status_url = _path(
            kick_off(client, admin_headers, f"?_type=Appointment&_since={_z(since)}").headers[
                "Content-Location"
            ]
        )
        run_export_job(now=datetime.now(UTC))
        manifest = client.get(status_url, headers=admin_headers).json
        assert _deleted_urls(client, manifest, admin_headers) == [
            f"Appointment/{seeded.session_ids[0]}"
        ]
        status_url = _path(kick_off(client, admin_headers).headers["Content-Location"])
        run_export_job(now=datetime.now(UTC))
        assert "deleted" not in client.get(status_url, headers=admin_headers).json


def test_bulk_exports_are_audited(
    client: FlaskClient,
    session: Session,
    make_admin: Callable[..., User],
    make_clinician: Callable[..., User],
    make_patient: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
    run_export_job: Callable[..., Any],
) -> None:
    """Kick-offs and file reads leave audit rows (actor, role, job, outcome), as every route
    reaching other people's data does; no patient id, as for other reads across patients."""
    admin, clinician, other = make_admin(), make_clinician(), make_admin()
    make_patient()
    headers = auth_headers(admin)
    started = kick_off(client, headers)
    assert kick_off(client, headers).status_code == 429  # busy: refused, still recorded
    job = run_export_job()
    manifest = client.get(_path(started.headers["Content-Location"]), headers=headers).json
    file_url = _path(manifest["output"][0]["url"])
    assert fetch(client, file_url, headers).status_code == 200
    assert fetch(client, file_url, auth_headers(other)).status_code == 404
    assert kick_off(client, auth_headers(clinician)).status_code == 202

    session.expire_all()
    recorded = [
        (r.action, r.actor_id, r.actor_role, r.outcome, r.status, r.target_id, r.patient_id)
        for r in session.scalars(select(AuditEvent).order_by(AuditEvent.at, AuditEvent.id))
    ]
    assert sorted(recorded, key=str) == sorted(
        [
            ("bulk_export.start", admin.id, "admin", "allowed", None, None, None),
            ("bulk_export.start", admin.id, "admin", "denied", 429, None, None),
            ("bulk_export.file.read", admin.id, "admin", "allowed", None, job.id, None),
            ("bulk_export.file.read", other.id, "admin", "denied", 404, job.id, None),
            ("bulk_export.start", clinician.id, "clinician", "allowed", None, None, None),
        ],
        key=str,
    )


@pytest.mark.parametrize(
    ("types", "expected"),
    [
        # The responses name the sows Questionnaire; the CodeSystem it names was not asked for.
        ("QuestionnaireResponse,Questionnaire", {"QuestionnaireResponse": 1, "Questionnaire": 1}),
        # Named by the Observations' codes; no Questionnaire, since no response went out.
        (
            "Observation,Questionnaire,CodeSystem",
            # instruments and checkin (SOWS defines no severity band, so no interpretation)
            {"Observation": 3, "CodeSystem": 2},
        ),
        # `_type` filters: not asked for, not sent, though the Observations name them.
        ("Observation", {"Observation": 3}),
        # Only definitions: nothing in the export names one.
        ("Questionnaire,CodeSystem", {}),
    ],
)
def test_type_decides_whether_questionnaires_and_code_systems_come(
    app: Flask,
    client: FlaskClient,
    session: Session,
    admin_headers: dict[str, str],
    make_patient: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
    run_export_job: Callable[..., Any],
    types: str,
    expected: dict[str, int],
) -> None:
    seed_patient_data(app, client, session, auth_headers(make_patient()))
    status_url = _path(
        kick_off(client, admin_headers, f"?_type={types}").headers["Content-Location"]
    )
    run_export_job()
    manifest = client.get(status_url, headers=admin_headers).json
    assert {o["type"]: o["count"] for o in manifest["output"]} == expected
