"""The authorization matrix: every route of the OpenAPI document against every kind of caller.

Routes are read from the served document at collection time, so a route added by any feature is
walked automatically; a route this file cannot classify (FAMILIES) or whose path parameter it
cannot fill (PARAMS) fails until someone decides who may call it. Each caller's request runs in a
savepoint that is rolled back, so one caller's writes never change what the next one sees. Every
body is searched for canary values seeded in the data of people the caller has no right to see.
"""

from __future__ import annotations

import io
import re
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from flask import Flask, g, has_app_context
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from api import create_app
from api.alerts import services as alert_services
from api.consent import services as consent_services
from api.instruments.definitions import INSTRUMENTS
from tests.conftest import TestConfig as MatrixConfig
from tests.consenting import sign

ACTORS = (
    "owner",
    "other_patient",
    "clinician_full",  # consent in force covering every category
    "clinician_partial",  # consent in force covering symptoms only (category in and out)
    "clinician_expired",
    "clinician_revoked",
    "clinician_none",
    "admin",
    "anonymous",
)
CLINICIANS = ACTORS[2:7]
OK = "ok"  # answered (2xx), or refused for the body's content (409/422): never an access refusal
OK_STATUSES = {200, 201, 202, 204, 409, 422}


def _everyone(expected: Any) -> dict[str, Any]:
    return dict.fromkeys(ACTORS, expected)


PUBLIC = _everyone(OK)
SIGNED_IN = {**_everyone(OK), "anonymous": 401}
PATIENT_OWN = {
    **_everyone(403),
    "owner": OK,
    "other_patient": OK,  # their own (empty) collection
    "anonymous": 401,
}
PATIENT_OWN_ITEM = {**PATIENT_OWN, "other_patient": 404}
# Any signed-in user's own items (push devices, inbox): someone else's id is not found.
SIGNED_IN_ITEM = {**_everyone(404), "owner": OK, "anonymous": 401}
CLINICIAN_SELF = {**_everyone(403), **dict.fromkeys(CLINICIANS, OK), "anonymous": 401}
ADMIN = {**_everyone(403), "admin": OK, "anonymous": 401}
# FHIR Bulk Data. The kick-off is for clinicians and admins; the matrix sends no
# `Prefer: respond-async`, so a permitted caller is answered 400 (after the role check).
BULK_KICKOFF = {
    **_everyone(403),
    **dict.fromkeys(CLINICIANS, 400),
    "admin": 400,
    "anonymous": 401,
}
# A bulk export job (and its files) belongs to whoever started it (clinician_full here):
# any other clinician or admin gets 404, patients 403. The seeded job has finished (its files
# hold the owner's consented data, searched for canaries like any body).
BULK_JOB = {
    **_everyone(403),
    **dict.fromkeys(CLINICIANS, 404),
    "clinician_full": OK,
    "admin": 404,
    "anonymous": 401,
}
BULK_FILE = BULK_JOB
# Group/{id}/$export is a clinician's own roster (the Group's id is theirs): clinicians only.
GROUP_KICKOFF = {**_everyone(403), **dict.fromkeys(CLINICIANS, 400), "anonymous": 401}
# Reading the Group: only the clinician whose roster it is (clinician_full's id is filled in).
GROUP_READ = {
    **_everyone(403),
    **dict.fromkeys(CLINICIANS, 404),
    "clinician_full": OK,
    "anonymous": 401,
}


def clinician_patient(category: str) -> dict[str, Any]:
    """A clinician route on the owner's data in `category` (the partial consent has symptoms)."""
    return {
        **_everyone(403),
        "_category": category,
        "clinician_full": OK,
        "clinician_partial": OK if category == "symptoms" else 403,
        "clinician_expired": 404,
        "clinician_revoked": 404,
        "clinician_none": 404,
        "anonymous": 401,
    }


