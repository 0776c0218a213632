"""The Bulk Data IG client (client.py) against a LIVE server: gunicorn and the scheduler as
separate processes on a throwaway SQLite database, set up as an operator would (alembic, the CLI,
the REST API). Discovery, a token by signed assertion (RS384 and ES384), kick-off at patient,
group and system level (GET and POST), polling, download; every resource validated with the FHIR
R4 models (fhir.resources 6.4) and every reference and canonical resolved; every error path an
OperationOutcome.

The client runs as a subprocess in its own uv project (tests/bulk_ig/pyproject.toml and uv.lock:
fhir.resources 6.4 needs pydantic 1, which the service's environment cannot hold), so it can
import nothing of the project; this file only starts the server, registers clients as an admin
would, and reads what the client printed."""

from __future__ import annotations

import json
import os
import signal
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
from joserfc.jwk import ECKey, RSAKey

from tests.livesite import bound_socket

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
UV = ROOT / ".tools" / "bin" / "uv"
# WAYMARK_LIVE_PORTS=first-last moves the server onto a range of one's own (shared machines).
_first, _, _last = os.environ.get("WAYMARK_LIVE_PORTS", "9300-9349").partition("-")
PORTS = range(int(_first), int(_last) + 1)
PASSWORD = "correct horse battery"
pytestmark = pytest.mark.slow
HTTP = requests.Session()  # loopback only; the server's own timeouts bound each answer


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
def live(tmp_path_factory: pytest.TempPathFactory, ig_client_ready: None) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("live")
    listener = bound_socket(PORTS)
    if listener is None:
        pytest.skip(f"no free port in {PORTS}")
    port = listener.getsockname()[1]
    env = {
        **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
        "DATABASE_URL": f"sqlite:///{tmp / 'live.sqlite3'}",
        "WAYMARK_INSTANCE_DIR": str(tmp / "instance"),
        "EXPORT_DIR": str(tmp / "exports"),
        "TMPDIR": str(tmp),
        "LOG_LEVEL": "WARNING",
        "BIND": f"fd://{listener.fileno()}",
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
            pass_fds=(listener.fileno(),),
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
            except (requests.ConnectionError, requests.Timeout):  # busy machine: try again
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
        listener.close()


def _uv() -> str:
    """The repo's pinned uv (make installs it), else one on PATH."""
    return str(UV) if UV.exists() else "uv"


def _client_env() -> dict[str, str]:
    # The client's own project environment, not the one pytest runs in.
    drop = {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "PYTHONPATH"}
    return {k: v for k, v in os.environ.items() if k not in drop}


@pytest.fixture(scope="module")
def ig_client_ready() -> None:
    """Sync the client's environment once (from uv's cache after the first time)."""
    done = subprocess.run(  # noqa: S603
        [_uv(), "sync", "--project", str(HERE), "--frozen", "--python", sys._base_executable],
        env=_client_env(),
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]


@dataclass
class Ig:
    """How a system client (or a person's token) calls the IG client."""

    base: str
    client_id: str = ""
    key_file: Path | None = None
    token: str | None = None

    def run(self, *args: str, stdin: Any = None, ok: bool = True) -> Any:
        auth: list[str] = []
        if self.key_file is not None:
            auth = ["--client-id", self.client_id, "--key", str(self.key_file)]
        elif self.token is not None:
            auth = ["--token", self.token]
        done = subprocess.run(  # noqa: S603
            [
                _uv(),
                "run",
                "--project",
                str(HERE),
                "--frozen",
                "--no-sync",
                "python",
                str(HERE / "client.py"),
                "--base",
                self.base,
                *auth,
                *args,
            ],
            input=None if stdin is None else json.dumps(stdin).encode(),
            env=_client_env(),
            capture_output=True,
            check=False,
            timeout=120,
        )
        if not ok:
            return done
        assert done.returncode == 0, done.stderr.decode()[-3000:]
        return json.loads(done.stdout)

    def export(self, path: str, *params: str, post: bool = False, within: bool = True) -> Any:
        args = ["export", path, *(f"--param={p}" for p in params)]
        return self.run(
            *args, *(["--post"] if post else []), *(["--within-export"] if within else [])
        )

    def requests(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.run("requests", stdin=items)  # type: ignore[no-any-return]

    def validate(self, resources: list[dict[str, Any]]) -> list[str | None]:
        ndjson = "\n".join(json.dumps(r) for r in resources)
        done = subprocess.run(  # noqa: S603
            [
                _uv(),
                "run",
                "--project",
                str(HERE),
                "--frozen",
                "--no-sync",
                "python",
                str(HERE / "client.py"),
                "--base",
                self.base,
                "validate",
            ],
            input=ndjson.encode(),
            env=_client_env(),
            capture_output=True,
            check=False,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr.decode()[-3000:]
        return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_the_client_validates_with_the_r4_models(ig_client_ready: None) -> None:
    """The client's validation can fail, and is R4's: a resource type R4B added is unknown to it,
    one R4B removed is known to it, and a missing required element is refused."""
    answers = Ig("http://127.0.0.1:1/fhir").validate(
        [
            {"resourceType": "Patient", "id": "p", "name": [{"text": "A"}]},
            {"resourceType": "Observation", "id": "o", "status": "final"},  # no code
            {"resourceType": "SubscriptionTopic", "id": "s", "url": "http://x", "status": "draft"},
            # R4's MedicinalProduct became MedicinalProductDefinition in R4B.
            {"resourceType": "MedicinalProduct", "id": "m", "name": [{"productName": "x"}]},
        ]
    )
    assert answers[0] is None
    assert answers[1] is not None and "code" in answers[1]
    assert answers[2] is not None and "SubscriptionTopic" in answers[2]
    assert answers[3] is None  # valid R4, unknown to R4B


def _new_key(alg: str) -> RSAKey | ECKey:
    if alg == "RS384":
        return RSAKey.generate_key(2048, parameters={"kid": uuid.uuid4().hex, "alg": alg})
    return ECKey.generate_key("P-384", parameters={"kid": uuid.uuid4().hex, "alg": alg})


def _register(live: Live, alg: str, tmp_path: Path, **extra: Any) -> Ig:
    """An admin registers a system client with a fresh public key; the private one goes to a
    file only the IG client reads."""
    key = _new_key(alg)
    body = {
        "name": f"EHR {alg}",
        "clinician_id": live.clinician_id,
        "jwks": {"keys": [key.as_dict(private=False)]},
        "scopes": ["system/*.read"],
        **extra,
    }
    answer = HTTP.post(f"{live.root}/v1/admin/system-clients", json=body, headers=live.admin)
    assert answer.status_code == 201, answer.text
    key_file = tmp_path / f"{uuid.uuid4().hex}.jwk"
    key_file.write_text(json.dumps(key.as_dict(private=True)))
    key_file.chmod(0o600)
    return Ig(f"{live.root}/fhir", answer.json()["client_id"], key_file)


def test_discovery(live: Live) -> None:
    found = Ig(f"{live.root}/fhir").run("discover")  # the client validates it as R4
    cap, smart = found["capability"], found["smart"]
    assert cap["fhirVersion"].startswith("4.0")
    rest = cap["rest"][0]
    ops = {o["name"] for o in rest["operation"]}
    assert "export" in ops
    kinds = {r["type"]: r for r in rest["resource"]}
    assert {"export"} <= {o["name"] for o in kinds["Patient"]["operation"]}
    assert {"export"} <= {o["name"] for o in kinds["Group"]["operation"]}
    assert "application/fhir+json" in cap["format"]
    assert "client_credentials" in smart["grant_types_supported"]
    assert {"RS384", "ES384"} <= set(smart["token_endpoint_auth_signing_alg_values_supported"])
    assert "private_key_jwt" in smart["token_endpoint_auth_methods_supported"]


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_token_by_signed_assertion(live: Live, alg: str, tmp_path: Path) -> None:
    answer = _register(live, alg, tmp_path).run("token")
    assert answer["status"] == 200, answer
    token = answer["body"]
    assert token["token_type"].lower() == "bearer"
    assert 0 < token["expires_in"] <= 300
    assert token["scope"] == "system/*.read"


def test_token_refusals(live: Live, tmp_path: Path) -> None:
    client = _register(live, "RS384", tmp_path)
    # A jti used twice is a replay.
    assert client.run("token", "--jti", "once")["status"] == 200
    replay = client.run("token", "--jti", "once")
    assert replay["status"] == 401 and replay["body"]["error"] == "invalid_client"
    # An assertion already expired beyond the allowed skew, or valid for too long.
    assert client.run("token", "--exp-in", "-600")["status"] == 401
    assert client.run("token", "--exp-in", "3600")["status"] == 401
    # Signed by a key the client never registered.
    forged = client.run("token", "--foreign-key")
    assert forged["status"] == 401 and forged["body"]["error"] == "invalid_client"
    # A scope beyond what the client was allowed.
    wider = client.run("--scope", "system/*.write", "token")
    assert wider["body"]["error"] == "invalid_scope"


def _my_patients(resources: list[dict[str, Any]]) -> set[str]:
    return {r["id"] for r in resources if r["resourceType"] == "Patient"}


# Our published definitions: the export carries them, but they are no one's record.
SUPPORTING = ("Questionnaire", "CodeSystem")


@pytest.mark.parametrize(
    ("path", "post"),
    [("Patient/$export", False), ("Group/{group}/$export", True), ("$export", False)],
)
def test_export_levels_as_a_system_client(
    live: Live, path: str, post: bool, tmp_path: Path
) -> None:
    client = _register(live, "ES384", tmp_path)
    # The client validates every resource (R4) and resolves every reference and canonical
    # within the export: it fails otherwise.
    got = client.export(path.format(group=live.clinician_id), post=post)
    manifest, resources = got["manifest"], got["resources"]
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
        "Questionnaire",
        "CodeSystem",
    } <= types
    assert got["canonicals_from_server"] == []
    # Only the consenting patient: the client reaches what its clinician's consents allow.
    assert _my_patients(resources) == {live.patient_id}
    # The disclosure carries the consent's scope: in the manifest, and in every resource.
    scopes = manifest["extension"]["consentScopes"]
    assert [s["recipient"]["id"] for s in scopes] == [live.clinician_id]
    assert manifest["extension"]["redisclosureNotice"].startswith("This record")
    consent = next(r for r in resources if r["resourceType"] == "Consent")
    for resource in resources:
        if resource["resourceType"] in ("Consent", "Practitioner", "Organization", *SUPPORTING):
            continue
        pointers = [e["valueReference"]["reference"] for e in resource["meta"]["extension"]]
        assert pointers == [f"Consent/{consent['id']}"]
    # The patient's accounting of disclosures names the purpose and the receiving system.
    ledger = HTTP.get(f"{live.root}/v1/disclosures", headers=live.patient).json()["items"]
    exports = [d for d in ledger if d["kind"] == "export" and d["client_name"] == "EHR ES384"]
    assert exports and all(d["purpose"] == "treatment" for d in exports)


def test_group_is_the_clinicians_consented_roster(live: Live, tmp_path: Path) -> None:
    client = _register(live, "RS384", tmp_path)
    group, unknown = client.requests(
        [
            {"path": f"Group/{live.clinician_id}", "resource": True},  # valid R4
            {"path": f"Group/{uuid.uuid4()}", "outcome": True},
        ]
    )
    assert group["status"] == 200
    assert [m["entity"]["reference"] for m in group["body"]["member"]] == [
        f"Patient/{live.patient_id}"
    ]
    assert unknown["status"] == 404


def test_admin_system_export_covers_every_patient(live: Live) -> None:
    admin = Ig(f"{live.root}/fhir", token=live.admin["Authorization"][7:])
    got = admin.export("$export", "_type=Patient,Observation", within=False)
    assert {live.patient_id, live.other_patient_id} <= _my_patients(got["resources"])
    assert "extension" not in got["manifest"]  # the program's own use: no disclosure
    # `_type` left the CodeSystems out; the client read each one the Observations name from
    # the server (and would have failed had one not resolved).
    assert {r["resourceType"] for r in got["resources"]} == {"Patient", "Observation"}
    assert got["canonicals_from_server"]


def test_canonicals_resolve_on_the_server_when_type_leaves_them_out(
    live: Live, tmp_path: Path
) -> None:
    client = _register(live, "RS384", tmp_path)
    got = client.export("Patient/$export", "_type=QuestionnaireResponse,Observation", within=False)
    assert {r["resourceType"] for r in got["resources"]} == {"QuestionnaireResponse", "Observation"}
    read = set(got["canonicals_from_server"])
    # A fixed canonical base, whatever host serves it; each resolved on this server.
    assert read and not any(url.startswith(live.root) for url in read)
    assert any("/Questionnaire/" in url for url in read)
    # Told to resolve within the export only, the client fails: they are not in it.
    done = client.run(
        "export",
        "Patient/$export",
        "--param=_type=QuestionnaireResponse",
        "--within-export",
        ok=False,
    )
    assert done.returncode == 1 and b"does not resolve" in done.stderr


def test_every_error_is_an_operation_outcome(live: Live, tmp_path: Path) -> None:
    client = _register(live, "RS384", tmp_path)
    asynchronous = {"Prefer": "respond-async"}
    fhir_body = {**asynchronous, "Content-Type": "application/fhir+json"}
    strict_params = (
        {"_typeFilter": "Observation?code=x"},
        {"_elements": "id"},
        {"patient": "Patient/1"},
        {"_bogus": "1"},
    )
    # The client checks each `outcome` answer is an R4 OperationOutcome as fhir+json.
    answers = client.requests(
        [
            # No token, a bad token.
            {"path": "Patient/$export", "headers": asynchronous, "auth": False, "outcome": True},
            {
                "path": "Patient/$export",
                "headers": {**asynchronous, "Authorization": "Bearer nope"},
                "auth": False,
                "outcome": True,
            },
            # No Prefer: respond-async.
            {"path": "Patient/$export", "headers": {"Prefer": "handling=strict"}, "outcome": True},
            # Unsupported parameters (strict by default), unknown types, a bad _since.
            *(
                {"path": "Patient/$export", "headers": asynchronous, "params": p, "outcome": True}
                for p in strict_params
            ),
            *(
                {"path": "Patient/$export", "headers": asynchronous, "params": p, "outcome": True}
                for p in ({"_type": "Nope"}, {"_since": "yesterday"}, {"_outputFormat": "text/csv"})
            ),
            # A POST whose body is not a Parameters resource.
            {
                "method": "POST",
                "path": "Patient/$export",
                "headers": fhir_body,
                "data": json.dumps({"resourceType": "Patient"}),
                "outcome": True,
            },
            # Unknown paths, unknown jobs, files of no job, unknown definitions.
            {"path": "Nothing", "outcome": True},
            {"path": f"bulkstatus/{uuid.uuid4()}", "outcome": True},
            {"path": f"bulkfiles/{uuid.uuid4()}/Patient.ndjson", "outcome": True},
            {"path": "Questionnaire/nope", "auth": False, "outcome": True},
            {"path": "CodeSystem/nope", "auth": False, "outcome": True},
            # A system client may not reach the person-only API at all (not /fhir: problem+json).
            {"path": f"{live.root}/v1/clinician/patients"},
        ]
    )
    statuses = [a["status"] for a in answers]
    assert statuses == [
        401,
        401,
        400,
        400,
        400,
        400,
        400,
        422,
        422,
        422,
        400,
        404,
        404,
        404,
        404,
        404,
        401,
    ]
    assert all(a["body"]["issue"][0]["code"] == "not-supported" for a in answers[3:7])
    # A cancelled job, then its status and a second cancel.
    (kicked,) = client.requests([{"path": "Patient/$export", "headers": asynchronous}])
    status_url = kicked["headers"]["Content-Location"]
    cancelled, gone, again = client.requests(
        [
            {"method": "DELETE", "path": status_url},
            {"path": status_url, "outcome": True},
            {"method": "DELETE", "path": status_url, "outcome": True},
        ]
    )
    assert (cancelled["status"], gone["status"], again["status"]) == (202, 404, 404)
    # A person's clinician token cannot ask for the system level.
    person = Ig(client.base, token=live.clinician["Authorization"][7:])
    (system,) = person.requests([{"path": "$export", "headers": asynchronous, "outcome": True}])
    assert system["status"] == 403


def test_a_lenient_kickoff_lists_what_it_ignored(live: Live, tmp_path: Path) -> None:
    client = _register(live, "RS384", tmp_path)
    got = client.run(
        "export",
        "Patient/$export",
        "--param=_type=Patient",
        "--param=_typeFilter=Patient?active=true",
        "--param=_elements=id",
        "--prefer=respond-async, handling=lenient",
    )
    outcomes = got["errors"]  # validated as R4 by the client
    assert [o["resourceType"] for o in outcomes] == ["OperationOutcome"]
    ignored = {i["expression"][0] for o in outcomes for i in o["issue"]}
    assert ignored == {"_typeFilter", "_elements"}
    assert {r["resourceType"] for r in got["resources"]} == {"Patient"}
