"""The Bulk Data IG client (client.py, no project imports) against a LIVE server: gunicorn and
the scheduler as separate processes on a throwaway SQLite database, set up as an operator would
(alembic, the CLI, the REST API). Discovery, a token by signed assertion (RS384 and ES384),
kick-off at patient, group and system level (GET and POST), polling, download; every resource
validated with fhir.resources (R4B models: R4 is not published for pydantic 2, docs/fhir.md) and
every reference resolved within the export; every error path an OperationOutcome."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from fhir.resources.R4B import get_fhir_model_class

from tests.bulk_ig.client import BulkClient, new_key, references

ROOT = Path(__file__).resolve().parents[2]
PORTS = range(9300, 9350)
PASSWORD = "correct horse battery"
pytestmark = pytest.mark.slow
HTTP = requests.Session()  # loopback only; the server's own timeouts bound each answer


def _free_port() -> int:
    for port in PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free port in 9300-9349")


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


@dataclass
class Live:
    root: str  # http://127.0.0.1:port
    admin: dict[str, str]
    clinician: dict[str, str]
    clinician_id: str
    patient: dict[str, str]
    patient_id: str
    other_patient_id: str  # consents to nobody: must never appear in a clinician's export


def _stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _bearer(root: str, email: str) -> dict[str, str]:
    answer = HTTP.post(f"{root}/v1/auth/token", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def _seed(root: str, admin_email: str, clinician_email: str) -> Live:
    admin = _bearer(root, admin_email)
    clinician = _bearer(root, clinician_email)
    me = HTTP.get(f"{root}/v1/me", headers=clinician).json()
    code = HTTP.post(f"{root}/v1/clinician/invite-code/rotate", headers=clinician).json()
    patients = []
    for name in ("Pat Live", "Other Live"):
        email = f"{uuid.uuid4().hex[:8]}@example.test"
        account = {"email": email, "password": PASSWORD, "display_name": name, "timezone": "UTC"}
        assert HTTP.post(f"{root}/v1/auth/register", json=account).status_code == 202
        headers = _bearer(root, email)
        patients.append((headers, HTTP.get(f"{root}/v1/me", headers=headers).json()["id"]))
    (patient, patient_id), (other, other_id) = patients
    found = HTTP.get(
        f"{root}/v1/clinicians/lookup",
        params={"invite_code": code["invite_code"]},
        headers=patient,
    ).json()
    now = datetime.now(UTC)
    consent = {
        "recipient_id": found["id"],
        "categories": ["symptoms", "medications", "counseling"],
        "purpose": "treatment",
        "share_weekly_summary": True,
        "expires_at": None,
        "data_from": (now - timedelta(days=30)).isoformat(),
        "signature": "Pat Live",
        "consent_text_version": "2026-01",
    }
    answer = HTTP.post(f"{root}/v1/consents", json=consent, headers=patient)
    assert answer.status_code == 201, answer.text
    sows = next(
        i
        for i in HTTP.get(f"{root}/v1/instruments", headers=patient).json()["items"]
        if i["code"] == "sows"
    )
    for who in (patient, other):
        checkin = {
            "id": str(uuid.uuid4()),
            "recorded_at": (now - timedelta(days=2)).isoformat(),
            "instrument": "sows",
            "answers": {item["key"]: 1 for item in sows["items"]},
            "symptoms": {"nausea": 3},
            "craving": 4,
            "sleep_hours": 6.5,
        }
        assert HTTP.post(f"{root}/v1/checkins", json=checkin, headers=who).status_code == 201
    regimen = {
        "id": str(uuid.uuid4()),
        "name": "buprenorphine/naloxone",
        "dose": 8,
        "unit": "mg",
        "times": ["08:00"],
        "start_date": (now - timedelta(days=5)).date().isoformat(),
    }
    assert HTTP.post(f"{root}/v1/medications", json=regimen, headers=patient).status_code == 201
    scheduled = (now - timedelta(days=1)).replace(hour=8, minute=0, second=0, microsecond=0)
    dose = {
        "id": str(uuid.uuid4()),
        "status": "taken",
        "scheduled_for": scheduled.isoformat(),
        "taken_at": (scheduled + timedelta(minutes=5)).isoformat(),
    }
    answer = HTTP.post(f"{root}/v1/medications/{regimen['id']}/doses", json=dose, headers=patient)
    assert answer.status_code == 201, answer.text
    session = {
        "id": str(uuid.uuid4()),
        "kind": "group",
        "title": "Group",
        "starts_at": (now - timedelta(days=3)).isoformat(),
        "duration_minutes": 60,
    }
    assert (
        HTTP.post(f"{root}/v1/counseling-sessions", json=session, headers=patient).status_code
        == 201
    )
    marked = HTTP.put(
        f"{root}/v1/counseling-sessions/{session['id']}/attendance",
        json={"status": "attended"},
        headers=patient,
    )
    assert marked.status_code == 200, marked.text
    return Live(root, admin, clinician, me["id"], patient, patient_id, other_id)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("live")
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
        "DATABASE_URL": f"sqlite:///{tmp / 'live.sqlite3'}",
        "WAYMARK_INSTANCE_DIR": str(tmp / "instance"),
        "EXPORT_DIR": str(tmp / "exports"),
        "TMPDIR": str(tmp),
        "LOG_LEVEL": "WARNING",
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "BULK_EXPORT_POLL_INTERVAL": "1",
        "BULK_EXPORT_RETRY_AFTER": "1",
        "EXPORT_RATE_LIMIT": "1000",
        "ARGON2_MEMORY_KIB": "1024",
        "ARGON2_TIME_COST": "1",
    }
    env.pop("REDIS_URL", None)

    def run(*args: str) -> None:
        done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, check=False)  # noqa: S603
        assert done.returncode == 0, done.stderr.decode()[-3000:]

    run(_bin("alembic"), "upgrade", "head")
    admin_email, clinician_email = "admin@example.test", "dr@example.test"
    flask = [_bin("flask"), "--app", "wsgi"]
    run(*flask, "create-admin", "--email", admin_email, "--password", PASSWORD)
    run(
        *flask,
        "create-clinician",
        "--email",
        clinician_email,
        "--display-name",
        "Dr. Live",
        "--organization",
        "Live Clinic",
        "--password",
        PASSWORD,
    )
    processes = [
        subprocess.Popen(  # noqa: S603
            [_bin("gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        ),
        subprocess.Popen(
            [sys.executable, "-m", "jobs"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        ),
    ]
    root = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if HTTP.get(f"{root}/healthz", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            for process in processes:
                if process.poll() is not None:
                    stderr = process.stderr.read().decode() if process.stderr else ""
                    pytest.fail(f"a server process stopped:\n{stderr[-3000:]}")
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.3)
        yield _seed(root, admin_email, clinician_email)
    finally:
        for process in processes:
            _stop(process)
            if process.stderr:
                process.stderr.close()


def _register(live: Live, alg: str, **extra: Any) -> BulkClient:
    key = new_key(alg)
    body = {
        "name": f"EHR {alg}",
        "clinician_id": live.clinician_id,
        "jwks": {"keys": [key.as_dict(private=False)]},
        "scopes": ["system/*.read"],
        **extra,
    }
    answer = HTTP.post(f"{live.root}/v1/admin/system-clients", json=body, headers=live.admin)
    assert answer.status_code == 201, answer.text
    return BulkClient(
        base=f"{live.root}/fhir", client_id=answer.json()["client_id"], key=key, alg=alg
    )


def _is_outcome(answer: requests.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, (answer.status_code, answer.text)
    assert answer.headers["Content-Type"].startswith("application/fhir+json"), answer.headers
    body: dict[str, Any] = answer.json()
    get_fhir_model_class("OperationOutcome").model_validate(body)
    return body


def _validate_and_resolve(resources: list[dict[str, Any]]) -> None:
    """Every resource is valid R4(B); every literal reference resolves within the export."""
    present = {f"{r['resourceType']}/{r['id']}" for r in resources}
    assert len(present) == len(resources), "duplicate resources"
    dangling = []
    for resource in resources:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
        dangling += [ref for ref in references(resource) if ref not in present]
    assert dangling == []


def test_discovery(live: Live) -> None:
    client = BulkClient(base=f"{live.root}/fhir")
    cap = client.capability()
    get_fhir_model_class("CapabilityStatement").model_validate(cap)
    assert cap["fhirVersion"].startswith("4.0")
    rest = cap["rest"][0]
    ops = {o["name"] for o in rest["operation"]}
    assert "export" in ops
    kinds = {r["type"]: r for r in rest["resource"]}
    assert {"export"} <= {o["name"] for o in kinds["Patient"]["operation"]}
    assert {"export"} <= {o["name"] for o in kinds["Group"]["operation"]}
    assert "application/fhir+json" in cap["format"]
    smart = client.smart_configuration()
    assert "client_credentials" in smart["grant_types_supported"]
    assert {"RS384", "ES384"} <= set(smart["token_endpoint_auth_signing_alg_values_supported"])
    assert "private_key_jwt" in smart["token_endpoint_auth_methods_supported"]


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_token_by_signed_assertion(live: Live, alg: str) -> None:
    client = _register(live, alg)
    token = client.authorize()
    assert token["token_type"].lower() == "bearer"
    assert 0 < token["expires_in"] <= 300
    assert token["scope"] == "system/*.read"


def test_token_refusals(live: Live) -> None:
    client = _register(live, "RS384")
    token_url = client.smart_configuration()["token_endpoint"]
    # A jti used twice is a replay.
    assertion = client.assertion(token_url, jti="once")
    assert client.request_token(token_url, assertion).status_code == 200
    replay = client.request_token(token_url, client.assertion(token_url, jti="once"))
    assert replay.status_code == 401 and replay.json()["error"] == "invalid_client"
    # An assertion already expired beyond the allowed skew, or valid for too long.
    late = client.request_token(token_url, client.assertion(token_url, exp_in=-600))
    assert late.status_code == 401
    long = client.request_token(token_url, client.assertion(token_url, exp_in=3600))
    assert long.status_code == 401
    # Signed by a key the client never registered.
    stranger = BulkClient(base=client.base, client_id=client.client_id, key=new_key("RS384"))
    forged = stranger.request_token(token_url, stranger.assertion(token_url))
    assert forged.status_code == 401 and forged.json()["error"] == "invalid_client"
    # A scope beyond what the client was allowed.
    client.scope = "system/*.write"
    assert client.request_token(token_url, client.assertion(token_url)).json()["error"] == (
        "invalid_scope"
    )


def _my_patients(resources: list[dict[str, Any]]) -> set[str]:
    return {r["id"] for r in resources if r["resourceType"] == "Patient"}


@pytest.mark.parametrize(
    ("path", "post"),
    [("Patient/$export", False), ("Group/{group}/$export", True), ("$export", False)],
)
def test_export_levels_as_a_system_client(live: Live, path: str, post: bool) -> None:
    client = _register(live, "ES384")
    client.authorize()
    manifest, resources = client.export(path.format(group=live.clinician_id), post=post)
    assert manifest["requiresAccessToken"] is True
    assert manifest["error"] == []
    types = {r["resourceType"] for r in resources}
    assert {
        "Patient",
        "QuestionnaireResponse",
        "Observation",
        "MedicationStatement",
        "MedicationAdministration",
        "Appointment",
        "Encounter",
        "Consent",
        "Practitioner",
        "Organization",
    } <= types
    # Only the consenting patient: the client reaches what its clinician's consents allow.
    assert _my_patients(resources) == {live.patient_id}
    _validate_and_resolve(resources)
    # The disclosure carries the consent's scope: in the manifest, and in every resource.
    scopes = manifest["extension"]["consentScopes"]
    assert [s["recipient"]["id"] for s in scopes] == [live.clinician_id]
    assert manifest["extension"]["redisclosureNotice"].startswith("This record")
    consent = next(r for r in resources if r["resourceType"] == "Consent")
    for resource in resources:
        if resource["resourceType"] in ("Consent", "Practitioner", "Organization"):
            continue
        pointers = [e["valueReference"]["reference"] for e in resource["meta"]["extension"]]
        assert pointers == [f"Consent/{consent['id']}"]
    # The patient's accounting of disclosures names the purpose and the receiving system.
    ledger = HTTP.get(f"{live.root}/v1/disclosures", headers=live.patient).json()["items"]
    exports = [d for d in ledger if d["kind"] == "export" and d["client_name"] == "EHR ES384"]
    assert exports and all(d["purpose"] == "treatment" for d in exports)


def test_group_is_the_clinicians_consented_roster(live: Live) -> None:
    client = _register(live, "RS384")
    client.authorize()
    answer = client.http.get(f"{client.base}/Group/{live.clinician_id}", headers=client.headers())
    assert answer.status_code == 200
    group = answer.json()
    get_fhir_model_class("Group").model_validate(group)
    assert [m["entity"]["reference"] for m in group["member"]] == [f"Patient/{live.patient_id}"]
    _is_outcome(
        client.http.get(f"{client.base}/Group/{uuid.uuid4()}", headers=client.headers()), 404
    )


def test_admin_system_export_covers_every_patient(live: Live) -> None:
    client = BulkClient(base=f"{live.root}/fhir", token=live.admin["Authorization"][7:])
    manifest, resources = client.export("$export", {"_type": "Patient,Observation"})
    assert {live.patient_id, live.other_patient_id} <= _my_patients(resources)
    assert "extension" not in manifest  # the program's own use: no disclosure
    _validate_and_resolve([r for r in resources if r["resourceType"] == "Patient"])


def test_questionnaires_and_code_systems_resolve(live: Live) -> None:
    client = _register(live, "RS384")
    client.authorize()
    _manifest, resources = client.export("Patient/$export")
    canonicals = {
        r["questionnaire"].split("|")[0]
        for r in resources
        if r["resourceType"] == "QuestionnaireResponse"
    }
    systems = {
        coding["system"]
        for r in resources
        if r["resourceType"] == "Observation"
        for coding in r["code"]["coding"]
    }
    assert canonicals and systems
    for url in canonicals | {s for s in systems if "/CodeSystem/" in s}:
        rtype, rid = url.rsplit("/", 2)[-2:]
        # A fixed canonical base, whatever host serves it; each resolves on this server.
        assert not url.startswith(live.root)
        answer = HTTP.get(f"{live.root}/fhir/{rtype}/{rid}")
        assert answer.status_code == 200, url
        resource = answer.json()
        assert resource["url"] == url
        get_fhir_model_class(rtype).model_validate(resource)


def test_every_error_is_an_operation_outcome(live: Live) -> None:
    client = _register(live, "RS384")
    client.authorize()
    base = client.base
    # No token, a bad token.
    _is_outcome(HTTP.get(f"{base}/Patient/$export", headers={"Prefer": "respond-async"}), 401)
    _is_outcome(
        HTTP.get(
            f"{base}/Patient/$export",
            headers={"Prefer": "respond-async", "Authorization": "Bearer nope"},
        ),
        401,
    )
    # No Prefer: respond-async.
    _is_outcome(client.kickoff("Patient/$export", prefer="handling=strict"), 400)
    # Unsupported parameters (strict by default), unknown types, a bad _since.
    for params in (
        {"_typeFilter": "Observation?code=x"},
        {"_elements": "id"},
        {"patient": "Patient/1"},
        {"_bogus": "1"},
    ):
        body = _is_outcome(client.kickoff("Patient/$export", params), 400)
        assert body["issue"][0]["code"] == "not-supported"
    _is_outcome(client.kickoff("Patient/$export", {"_type": "Nope"}), 422)
    _is_outcome(client.kickoff("Patient/$export", {"_since": "yesterday"}), 422)
    _is_outcome(client.kickoff("Patient/$export", {"_outputFormat": "text/csv"}), 422)
    # A POST whose body is not a Parameters resource.
    answer = client.http.post(
        f"{base}/Patient/$export",
        data=json.dumps({"resourceType": "Patient"}),
        headers={**client.headers(Prefer="respond-async"), "Content-Type": "application/fhir+json"},
    )
    _is_outcome(answer, 400)
    # Unknown paths, unknown and cancelled jobs, files of no job.
    _is_outcome(client.http.get(f"{base}/Nothing", headers=client.headers()), 404)
    _is_outcome(client.http.get(f"{base}/bulkstatus/{uuid.uuid4()}", headers=client.headers()), 404)
    kicked = client.kickoff("Patient/$export")
    status_url = kicked.headers["Content-Location"]
    cancelled = client.http.delete(status_url, headers=client.headers())
    assert cancelled.status_code == 202
    _is_outcome(client.http.get(status_url, headers=client.headers()), 404)
    _is_outcome(client.http.delete(status_url, headers=client.headers()), 404)
    _is_outcome(
        client.http.get(
            f"{base}/bulkfiles/{uuid.uuid4()}/Patient.ndjson", headers=client.headers()
        ),
        404,
    )
    # A system client may not reach the person-only API at all.
    assert (
        HTTP.get(f"{live.root}/v1/clinician/patients", headers=client.headers()).status_code == 401
    )
    # A person's clinician token cannot ask for the system level.
    person = BulkClient(base=base, token=live.clinician["Authorization"][7:])
    _is_outcome(person.kickoff("$export"), 403)
    # Unknown Questionnaire / CodeSystem.
    _is_outcome(HTTP.get(f"{base}/Questionnaire/nope"), 404)
    _is_outcome(HTTP.get(f"{base}/CodeSystem/nope"), 404)


def test_a_lenient_kickoff_lists_what_it_ignored(live: Live) -> None:
    client = _register(live, "RS384")
    client.authorize()
    answer = client.kickoff(
        "Patient/$export",
        {"_type": "Patient", "_typeFilter": "Patient?active=true", "_elements": "id"},
        prefer="respond-async, handling=lenient",
    )
    assert answer.status_code == 202, answer.text
    manifest = client.poll(answer.headers["Content-Location"])
    outcomes = client.download(manifest, "error")
    assert [o["resourceType"] for o in outcomes] == ["OperationOutcome"]
    ignored = {i["expression"][0] for o in outcomes for i in o["issue"]}
    assert ignored == {"_typeFilter", "_elements"}
    for outcome in outcomes:
        get_fhir_model_class("OperationOutcome").model_validate(outcome)
    assert {r["resourceType"] for r in client.download(manifest)} == {"Patient"}