# (methods, path pattern, expectations). The first match wins. Patient-owned features of the
# contract are classified up front; anything else must be classified when it is added.
FAMILIES: list[tuple[set[str], str, dict[str, Any]]] = [
    ({"GET"}, r"/healthz|/readyz", PUBLIC),
    # What a consent said is public: a recipient must be able to read the text that was signed.
    ({"GET"}, r"/v1/consent-texts(/\{version\})?", PUBLIC),
    ({"GET"}, r"/v1/crisis-resources", PUBLIC),
    ({"POST"}, r"/v1/auth/(register|token|refresh|logout)", PUBLIC),
    # Password reset and email verification: for callers who are not signed in (the resend also
    # takes a bearer token; without one it needs `email`: 422 for the matrix's empty body).
    ({"POST"}, r"/v1/auth/(password-reset(/confirm)?|verify-email(/resend)?)", PUBLIC),
    ({"GET", "PATCH", "DELETE"}, r"/v1/me", SIGNED_IN),
    ({"GET"}, r"/v1/instruments", SIGNED_IN),
    ({"POST"}, r"/v1/me/password", SIGNED_IN),
    ({"GET", "POST"}, r"/v1/(devices|inbox)", SIGNED_IN),
    ({"DELETE"}, r"/v1/devices/\{device_id\}", SIGNED_IN_ITEM),
    ({"POST"}, r"/v1/inbox/\{notification_id\}/read", SIGNED_IN_ITEM),
    ({"GET", "POST"}, r"/v1/admin/.*", ADMIN),
    ({"POST"}, r"/v1/clinician/invite-code/rotate", CLINICIAN_SELF),
    ({"GET"}, r"/v1/clinician/(patients|alerts|summaries)", CLINICIAN_SELF),
    # A summary answers any clinician with a consent in force; what it does not cover is withheld
    # in the body (the canaries check it), not refused.
    (
        {"GET"},
        r"/v1/clinician/patients/\{patient_id\}/summary(\.html|\.pdf)?",
        clinician_patient("symptoms"),
    ),
    (
        {"GET"},
        r"/v1/clinician/summaries/\{summary_id\}(\.html|\.pdf)?",
        {**clinician_patient("symptoms"), "clinician_partial": 404},  # delivered to full only
    ),
    ({"POST"}, r"/v1/clinician/alerts/\{alert_id\}/acknowledge", clinician_patient("symptoms")),
    ({"GET"}, r"/v1/clinician/patients/\{patient_id\}/checkins", clinician_patient("symptoms")),
    ({"GET", "POST"}, r"/v1/clinician/patients/\{patient_id\}/cows", clinician_patient("symptoms")),
    ({"GET"}, r"/v1/clinician/patients/\{patient_id\}/doses", clinician_patient("medications")),
    (
        {"GET"},
        r"/v1/clinician/patients/\{patient_id\}/counseling-sessions",
        clinician_patient("counseling"),
    ),
    ({"GET"}, r"/v1/export(\.zip)?", SIGNED_IN),
    ({"GET", "POST"}, r"/fhir/(Patient/)?\$export", BULK_KICKOFF),
    ({"GET", "POST"}, r"/fhir/Group/\{group_id\}/\$export", GROUP_KICKOFF),
    ({"GET"}, r"/fhir/Group/\{group_id\}", GROUP_READ),
    # Terminology and the CapabilityStatement hold no patient data.
    ({"GET"}, r"/fhir/(metadata|CodeSystem/\{cs_id\}|Questionnaire/\{q_id\})", PUBLIC),
    ({"GET", "DELETE"}, r"/fhir/bulkstatus/\{job_id\}", BULK_JOB),
    ({"GET"}, r"/fhir/bulkfiles/\{job_id\}/\{rtype\}\.ndjson", BULK_FILE),
    (
        {"GET", "POST", "PUT", "PATCH", "DELETE"},
        r"/v1/(checkins|medications|doses|adherence|counseling-sessions|counseling|reminders"
        r"|sync|agenda|consents|disclosures|clinicians/lookup|cows-assessments)(/.*)?",
        PATIENT_OWN,
    ),
]


def classify(method: str, path: str) -> dict[str, Any]:
    for methods, pattern, expected in FAMILIES:
        if method in methods and re.fullmatch(pattern, path):
            if expected is PATIENT_OWN and "{" in path:
                return PATIENT_OWN_ITEM
            return expected
    pytest.fail(
        f"{method} {path} is not in the authorization matrix: add it to FAMILIES in "
        "tests/test_authorization_matrix.py with who may call it."
    )


def _operations() -> list[tuple[str, str]]:
    app = create_app(MatrixConfig("sqlite://"))
    spec = app.test_client().get("/openapi.json").json
    verbs = ("get", "post", "put", "patch", "delete")
    return [(m.upper(), path) for path, item in spec["paths"].items() for m in item if m in verbs]


OPERATIONS = _operations()


@dataclass
class World:
    users: dict[str, Any]
    headers: dict[str, dict[str, str]]
    params: dict[str, str]
    # Canary values by whose data they are and which category (None: account fields).
    canaries: dict[str, set[str]] = field(default_factory=dict)

    def forbidden_for(self, actor: str) -> set[str]:
        owner_all = set().union(*(v for k, v in self.canaries.items() if k.startswith("owner")))
        other_all = self.canaries["other"]
        if actor == "owner":
            return other_all
        if actor == "other_patient":
            return owner_all
        if actor == "clinician_full":
            return other_all | self.canaries["owner:private"] | self.canaries["owner:outside"]
        if actor == "clinician_partial":
            hidden = ("owner:private", "owner:medications", "owner:counseling", "owner:outside")
            return other_all | set().union(*(self.canaries[k] for k in hidden))
        if actor == "admin":  # the audit log names patients by id, nothing more
            return (owner_all - self.canaries["owner:id"]) | (other_all - {str(self.other_id)})
        return owner_all | other_all

    @property
    def other_id(self) -> uuid.UUID:
        return self.users["other_patient"].id


