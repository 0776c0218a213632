"""GET /v1/export: the caller's own data as JSON, a zip of CSVs, or a FHIR R4 Bundle."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from api.auth.models import User
from tests.consenting import sign
from tests.export.fhir_check import bundle_errors


def test_json_export_holds_the_profile(
    client: FlaskClient, patient: User, patient_headers: dict[str, str]
) -> None:
    resp = client.get("/v1/export?format=json", headers=patient_headers)
    assert resp.status_code == 200
    assert resp.mimetype == "application/json"
    assert resp.headers["Content-Disposition"].startswith("attachment;")
    assert resp.headers["Cache-Control"] == "no-store"
    body = json.loads(resp.get_data())
    assert body["format"] == "waymark-export"
    assert body["version"] == 1
    assert body["profile"]["id"] == str(patient.id)
    assert body["profile"]["email"] == patient.email
    assert body["profile"]["timezone"] == "America/New_York"


def test_json_is_the_default_format(client: FlaskClient, patient_headers: dict[str, str]) -> None:
    resp = client.get("/v1/export", headers=patient_headers)
    assert resp.status_code == 200
    assert json.loads(resp.get_data())["format"] == "waymark-export"


def test_csv_export_is_a_zip_with_a_readme(
    client: FlaskClient, patient: User, patient_headers: dict[str, str]
) -> None:
    resp = client.get("/v1/export?format=csv", headers=patient_headers)
    assert resp.status_code == 200
    assert resp.mimetype == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(resp.get_data()))
    assert archive.testzip() is None
    names = archive.namelist()
    assert names[0] == "README.txt"
    assert "profile.csv" in names
    readme = archive.read("README.txt").decode()
    assert "profile.csv" in readme and "display_name:" in readme
    rows = list(csv.DictReader(io.StringIO(archive.read("profile.csv").decode())))
    assert len(rows) == 1
    assert rows[0]["id"] == str(patient.id)
    assert rows[0]["discreet_notifications"] == "false"


def test_the_zip_has_an_operation_of_its_own(
    strict_client: FlaskClient, patient_headers: dict[str, str]
) -> None:
    # ?format=csv shares an operation with JSON, which a generated client parses every answer
    # as; /v1/export.zip declares the one media type it answers (checked by the strict client).
    resp = strict_client.get("/v1/export.zip", headers=patient_headers)
    assert resp.status_code == 200 and resp.mimetype == "application/zip"
    assert resp.headers["Content-Disposition"].endswith('.zip"')
    assert "profile.csv" in zipfile.ZipFile(io.BytesIO(resp.get_data())).namelist()


def test_fhir_export_is_a_valid_bundle(
    client: FlaskClient, patient: User, patient_headers: dict[str, str]
) -> None:
    resp = client.get("/v1/export?format=fhir", headers=patient_headers)
    assert resp.status_code == 200
    assert resp.mimetype == "application/fhir+json"
    bundle = json.loads(resp.get_data())
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "collection"
    assert bundle_errors(bundle) == []
    patients = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    ]
    assert [p["id"] for p in patients] == [str(patient.id)]


def test_export_needs_a_token(client: FlaskClient) -> None:
    resp = client.get("/v1/export")
    assert resp.status_code == 401
    assert resp.mimetype == "application/problem+json"


def test_unknown_format_is_422(client: FlaskClient, patient_headers: dict[str, str]) -> None:
    resp = client.get("/v1/export?format=xml", headers=patient_headers)
    assert resp.status_code == 422
    assert "format" in resp.json["errors"]
    unknown = client.get("/v1/export?format=json&user_id=someone", headers=patient_headers)
    assert unknown.status_code == 422
    assert "user_id" in unknown.json["errors"]


def test_exports_are_rate_limited_per_user(
    app: Flask,
    client: FlaskClient,
    make_patient: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(app.config, "EXPORT_RATE_LIMIT", 2)
    first, second = make_patient(), make_patient()
    headers = auth_headers(first)
    for _ in range(2):
        assert client.get("/v1/export", headers=headers).status_code == 200
    limited = client.get("/v1/export?format=csv", headers=headers)
    assert limited.status_code == 429
    assert limited.mimetype == "application/problem+json"
    assert 0 < int(limited.headers["Retry-After"]) <= app.config["EXPORT_RATE_WINDOW"]
    # Another user has a counter of their own.
    assert client.get("/v1/export", headers=auth_headers(second)).status_code == 200


def test_export_of_another_user_is_not_possible(
    client: FlaskClient,
    make_patient: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
) -> None:
    ana, ben = make_patient(display_name="Ana"), make_patient(display_name="Ben")
    body: Any = json.loads(client.get("/v1/export", headers=auth_headers(ana)).get_data())
    assert body["profile"]["id"] == str(ana.id)
    assert str(ben.id) not in json.dumps(body)


def _references(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["reference"]] if isinstance(node.get("reference"), str) else []
        return own + [r for v in node.values() for r in _references(v)]
    if isinstance(node, list):
        return [r for v in node for r in _references(v)]
    return []


def test_every_reference_in_the_own_bundle_resolves(
    client: FlaskClient,
    session: Session,
    patient: User,
    patient_headers: dict[str, str],
    make_clinician: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
) -> None:
    """Relative references resolve against the entries' RESTful fullUrls (FHIR R4 Bundle rules):
    the consent's Practitioner and Organizations, the disclosures' recipient, the check-in's
    QuestionnaireResponse; each Practitioner once however many consents name it."""
    clinician = make_clinician(organization="Riverside Clinic")
    for _ in range(2):  # a second consent replaces the first: two Consents, one Practitioner
        sign(session, patient=patient, clinician=clinician, purpose="treatment", days=None)
    reads = client.get(
        f"/v1/clinician/patients/{patient.id}/checkins", headers=auth_headers(clinician)
    )
    assert reads.status_code == 200
    bundle = json.loads(client.get("/v1/export?format=fhir", headers=patient_headers).get_data())
    assert bundle_errors(bundle) == []
    by_url = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    assert len(by_url) == len(bundle["entry"])
    kinds = [r["resourceType"] for r in by_url.values()]
    assert kinds.count("Consent") == 2 and kinds.count("Practitioner") == 1
    assert kinds.count("AuditEvent") == 1
    dangling = []
    for url, resource in by_url.items():
        base = url[: -len(f"{resource['resourceType']}/{resource['id']}")]
        dangling += [ref for ref in _references(resource) if base + ref not in by_url]
    assert dangling == []
    consent = next(r for r in by_url.values() if r["resourceType"] == "Consent")
    assert consent["provision"]["dataPeriod"]["start"]
    assert consent["sourceAttachment"]["url"].endswith("/v1/consent-texts/2026-01")
    urls = {e["url"] for e in consent["extension"]}
    assert any(u.endswith("/consent-signature") for u in urls)
    assert any(u.endswith("/share-weekly-summary") for u in urls)
    assert consent["organization"][0]["display"] == "Test Program"
