"""A clinician's bulk export: exactly the consented patients, categories and data periods; a
ledger row per patient; the Part 2 labels and notice; revocation voids a running export."""

from __future__ import annotations

import json
from collections import defaultdict
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

from api.auth.models import User
from api.disclosures.models import Disclosure
from api.export import fhir as export_fhir
from api.export import services as export_services
from tests.export.data import Seeded, seed_patient_data
from tests.export.fhir_check import fhir_errors, unresolved_canonicals

ASYNC = {"Prefer": "respond-async"}


def _path(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def consent(
    client: FlaskClient,
    headers: dict[str, str],
    clinician: User,
    categories: list[str],
    data_from: datetime,
) -> dict[str, Any]:
    resp = client.post(
        "/v1/consents",
        json={
            "recipient_id": str(clinician.id),
            "categories": categories,
            "purpose": "treatment",
            "expires_at": None,
            "data_from": data_from.isoformat(),
            "signature": "Pat Patient",
            "consent_text_version": "2026-01",
        },
        headers=headers,
    )
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def fetch_all(client: FlaskClient, manifest: dict[str, Any], headers: dict[str, str]) -> Any:
    """Every resource of every output file, by type."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for output in manifest["output"]:
        resp = client.get(_path(output["url"]), headers=headers)
        data = resp.get_data().decode()
        resp.close()
        out[output["type"]] = [json.loads(line) for line in data.splitlines()]
    return out


def _subject(resource: dict[str, Any]) -> str:
    if resource["resourceType"] in ("Practitioner", "Organization"):
        return "(the consent's parties)"
    if resource["resourceType"] in export_services.SUPPORTING_TYPES:
        return "(no one's: published definitions)"
    if resource["resourceType"] == "Patient":
        return resource["id"]
    for key in ("subject", "patient"):
        if key in resource:
            return resource[key]["reference"].split("/")[1]
    actor = resource["participant"][0]["actor"]["reference"]
    return actor.split("/")[1]


@pytest.fixture
def world(
    app: Flask,
    client: FlaskClient,
    session: Session,
    make_patient: Callable[..., User],
    make_clinician: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
) -> dict[str, Any]:
    now = datetime.now(UTC)
    clinician = make_clinician()
    other_clinician = make_clinician()
    people: dict[str, tuple[User, dict[str, str], Seeded]] = {}
    for name in ("both", "counseling", "recent", "none", "revoked", "elsewhere"):
        user = make_patient()
        headers = auth_headers(user)
        people[name] = (user, headers, seed_patient_data(app, client, session, headers, now=now))
    month = now - timedelta(days=30)
    consent(client, people["both"][1], clinician, ["symptoms", "medications"], month)
    consent(client, people["counseling"][1], clinician, ["counseling"], month)
    # Only data from 2.5 days ago on: the check-in of 3 days ago stays out.
    consent(client, people["recent"][1], clinician, ["symptoms"], now - timedelta(days=2, hours=12))
    revoked = consent(client, people["revoked"][1], clinician, ["symptoms"], month)
    resp = client.post(f"/v1/consents/{revoked['id']}/revoke", headers=people["revoked"][1])
    assert resp.status_code == 200
    consent(client, people["elsewhere"][1], other_clinician, ["symptoms"], month)
    return {"clinician": clinician, "headers": auth_headers(clinician), "people": people}


def run_clinician_export(
    client: FlaskClient, world: dict[str, Any], run_export_job: Callable[..., Any]
) -> tuple[Any, dict[str, Any]]:
    started = client.get("/fhir/Patient/$export", headers={**world["headers"], **ASYNC})
    assert started.status_code == 202
    url = _path(started.headers["Content-Location"])
    job = run_export_job()
    return job, client.get(url, headers=world["headers"])


def test_only_consented_patients_categories_and_periods(
    client: FlaskClient,
    session: Session,
    world: dict[str, Any],
    run_export_job: Callable[..., Any],
    export_dir: Path,
) -> None:
    _job, done = run_clinician_export(client, world, run_export_job)
    assert done.status_code == 200
    manifest = done.json
    assert manifest["extension"]["redisclosureNotice"].startswith(
        "This record which has been disclosed to you is protected by Federal confidentiality"
    )
    files = fetch_all(client, manifest, world["headers"])
    # Each file is a disclosure in itself: its download carries the notice too.
    for output in manifest["output"]:
        resp = client.get(_path(output["url"]), headers=world["headers"])
        resp.close()
        assert resp.headers["X-Redisclosure-Notice"].startswith("This record"), output["type"]
    people = world["people"]
    ids = {name: str(p[0].id) for name, p in people.items()}
    subjects = {t: {_subject(r) for r in rs} for t, rs in files.items()}

    assert subjects["Patient"] == {ids["both"], ids["counseling"], ids["recent"]}
    assert subjects["QuestionnaireResponse"] == {ids["both"]}
    assert subjects["Observation"] == {ids["both"], ids["recent"]}
    assert subjects["MedicationStatement"] == subjects["MedicationAdministration"] == {ids["both"]}
    assert subjects["Appointment"] == subjects["Encounter"] == {ids["counseling"]}
    # The data window: of "recent", only the check-in inside it.
    recent_obs = [r for r in files["Observation"] if _subject(r) == ids["recent"]]
    assert len(recent_obs) == 1
    # The Questionnaires and CodeSystems the data names come along, unlabelled: they are our
    # public definitions (served without sign-in), not anyone's record.
    assert {r["id"] for r in files["Questionnaire"]} == {"sows"}
    assert unresolved_canonicals([r for rs in files.values() for r in rs]) == set()
    for rtype, resources in files.items():
        for resource in resources:
            assert fhir_errors(resource) == []
            if rtype in export_services.SUPPORTING_TYPES:
                assert "meta" not in resource
                continue
            assert "42CFRPart2" in {s["code"] for s in resource["meta"]["security"]}
            assert "telecom" not in resource  # no email in a disclosed Patient
    # Nothing of the others, nor any counseling note, leaks into any file.
    text = "".join(p.read_text() for p in export_dir.rglob("*.ndjson"))
    for name in ("none", "revoked", "elsewhere"):
        assert ids[name] not in text
        assert not any(c in text for c in people[name][2].canaries)
    assert not any(p[2].canaries[2] in text for p in people.values())  # session notes

    # One ledger row per included patient, kind export, naming what went out.
    rows = session.scalars(select(Disclosure).where(Disclosure.kind == "export")).all()
    by_patient = {str(r.patient_id): r for r in rows}
    assert set(by_patient) == {ids["both"], ids["counseling"], ids["recent"]}
    assert by_patient[ids["both"]].categories == ["medications", "symptoms"]
    assert by_patient[ids["counseling"]].categories == ["counseling"]
    assert all(r.recipient_id == world["clinician"].id for r in rows)
    # The patient sees it in their accounting of disclosures.
    listed = client.get("/v1/disclosures", headers=people["both"][1]).json["items"]
    assert [d["kind"] for d in listed] == ["export"]


def test_a_revocation_during_the_run_voids_the_export(
    client: FlaskClient,
    session: Session,
    world: dict[str, Any],
    run_export_job: Callable[..., Any],
    export_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    people = world["people"]
    consents = client.get("/v1/consents", headers=people["both"][1]).json["items"]
    real = export_services._export_section
    calls = []

    def revoke_after_first(run: Any, section: Any) -> None:
        real(run, section)
        calls.append(section.name)
        if len(calls) == 1:
            resp = client.post(
                f"/v1/consents/{consents[0]['id']}/revoke", headers=people["both"][1]
            )
            assert resp.status_code == 200

    monkeypatch.setattr(export_services, "_export_section", revoke_after_first)
    job, done = run_clinician_export(client, world, run_export_job)
    assert job.status == "failed"
    assert done.status_code == 500
    assert not (export_dir / str(job.id)).exists()
    assert session.scalars(select(Disclosure).where(Disclosure.kind == "export")).all() == []


def test_the_patient_own_export_holds_consents_and_disclosures(
    client: FlaskClient, world: dict[str, Any], run_export_job: Callable[..., Any]
) -> None:
    run_clinician_export(client, world, run_export_job)
    headers = world["people"]["both"][1]
    body = json.loads(client.get("/v1/export", headers=headers).get_data())
    assert [c["categories"] for c in body["consents"]] == [["medications", "symptoms"]]
    assert body["consents"][0]["signature"] == "Pat Patient"
    assert [d["kind"] for d in body["disclosures"]] == ["export"]
    bundle = json.loads(client.get("/v1/export?format=fhir", headers=headers).get_data())
    by_type = defaultdict(list)
    for entry in bundle["entry"]:
        by_type[entry["resource"]["resourceType"]].append(entry["resource"])
    assert len(by_type["Consent"]) == 1 and len(by_type["AuditEvent"]) == 1
    for resource in by_type["Consent"] + by_type["AuditEvent"]:
        assert fhir_errors(resource) == []
    actor = by_type["Consent"][0]["provision"]["actor"][0]["reference"]
    assert actor["reference"] == f"Practitioner/{world['clinician'].id}"


def test_a_clinician_hears_only_of_consented_deletions(
    client: FlaskClient, world: dict[str, Any], run_export_job: Callable[..., Any]
) -> None:
    people = world["people"]
    since = datetime.now(UTC)
    deleted: dict[str, list[str]] = {}
    with time_machine.travel(since + timedelta(seconds=5)):
        for name in ("both", "counseling", "none", "elsewhere"):
            headers, seeded = people[name][1], people[name][2]
            checkin, session_id = seeded.checkin_ids[1], seeded.session_ids[1]
            assert client.delete(f"/v1/checkins/{checkin}", headers=headers).status_code == 204
            resp = client.delete(f"/v1/counseling-sessions/{session_id}", headers=headers)
            assert resp.status_code == 204
            deleted[name] = [checkin, session_id]
    with time_machine.travel(since + timedelta(seconds=10)):
        z = since.isoformat().replace("+00:00", "Z")
        started = client.get(
            f"/fhir/Patient/$export?_since={z}", headers={**world["headers"], **ASYNC}
        )
        run_export_job(now=datetime.now(UTC))
        manifest = client.get(_path(started.headers["Content-Location"]), headers=world["headers"])
        urls = []
        for item in manifest.json["deleted"]:
            resp = client.get(_path(item["url"]), headers=world["headers"])
            for line in resp.get_data().decode().splitlines():
                bundle = json.loads(line)
                assert fhir_errors(bundle) == []
                urls += [e["request"]["url"] for e in bundle["entry"]]
            resp.close()
    # "both" consented to symptoms (the check-in), "counseling" to counseling (the session);
    # nothing of the patients without a consent to this clinician.
    checkin_of_both, _ = deleted["both"]
    _, session_of_counseling = deleted["counseling"]
    assert sorted(urls) == sorted(
        [
            f"QuestionnaireResponse/{checkin_of_both}",
            f"Observation/{export_fhir.derived_id(checkin_of_both, 'score')}",
            f"Observation/{export_fhir.derived_id(checkin_of_both, 'ratings')}",
            f"Appointment/{session_of_counseling}",
            f"Encounter/{export_fhir.derived_id(session_of_counseling, 'encounter')}",
        ]
    )