def _canary(label: str) -> str:
    return f"Canary{label}{uuid.uuid4().hex[:8]}"


@pytest.fixture
def world(
    app: Flask,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    session: Session,
    make_patient: Callable[..., Any],
    make_clinician: Callable[..., Any],
    make_admin: Callable[..., Any],
    auth_headers: Callable[[Any], dict[str, str]],
) -> World:
    now = datetime.now(UTC)
    owner_name, owner_email = _canary("OwnerName"), _canary("owner").lower() + "@example.test"
    other_name, other_email = _canary("OtherName"), _canary("other").lower() + "@example.test"
    owner = make_patient(display_name=owner_name, email=owner_email)
    other = make_patient(display_name=other_name, email=other_email)
    users: dict[str, Any] = {"owner": owner, "other_patient": other, "admin": make_admin()}
    for name in CLINICIANS:
        users[name] = make_clinician()
    signature = _canary("Signature")
    all_categories = ["symptoms", "medications", "counseling"]
    full = sign(
        session,
        patient=owner,
        clinician=users["clinician_full"],
        categories=all_categories,
        now=now - timedelta(days=2),
        signature=signature,
        data_from=now - timedelta(days=10),
    )
    sign(
        session,
        patient=owner,
        clinician=users["clinician_partial"],
        categories=["symptoms"],
        now=now - timedelta(days=2),
        signature=signature,
        data_from=now - timedelta(days=10),
    )
    sign(
        session,
        patient=owner,
        clinician=users["clinician_expired"],
        categories=all_categories,
        now=now - timedelta(days=40),
        days=30,
        signature=signature,
    )
    revoked = sign(
        session,
        patient=owner,
        clinician=users["clinician_revoked"],
        categories=all_categories,
        now=now - timedelta(days=2),
        signature=signature,
        data_from=now - timedelta(days=10),
    )
    consent_services.revoke_consent(
        session, patient_id=owner.id, consent_id=revoked.id, now=now - timedelta(days=1)
    )
    alert, _ = alert_services.raise_alert(
        session,
        patient_id=owner.id,
        kind="craving_high",
        category="symptoms",
        episode_key="matrix",
        now=now - timedelta(hours=1),
    )
    session.commit()
    world = World(
        users=users,
        headers={name: auth_headers(user) for name, user in users.items()},
        params={
            "patient_id": str(owner.id),
            "consent_id": str(full.id),
            "alert_id": str(alert.id),
            "version": "2026-01",
            "group_id": str(users["clinician_full"].id),
            "cs_id": "instruments",
            "q_id": "sows",
            "user_id": str(users["clinician_none"].id),  # a clinician account (admin pages)
            "name": "craving",  # a summary chart the owner's check-ins draw
        },
        canaries={
            "owner:account": {owner_name},
            "owner:id": {str(owner.id)},
            "owner:private": {owner_email, signature},
            "owner:symptoms": set(),
            "owner:medications": set(),
            "owner:counseling": set(),
            # Data from before every consent's window (and alerts about it): no clinician's.
            "owner:outside": set(),
            "other": {other_name, other_email, str(other.id)},
        },
    )
    world.headers["anonymous"] = {}
    _seed_features(session, world, now=now)
    _seed_alerts(session, world, now=now)
    monkeypatch.setitem(app.config, "EXPORT_DIR", str(tmp_path / "exports"))
    _seed_bulk_export(app, session, world, now=now)
    return world


def _seed_alerts(session: Session, world: World, *, now: datetime) -> None:
    """Alerts whose words carry canaries: one per category inside the windows, and one about
    events before every window (raised while another consent covered them, say)."""
    owner = world.users["owner"]
    seeds = [
        ("owner:symptoms", "symptoms", now - timedelta(hours=3)),
        ("owner:medications", "medications", now - timedelta(hours=3)),
        ("owner:counseling", "counseling", now - timedelta(hours=3)),
        ("owner:outside", "symptoms", now - timedelta(days=20)),
    ]
    for n, (group, category, at) in enumerate(seeds):
        canary = _canary("AlertDetail")
        alert_services.raise_alert(
            session,
            patient_id=owner.id,
            kind="matrix",
            category=category,
            episode_key=f"matrix-{n}",
            now=now - timedelta(minutes=30),
            triggered_at=at,
            detail=canary,
        )
        world.canaries[group].add(canary)
    session.commit()


def _seed_bulk_export(app: Flask, session: Session, world: World, *, now: datetime) -> None:
    """A finished bulk export of clinician_full's (real files, for /fhir/bulkstatus and the file
    routes), made by the scheduler's job like any other."""
    from api.export.models import ExportJob
    from api.export.services import bulk_types
    from api.smart.models import SystemClient
    from jobs import bulk_export

    job = ExportJob(
        requester_id=world.users["clinician_full"].id,
        types=bulk_types(),
        request_url="matrix",
        created_at=now,
    )
    client = SystemClient(
        name="matrix",
        clinician_id=world.users["clinician_full"].id,
        jwks={"keys": []},
        scopes=["system/*.read"],
        created_at=now,
    )
    session.add_all([job, client])
    session.commit()
    world.params["client_id"] = str(client.id)
    done = bulk_export.run_next_export(
        session,
        now=datetime.now(UTC),  # after every seeded row (their accounts too)
        export_dir=app.config["EXPORT_DIR"],
        base_url=app.config["FHIR_BASE_URL"],
        ttl=app.config["BULK_EXPORT_TTL"],
    )
    session.commit()
    assert done is not None and done.status == "completed"
    world.params.update(job_id=str(job.id), rtype="Patient")


def _seed_features(session: Session, world: World, *, now: datetime) -> None:
    """Seed the owner's data in each feature, with canaries, and the ids to fill paths with."""
    from api.checkins import services as checkins
    from api.counseling import services as counseling
    from api.cows import services as cows
    from api.devices import services as devices
    from api.medications import services as medications
    from api.notifications.models import Notification
    from api.reminders import services as reminders

    owner = world.users["owner"]
    checkin_note = _canary("CheckinNote")
    checkin, _ = checkins.create_checkin(
        session,
        user_id=owner.id,
        body={
            "id": None,
            "recorded_at": now - timedelta(hours=2),
            "symptoms": {"anxiety": 5},
            "craving": 6,
            "note": checkin_note,
        },
        now=now - timedelta(hours=2),
    )
    # Before every consent's window (data_from 10 days ago): no clinician may see it.
    old_note = _canary("OldCheckinNote")
    checkins.create_checkin(
        session,
        user_id=owner.id,
        body={"id": None, "recorded_at": now - timedelta(days=20), "craving": 2, "note": old_note},
        now=now - timedelta(days=20),
    )
    world.canaries["owner:outside"].add(old_note)
    med_name, dose_note = _canary("MedName"), _canary("DoseNote")
    medication, _ = medications.create_medication(
        session,
        user_id=owner.id,
        timezone=owner.timezone,
        body={
            "id": None,
            "name": med_name,
            "dose": 8.0,
            "unit": "film",
            "times": [],
            "days_of_week": None,
            "start_date": (now - timedelta(days=5)).date(),
            "end_date": None,
            "as_needed": True,
            "rxnorm_code": None,
        },
        now=now - timedelta(days=5),
    )
    dose, _ = medications.log_dose(
        session,
        user_id=owner.id,
        medication_id=medication.id,
        body={
            "id": None,
            "status": "taken",
            "scheduled_for": None,
            "taken_at": now - timedelta(hours=3),
            "note": dose_note,
        },
        now=now - timedelta(hours=3),
    )
    title, counseling_note = _canary("SessionTitle"), _canary("CounselingNote")
    item, _ = counseling.create_session(
        session,
        user_id=owner.id,
        body={
            "id": None,
            "kind": "individual",
            "title": title,
            "starts_at": now - timedelta(days=1),
            "duration_minutes": 50,
            "provider_name": None,
            "location": None,
            "attendance": "attended",
            "note": counseling_note,
        },
        now=now - timedelta(days=1),
    )
    rule, _ = reminders.create_rule(
        session,
        user=owner,
        body={"kind": "checkin", "local_time": "09:00", "channels": ["inbox"]},
        now=now,
    )
    device, _ = devices.register_device(
        session, user_id=owner.id, body={"platform": "ios", "token": _canary("PushToken")}, now=now
    )
    notification = Notification(
        user_id=owner.id,
        rule_id=rule.id,
        kind="checkin",
        scheduled_for=now - timedelta(hours=1),
        due_at=now - timedelta(hours=1),
        created_at=now - timedelta(hours=1),
        inbox_at=now - timedelta(hours=1),
    )
    session.add(notification)
    # A COWS assessment clinician_full recorded about the owner: part of the owner's record
    # (their own /v1/cows-assessments) and symptoms data to clinicians. COWS answers are all
    # numbers, so its id is the canary: nobody else may see it.
    assessment, _ = cows.record_cows(
        session,
        clinician_id=world.users["clinician_full"].id,
        patient_id=owner.id,
        body={
            "id": None,
            "assessed_at": now - timedelta(hours=1),
            "answers": {item.key: item.highest for item in INSTRUMENTS["cows"].items},
        },
        now=now - timedelta(hours=1),
    )
    session.commit()
    world.params.update(
        reminder_id=str(rule.id),
        device_id=str(device.id),
        notification_id=str(notification.id),
        checkin_id=str(checkin.id),
        medication_id=str(medication.id),
        dose_id=str(dose.id),
        session_id=str(item.id),
        assessment_id=str(assessment.id),
    )
    world.canaries["owner:symptoms"] |= {checkin_note, str(assessment.id)}
    world.canaries["owner:medications"] |= {med_name, dose_note}
    world.params["running_regimen"] = med_name
    world.canaries["owner:counseling"].add(title)
    # Counseling notes never go under a general consent: no clinician sees them.
    world.canaries["owner:private"].add(counseling_note)
    _seed_weekly_summary(session, world, now=now)


def _seed_weekly_summary(session: Session, world: World, *, now: datetime) -> None:
    """A weekly summary delivered to the full clinician, holding a medications canary."""
    from api.summaries import services as summary_services
    from api.summaries.models import WeeklySummary
    from tests.conftest import TestConfig

    canary = _canary("SummaryMedication")
    owner, full = world.users["owner"], world.users["clinician_full"]
    # A real summary document (the dashboard renders it), with one more medication by name.
    doc = summary_services.on_demand_summary(
        session,
        clinician_id=full.id,
        patient_id=owner.id,
        start=now - timedelta(days=7),
        end=now,
        now=now,
        config=summary_services.SummaryConfig.from_mapping(TestConfig("sqlite://").as_flask()),
    )
    content = summary_services.stored(doc)
    meds = content["sections"]["medications"]["medications"]
    meds.append({**meds[0], "name": canary})
    row = WeeklySummary(
        consent_id=uuid.UUID(world.params["consent_id"]),
        patient_id=owner.id,
        clinician_id=full.id,
        week_start=(now - timedelta(days=7)).date(),
        period_from=now - timedelta(days=7),
        period_to=now,
        status="delivered",
        content=content,
        built_at=now,
        delivered_at=now,
    )
    session.add(row)
    session.commit()
    world.params["summary_id"] = str(row.id)
    world.canaries["owner:medications"].add(canary)


# Valid bodies where validation would otherwise answer 422 before ownership is checked.
BODIES: dict[tuple[str, str], Callable[[World], dict[str, Any]]] = {
    # An empty password: 422 for every signed-in caller, so nobody's account is erased here.
    ("DELETE", "/v1/me"): lambda _w: {"password": ""},
    ("POST", "/v1/medications/{medication_id}/doses"): lambda _w: {
        "status": "taken",
        "taken_at": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
    },
    ("PUT", "/v1/counseling-sessions/{session_id}/attendance"): lambda _w: {"status": "missed"},
    ("POST", "/v1/devices"): lambda _w: {"platform": "android", "token": "tok-" + "x" * 20},
    ("POST", "/v1/reminders/{reminder_id}/snooze"): lambda _w: {"minutes": 10},
    ("POST", "/v1/clinician/patients/{patient_id}/cows"): lambda _w: {
        "assessed_at": datetime.now(UTC).isoformat(),
        "answers": {item.key: item.highest for item in INSTRUMENTS["cows"].items},
    },
    ("POST", "/v1/consents"): lambda w: {
        "recipient_id": str(w.users["clinician_none"].id),
        "categories": ["symptoms"],
        "purpose": "treatment",
        "signature": "Someone",
        "consent_text_version": "2026-01",
    },
}


def _fill(path: str, world: World) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in world.params:
            pytest.fail(
                f"The authorization matrix cannot fill {{{name}}} in {path}: seed an owner's "
                "resource for it in tests/test_authorization_matrix.py (world.params)."
            )
        return world.params[name]

    return re.sub(r"\{(\w+)\}", value, path)


@pytest.fixture
def isolated(app: Flask, connection: sa.Connection) -> Callable[[], Iterator[None]]:
    """A savepoint per caller, rolled back after; the app's session is dropped with it."""
    from contextlib import contextmanager

    @contextmanager
    def scope() -> Iterator[None]:
        savepoint = connection.begin_nested()
        try:
            yield
        finally:
            # Where an app context outlives the request, its session must not carry over.
            stale = g.pop("db_session", None) if has_app_context() else None
            if stale is not None:
                stale.close()
            if savepoint.is_active:
                savepoint.rollback()

    return scope


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_route_against_every_actor(
    client: FlaskClient,
    world: World,
    isolated: Callable[[], Any],
    method: str,
    path: str,
) -> None:
    expected = classify(method, path)
    url = _fill(path, world)
    make_body = BODIES.get((method, path))
    body = make_body(world) if make_body else ({} if method in ("POST", "PUT", "PATCH") else None)
    failures = []
    for actor in ACTORS:
        with isolated():
            response = client.open(url, method=method, json=body, headers=world.headers[actor])
            # A streamed body (GET /v1/export) is read, and its request closed, in the savepoint.
            text = readable_text(response.get_data(), response.mimetype)
            response.close()
        status = response.status_code
        want = expected[actor]
        ok = status in OK_STATUSES if want == OK else status == want
        if not ok:
            failures.append(f"{actor}: expected {want}, got {status}: {text[:300]}")
        category = expected.get("_category")
        if actor == "clinician_partial" and want == 403 and category:
            missing = (response.json or {}).get("missing_category")
            if missing != category:
                failures.append(f"{actor}: the refusal must name the category {category}")
        leaked = sorted(c for c in world.forbidden_for(actor) if c in text)
        if leaked:
            failures.append(f"{actor}: foreign data in the body of {status}: {leaked}")
    assert not failures, f"{method} {path}\n" + "\n".join(failures)


def test_every_api_route_is_in_the_openapi_document() -> None:
    """A route left out of the document would escape the matrix."""
    app = create_app(MatrixConfig("sqlite://"))
    documented = {(m, re.sub(r"\{(\w+)\}", r"<\1>", p)) for m, p in OPERATIONS}
    undocumented = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(("/v1", "/fhir")):
            continue
        if rule.endpoint.startswith("smart."):
            continue  # OAuth 2.0 discovery: public, outside the document (api/smart/routes.py)
        plain = re.sub(r"<(?:\w+:)?(\w+)>", r"<\1>", rule.rule)
        for method in rule.methods or ():
            if method in ("HEAD", "OPTIONS"):
                continue
            if (method, plain) not in documented:
                undocumented.append(f"{method} {rule.rule}")
    assert undocumented == []


DERIVED_PATHS = (
    "/v1/clinician/alerts?state=all",
    "/v1/clinician/patients",
    "/v1/clinician/summaries",
    "/v1/clinician/summaries/{summary_id}",
    "/v1/clinician/patients/{patient_id}/summary",
    "/v1/clinician/patients/{patient_id}/summary.html",
    "/v1/clinician/patients/{patient_id}/summary.pdf",
    "/v1/clinician/summaries/{summary_id}.html",
    "/v1/clinician/summaries/{summary_id}.pdf",
    "/fhir/bulkstatus/{job_id}",
    "/fhir/bulkfiles/{job_id}/{rtype}.ndjson",
    "/fhir/Group/{group_id}",  # the roster as a Group: its members are a roster count
    # The dashboard's pages over the same derived records (a cookie session, not a token).
    "/clinic/alerts",
    "/clinic/patients",
    "/clinic/patients/{patient_id}",
    "/clinic/patients/{patient_id}/charts/{name}.svg",
    "/clinic/summaries",
    "/clinic/summaries/{summary_id}",
    "/clinic/summaries/{summary_id}/charts/{name}.svg",
)


def readable_text(body: bytes, mimetype: str | None) -> str:
    """What a reader of this body sees, as text, for the canary search: a PDF's pages' extracted
    text and a zip's members (its streams and entries are compressed, so a canary in them does
    not show in the raw bytes), anything else decoded."""
    if mimetype == "application/pdf":
        from pypdf import PdfReader

        pages = PdfReader(io.BytesIO(body)).pages
        return " ".join(page.extract_text() or "" for page in pages)
    if mimetype == "application/zip":
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            return "\n".join(
                f"{info.filename}\n{archive.read(info).decode('utf-8', 'replace')}"
                for info in archive.infolist()
            )
    return body.decode("utf-8", "replace")


def _text_of(response: Any) -> str:
    return readable_text(response.get_data(), response.mimetype)


def test_the_canary_search_reads_inside_pdf_and_zip_answers() -> None:
    # A leak inside a compressed answer (a summary PDF, an export zip) must be found too.
    from fpdf import FPDF

    canary = "canary-7f3a9c"
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.cell(text=f"note {canary}")
    pdf_bytes = bytes(pdf.output())
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("checkins.ndjson", f'{{"note": "{canary}"}}\n' * 50)
    for body, mimetype in ((pdf_bytes, "application/pdf"), (packed.getvalue(), "application/zip")):
        assert canary not in body.decode("utf-8", "replace")  # compressed: invisible raw
        assert canary in readable_text(body, mimetype)


# What makes a read path derived (alerts, summaries and their charts, bulk files, the roster).
_DERIVED = re.compile(
    r".*(alert|summar|bulk|/Group/|/charts/).*|/v1/clinician/patients|/clinic/patients"
)


def test_every_derived_read_path_is_checked_after_a_consent_change() -> None:
    # A new derived read (in the document or on the dashboard) joins DERIVED_PATHS, or this
    # fails: the check below cannot miss a path that skips the gate.
    paths = {p for m, p in OPERATIONS if m == "GET"} | {
        re.sub(r"<(\w+)>", r"{\1}", p) for m, p in CLINIC_OPERATIONS if m == "GET"
    }
    derived = {p for p in paths if _DERIVED.fullmatch(p) and "$export" not in p}  # kick-offs
    listed = {p.split("?")[0] for p in DERIVED_PATHS}
    assert derived - listed == set()


@pytest.mark.parametrize("change", ["revoke", "expire", "narrow_window"])
def test_derived_records_made_before_a_consent_changed_follow_the_change(
    client: FlaskClient, world: World, app: Flask, session: Session, change: str
) -> None:
    """Alerts, summaries and a finished bulk export made under clinician_full's consent: once
    the owner revokes it, it expires, or the owner narrows its window to the last hour, none of
    them shows what the consent in force no longer covers, on any derived path (the API's and
    the dashboard's), and no export file is left."""
    from api.clinic import sessions as clinic_sessions

    headers = world.headers["clinician_full"]
    bulk = client.get(_fill("/fhir/bulkstatus/{job_id}", world), headers=headers)
    assert bulk.status_code == 200
    seen = client.get("/v1/clinician/alerts?state=all", headers=headers).get_data(as_text=True)
    assert any(c in seen for c in world.canaries["owner:symptoms"])  # shown while in force
    group = client.get(_fill("/fhir/Group/{group_id}", world), headers=headers)
    assert world.params["patient_id"] in group.get_data(as_text=True)
    # The dashboard: a signed-in cookie session of the same clinician, shown the same alerts.
    now = datetime.now(UTC)
    _token, row = clinic_sessions.start(session, user=world.users["clinician_full"], now=now)
    client.set_cookie("waymark_clinic", clinic_sessions.promote(session, row=row, now=now))
    session.commit()
    page = client.get(_fill("/clinic/patients/{patient_id}", world)).get_data(as_text=True)
    assert any(c in page for c in world.canaries["owner:symptoms"])  # shown while in force
    owner = world.headers["owner"]
    if change == "revoke":
        url = f"/v1/consents/{world.params['consent_id']}/revoke"
        assert client.post(url, headers=owner).status_code == 200
        hidden = world.forbidden_for("clinician_none")  # everything of the owner's
    elif change == "expire":
        # Time passes the consent's end: no request announces it, so nothing runs at that
        # instant; every later read must judge it, and the export sweep deletes the files.
        # (Written as the clock would have it: a signed consent is never edited through the ORM.)
        from api.consent.models import Consent

        table = Consent.__table__
        session.execute(
            table.update()
            .where(table.c.id == uuid.UUID(world.params["consent_id"]))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        session.commit()
        hidden = world.forbidden_for("clinician_none")
    else:
        body = {
            "recipient_id": str(world.users["clinician_full"].id),
            "categories": ["symptoms", "medications", "counseling"],
            "purpose": "treatment",
            "data_from": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
            "signature": "Someone",
            "consent_text_version": "2026-01",
        }
        assert client.post("/v1/consents", json=body, headers=owner).status_code == 201
        # Every seeded health canary is older than an hour: none may show any more, but for
        # the name of the regimen, which is still running (in effect inside the new window).
        groups = ("owner:symptoms", "owner:medications", "owner:counseling", "owner:outside")
        hidden = world.forbidden_for("clinician_full") | set().union(
            *(world.canaries[g] for g in groups)
        )
        hidden.discard(world.params["running_regimen"])
    export_dir = app.config["EXPORT_DIR"]
    if change == "expire":
        from jobs import bulk_export

        bulk_export.expire_exports(session, now=datetime.now(UTC), export_dir=export_dir)
        session.commit()
    assert not list(Path(export_dir).rglob("*.ndjson")), "export files outlived the change"
    failures = []
    for path in DERIVED_PATHS:
        response = client.get(_fill(path, world), headers=headers)
        if path.startswith("/clinic/") and response.status_code != 200:
            assert response.status_code in (302, 403, 404), (path, response.status_code)
        text = _text_of(response)
        response.close()
        if path.startswith("/fhir/bulk") and response.status_code == 200:
            failures.append(f"{path}: still answered 200 after the consent changed")
        leaked = sorted(c for c in hidden if c in text)
        if leaked:
            failures.append(f"{path}: {response.status_code} shows {leaked}")
        gone = change != "narrow_window"  # no consent in force: not even in the roster
        if path == "/fhir/Group/{group_id}" and gone and world.params["patient_id"] in text:
            failures.append(f"{path}: still lists the patient")
    assert not failures, "\n".join(failures)


# --- the dashboard (/clinic/*): HTML pages behind a cookie session -----------------------------
# Not in the OpenAPI document, so its routes are read from the app's URL map. Each actor gets a
# signed-in dashboard session (patients too, forged: the sign-in page refuses them, and the role
# guard must as well). "redirect": sent to the sign-in page.
REDIRECT = "redirect"
ANSWERED = "answered"  # the sign-in steps: any answer but a server error, and no foreign data
PAGE_PUBLIC = _everyone(ANSWERED)
CLINIC_SELF = {
    **_everyone(403),
    **dict.fromkeys(CLINICIANS, OK),
    "anonymous": REDIRECT,
}
CLINIC_ADMIN = {**_everyone(403), "admin": OK, "anonymous": REDIRECT}


def clinic_patient(category: str | None) -> dict[str, Any]:
    """A page on the owner's data; `category` None: any consent in force will do (the page
    shows what is shared and says "not shared" for the rest)."""
    return {
        **_everyone(403),
        "clinician_full": OK,
        "clinician_partial": OK if category in (None, "symptoms") else 403,
        "clinician_expired": 404,
        "clinician_revoked": 404,
        "clinician_none": 404,
        "anonymous": REDIRECT,
    }


CLINIC_FAMILIES: list[tuple[set[str], str, dict[str, Any]]] = [
    # The sign-in steps themselves: anyone may reach them (each one sends a signed-in user on).
    ({"GET", "POST"}, r"/clinic/(login|login/code|enrol|logout)?", PAGE_PUBLIC),
    ({"GET"}, r"/inbox/<notification_id>", _everyone(OK)),
    ({"GET"}, r"/clinic/(patients|alerts|summaries)", CLINIC_SELF),
    ({"GET"}, r"/clinic/patients/<patient_id>(/consent)?", clinic_patient(None)),
    # The craving chart (symptoms) of the patient page's summary.
    ({"GET"}, r"/clinic/patients/<patient_id>/charts/<name>\.svg", clinic_patient("symptoms")),
    ({"GET", "POST"}, r"/clinic/patients/<patient_id>/cows", clinic_patient("symptoms")),
    ({"POST"}, r"/clinic/alerts/<alert_id>/acknowledge", clinic_patient("symptoms")),
    (
        {"GET"},
        r"/clinic/summaries/<summary_id>(/charts/<name>\.svg)?",
        {**clinic_patient(None), "clinician_partial": 404},  # delivered to full only
    ),
    ({"GET", "POST"}, r"/clinic/admin/.*", CLINIC_ADMIN),
]


def _clinic_operations() -> list[tuple[str, str]]:
    app = create_app(MatrixConfig("sqlite://"))
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(("/clinic", "/inbox")) or rule.endpoint.endswith("static"):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"<\1>", rule.rule)
        found += [(m, path) for m in sorted(rule.methods or ()) if m not in ("HEAD", "OPTIONS")]
    return found


CLINIC_OPERATIONS = _clinic_operations()


def _clinic_classify(method: str, path: str) -> dict[str, Any]:
    for methods, pattern, expected in CLINIC_FAMILIES:
        if method in methods and re.fullmatch(pattern, path):
            return expected
    pytest.fail(
        f"{method} {path} is not in the dashboard's authorization matrix: add it to "
        "CLINIC_FAMILIES in tests/test_authorization_matrix.py with who may call it."
    )


def test_the_dashboard_has_routes_to_check() -> None:
    assert len(CLINIC_OPERATIONS) >= 20


@pytest.mark.parametrize(
    ("method", "path"), CLINIC_OPERATIONS, ids=[f"{m} {p}" for m, p in CLINIC_OPERATIONS]
)
def test_dashboard_route_against_every_actor(
    app: Flask,
    session: Session,
    world: World,
    isolated: Callable[[], Any],
    method: str,
    path: str,
) -> None:
    from api.clinic import sessions as clinic_sessions

    expected = _clinic_classify(method, path)
    url = re.sub(r"<(\w+)>", lambda m: _fill("{" + m.group(1) + "}", world), path)
    failures = []
    for actor in ACTORS:
        client = app.test_client()
        csrf = ""
        with isolated():
            if actor != "anonymous":
                now = datetime.now(UTC)
                token, row = clinic_sessions.start(session, user=world.users[actor], now=now)
                token = clinic_sessions.promote(session, row=row, now=now)
                csrf = row.csrf_token
                session.commit()
                client.set_cookie("waymark_clinic", token, path="/clinic")
            data = {"csrf_token": csrf} if method == "POST" else None
            response = client.open(url, method=method, data=data)
            text = response.get_data(as_text=True)
        status = response.status_code
        want = expected[actor]
        if want == REDIRECT and method == "POST":
            want = 400  # without a session there is no CSRF token: refused before anything else
        if want == OK:
            ok = status in (*OK_STATUSES, 302) and "/clinic/login" not in response.headers.get(
                "Location", ""
            )
        elif want == ANSWERED:
            ok = status < 500
        elif want == REDIRECT:
            ok = status == 302 and "/clinic/login" in response.headers.get("Location", "")
        else:
            ok = status == want
        if not ok:
            failures.append(f"{actor}: expected {want}, got {status}: {text[:200]}")
        if status == 302:  # a redirect echoes the URL asked for, which is no disclosure
            text = text.replace(url, "").replace(quote(url, safe=""), "")
        leaked = sorted(c for c in world.forbidden_for(actor) if c in text)
        if leaked:
            failures.append(f"{actor}: foreign data in the page ({status}): {leaked}")
    assert not failures, f"{method} {path}\n" + "\n".join(failures)
