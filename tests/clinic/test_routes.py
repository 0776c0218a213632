"""The dashboard's pages through the Flask test client: sign-in, sessions, CSRF, the gate, the
ledger and audit rows, admin actions, the API's second factor, CORS and email links."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import pyotp
import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.alerts import services as alert_services
from api.audit.models import AuditEvent
from api.auth.models import RecoveryCode
from api.checkins import services as checkin_services
from api.consent import services as consent_services
from api.disclosures.models import Disclosure
from api.instruments.definitions import INSTRUMENTS
from api.medications.models import Dose, Medication
from tests.clinic.conftest import csrf_of, next_code
from tests.clinician.test_routes import count_queries
from tests.consenting import sign

SignIn = Callable[..., dict[str, str]]


def _consented(session: Session, make_patient: Any, clinician: Any, **kw: Any) -> Any:
    patient = make_patient(display_name=kw.pop("name", "Pat Example"))
    sign(
        session,
        patient=patient,
        clinician=clinician,
        categories=kw.pop("categories", ["symptoms", "medications", "counseling"]),
        now=datetime.now(UTC) - timedelta(days=3),
        data_from=datetime.now(UTC) - timedelta(days=20),
        **kw,
    )
    return patient


def test_pages_need_a_sign_in_and_keep_the_target(client: FlaskClient, make_clinician: Any) -> None:
    target = f"/clinic/summaries/{uuid.uuid4()}"
    answer = client.get(target)
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("/clinic/login?next=")
    assert unquote(answer.headers["Location"]) == f"/clinic/login?next={target}"


def test_security_headers(client: FlaskClient) -> None:
    answer = client.get("/clinic/login")
    assert answer.status_code == 200
    csp = answer.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["Cache-Control"] == "no-store"
    assert "<script>" not in answer.get_data(as_text=True)


def test_sign_in_with_enrolment_then_totp_and_cookie_flags(
    app: Flask, client: FlaskClient, make_clinician: Any, clinic_sign_in: SignIn
) -> None:
    clinician = make_clinician()
    creds = clinic_sign_in(client, clinician)
    assert client.get("/clinic/patients").status_code == 200
    # Sign out ends it on the server: the old cookie no longer works even if replayed.
    cookie = client.get_cookie("waymark_clinic", path="/clinic")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Strict"
    client.post("/clinic/logout", data={"csrf_token": creds["csrf"]})
    client.set_cookie("waymark_clinic", cookie.value, path="/clinic")
    assert client.get("/clinic/patients").status_code == 302

    # The second sign-in asks for the code; a wrong one is refused.
    page = client.get("/clinic/login").get_data(as_text=True)
    client.post(
        "/clinic/login",
        data={
            "email": clinician.email,
            "password": "correct horse battery",
            "csrf_token": csrf_of(page),
        },
    )
    page = client.get("/clinic/login/code").get_data(as_text=True)
    wrong = client.post("/clinic/login/code", data={"code": "000000", "csrf_token": csrf_of(page)})
    assert wrong.status_code == 401
    assert client.get("/clinic/patients").status_code == 302  # not signed in yet
    good = client.post(
        "/clinic/login/code", data={"code": next_code(creds["secret"]), "csrf_token": csrf_of(page)}
    )
    assert good.status_code == 302
    assert client.get("/clinic/patients").status_code == 200


def test_patients_cannot_sign_in_here(client: FlaskClient, make_patient: Any) -> None:
    patient = make_patient()
    page = client.get("/clinic/login").get_data(as_text=True)
    answer = client.post(
        "/clinic/login",
        data={
            "email": patient.email,
            "password": "correct horse battery",
            "csrf_token": csrf_of(page),
        },
    )
    assert answer.status_code == 403
    assert client.get_cookie("waymark_clinic", path="/clinic") is None


def test_sign_in_throttle_applies(client: FlaskClient, make_clinician: Any) -> None:
    clinician = make_clinician()
    page = client.get("/clinic/login").get_data(as_text=True)
    statuses = []
    for _ in range(6):
        answer = client.post(
            "/clinic/login",
            data={
                "email": clinician.email,
                "password": "wrong password!",
                "csrf_token": csrf_of(page),
            },
        )
        statuses.append(answer.status_code)
    assert statuses[:5] == [401] * 5
    assert statuses[5] == 429


@pytest.mark.parametrize(
    "target",
    ["//evil.example/x", "https://evil.example/", "/\\evil.example", "/v1/me", "javascript:x"],
)
def test_no_open_redirect_after_sign_in(
    client: FlaskClient, make_clinician: Any, target: str
) -> None:
    clinician = make_clinician()
    page = client.get("/clinic/login").get_data(as_text=True)
    answer = client.post(
        "/clinic/login",
        data={
            "email": clinician.email,
            "password": "correct horse battery",
            "csrf_token": csrf_of(page),
            "next": target,
        },
    )
    assert answer.headers["Location"] == "/clinic/enrol"


def test_email_link_lands_after_sign_in(
    client: FlaskClient, make_clinician: Any, clinic_sign_in: SignIn
) -> None:
    clinician = make_clinician()
    creds = clinic_sign_in(client, clinician)  # enrol first
    client.post(
        "/clinic/logout",
        data={"csrf_token": csrf_of(client.get("/clinic/alerts").get_data(as_text=True))},
    )
    target = "/clinic/alerts?state=all"
    login = client.get(target).headers["Location"]
    page = client.get(login).get_data(as_text=True)
    assert 'name="next" value="/clinic/alerts?state=all"' in page
    step = client.post(
        "/clinic/login",
        data={
            "email": clinician.email,
            "password": "correct horse battery",
            "csrf_token": csrf_of(page),
            "next": target,
        },
    )
    page = client.get(step.headers["Location"]).get_data(as_text=True)
    landed = client.post(
        "/clinic/login/code",
        data={"code": next_code(creds["secret"]), "csrf_token": csrf_of(page), "next": target},
    )
    assert landed.headers["Location"] == target


def test_form_post_without_csrf_is_refused(
    client: FlaskClient,
    session: Session,
    make_clinician: Any,
    make_patient: Any,
    clinic_sign_in: SignIn,
) -> None:
    clinician = make_clinician()
    patient = _consented(session, make_patient, clinician)
    alert, _ = alert_services.raise_alert(
        session,
        patient_id=patient.id,
        kind="craving_high",
        category="symptoms",
        episode_key="x",
        now=datetime.now(UTC),
    )
    session.commit()
    clinic_sign_in(client, clinician)
    for data in ({}, {"csrf_token": "forged"}):
        answer = client.post(f"/clinic/alerts/{alert.id}/acknowledge", data=data)
        assert answer.status_code == 400
    from api.alerts.models import AlertAcknowledgement

    assert session.scalar(select(func.count()).select_from(AlertAcknowledgement)) == 0
    # And the sign-in form has its own (pre-session) token.
    assert client.post("/clinic/logout", data={}).status_code == 400


def test_idle_timeout_ends_the_session(
    app: Flask, client: FlaskClient, make_clinician: Any, clinic_sign_in: SignIn
) -> None:
    clinician = make_clinician()
    clinic_sign_in(client, clinician)
    idle = app.config["CLINIC_IDLE_TIMEOUT"]
    with time_machine.travel(datetime.now(UTC) + timedelta(seconds=idle - 60), tick=False):
        assert client.get("/clinic/patients").status_code == 200
    with time_machine.travel(datetime.now(UTC) + timedelta(seconds=2 * idle - 120), tick=False):
        assert client.get("/clinic/patients").status_code == 200  # activity kept it alive
    with time_machine.travel(datetime.now(UTC) + timedelta(seconds=3 * idle + 60), tick=False):
        assert client.get("/clinic/patients").status_code == 302


def test_absolute_lifetime(
    app: Flask,
    client: FlaskClient,
    make_clinician: Any,
    clinic_sign_in: SignIn,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(app.config, "CLINIC_IDLE_TIMEOUT", 100)
    monkeypatch.setitem(app.config, "CLINIC_ABSOLUTE_TIMEOUT", 150)
    clinic_sign_in(client, make_clinician())
    start = datetime.now(UTC)
    with time_machine.travel(start + timedelta(seconds=80), tick=False):
        assert client.get("/clinic/patients").status_code == 200
    with time_machine.travel(start + timedelta(seconds=155), tick=False):
        answer = client.get("/clinic/patients")  # active, but past the absolute lifetime
    assert answer.status_code == 302 and "/clinic/login" in answer.headers["Location"]


def test_patient_page_goes_through_the_gate_with_ledger_and_audit(
    client: FlaskClient,
    session: Session,
    make_clinician: Any,
    make_patient: Any,
    clinic_sign_in: SignIn,
) -> None:
    clinician, other = make_clinician(), make_clinician()
    patient = _consented(session, make_patient, clinician, categories=["symptoms"])
    clinic_sign_in(client, clinician)
    page = client.get(f"/clinic/patients/{patient.id}?days=14")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Not shared: the patient's consent does not cover medications." in html
    assert "42 CFR part 2" in html
    ledger = session.scalars(select(Disclosure).where(Disclosure.patient_id == patient.id)).all()
    assert {d.kind for d in ledger} == {"summary", "read"}
    assert all(set(d.categories) == {"symptoms"} for d in ledger)
    audit = session.scalars(select(AuditEvent).where(AuditEvent.patient_id == patient.id)).all()
    assert [(a.action, a.outcome) for a in audit] == [("clinic.patient.read", "allowed")]

    # Another clinician reaching this patient by URL: 404, audited as denied, nothing disclosed.
    client2 = client.application.test_client()
    clinic_sign_in(client2, other)
    before = len(ledger)
    assert client2.get(f"/clinic/patients/{patient.id}").status_code == 404
    assert client2.get(f"/clinic/patients/{patient.id}/consent").status_code == 404
    assert client2.get(f"/clinic/patients/{patient.id}/cows").status_code == 404
    assert (
        session.scalar(
            select(func.count()).select_from(Disclosure).where(Disclosure.patient_id == patient.id)
        )
        == before
    )
    denied = session.scalars(
        select(AuditEvent).where(AuditEvent.actor_id == other.id, AuditEvent.outcome == "denied")
    ).all()
    assert len(denied) == 3


def test_revocation_removes_the_patient_at_once(
    client: FlaskClient,
    session: Session,
    make_clinician: Any,
    make_patient: Any,
    clinic_sign_in: SignIn,
) -> None:
    clinician = make_clinician()
    patient = _consented(session, make_patient, clinician, name="Revoking Person")
    clinic_sign_in(client, clinician)
    assert "Revoking Person" in client.get("/clinic/patients").get_data(as_text=True)
    consent = consent_services.list_consents(
        session, patient_id=patient.id, status=None, limit=5, cursor=None, now=datetime.now(UTC)
    )["items"][0]
    consent_services.revoke_consent(
        session, patient_id=patient.id, consent_id=consent.id, now=datetime.now(UTC)
    )
    session.commit()
    assert "Revoking Person" not in client.get("/clinic/patients").get_data(as_text=True)
    assert client.get(f"/clinic/patients/{patient.id}").status_code == 404


def test_cows_form_saves_through_the_api_service(
    client: FlaskClient,
    session: Session,
    make_clinician: Any,
    make_patient: Any,
    clinic_sign_in: SignIn,
) -> None:
    from api.cows.models import CowsAssessment

    clinician = make_clinician()
    patient = _consented(session, make_patient, clinician)
    creds = clinic_sign_in(client, clinician)
    items = INSTRUMENTS["cows"].items
    form = {f"item-{i.key}": str(max(i.allowed or (i.max,))) for i in items}
    partial = dict(list(form.items())[:5])
    answer = client.post(
        f"/clinic/patients/{patient.id}/cows", data={**partial, "csrf_token": creds["csrf"]}
    )
    assert answer.status_code == 422
    answer = client.post(
        f"/clinic/patients/{patient.id}/cows", data={**form, "csrf_token": creds["csrf"]}
    )
    assert answer.status_code == 201
    assert "severe" in answer.get_data(as_text=True)
    saved = session.scalars(
        select(CowsAssessment).where(CowsAssessment.patient_id == patient.id)
    ).all()
    assert [(a.total, a.severity) for a in saved] == [(INSTRUMENTS["cows"].max_total, "severe")]


def test_acknowledge_alert_with_note(
    app: Flask,
    client: FlaskClient,
    session: Session,
    make_clinician: Any,
    make_patient: Any,
    clinic_sign_in: SignIn,
) -> None:
    clinician = make_clinician()
    patient = _consented(session, make_patient, clinician)
    alert, _ = alert_services.raise_alert(
        session,
        patient_id=patient.id,
        kind="craving_high",
        category="symptoms",
        episode_key="y",
        now=datetime.now(UTC),
    )
    session.commit()
    creds = clinic_sign_in(client, clinician)
    assert "craving high" in client.get("/clinic/alerts").get_data(as_text=True)
    answer = client.post(
        f"/clinic/alerts/{alert.id}/acknowledge",
        data={"note": "called back, stable", "csrf_token": creds["csrf"]},
    )
    assert answer.status_code == 302
    assert "craving high" not in client.get("/clinic/alerts").get_data(as_text=True)
    acknowledged = client.get("/clinic/alerts?state=acknowledged").get_data(as_text=True)
    assert "craving high" in acknowledged and "called back, stable" in acknowledged
    # Another clinician of the same patient sees the alert, never the note.
    other = make_clinician()
    sign(
        session,
        patient=patient,
        clinician=other,
        categories=["symptoms"],
        now=datetime.now(UTC) - timedelta(days=3),
        data_from=datetime.now(UTC) - timedelta(days=20),
    )
    session.commit()
    with app.test_client() as second:
        clinic_sign_in(second, other)
        page = second.get("/clinic/alerts?state=all").get_data(as_text=True)
        assert "craving high" in page and "called back" not in page


def test_a_too_long_acknowledgement_note_is_refused(
    client: FlaskClient,
    session: Session,
    make_clinician: Any,
    make_patient: Any,
    clinic_sign_in: SignIn,
) -> None:
    clinician = make_clinician()
    patient = _consented(session, make_patient, clinician)
    alert, _ = alert_services.raise_alert(
        session,
        patient_id=patient.id,
        kind="craving_high",
        category="symptoms",
        episode_key="long",
        now=datetime.now(UTC),
    )
    session.commit()
    creds = clinic_sign_in(client, clinician)
    answer = client.post(
        f"/clinic/alerts/{alert.id}/acknowledge",
        data={"note": "z" * 1001, "csrf_token": creds["csrf"]},
    )
    assert answer.status_code == 422
    assert "note" in answer.get_data(as_text=True).lower()
    assert "craving high" in client.get("/clinic/alerts").get_data(as_text=True)


def test_roster_has_a_fixed_number_of_queries(
    app: Flask,
    client: FlaskClient,
    session: Session,
    engine: Any,
    make_clinician: Any,
    make_patient: Any,
    clinic_sign_in: SignIn,
) -> None:
    clinician = make_clinician()
    clinic_sign_in(client, clinician)

    def queries_for_roster() -> int:
        with count_queries(engine) as statements:
            assert client.get("/clinic/patients").status_code == 200
        return len(statements)

    _consented(session, make_patient, clinician, name="A")
    one = queries_for_roster()
    for n in range(6):
        _consented(
            session,
            make_patient,
            clinician,
            name=f"B{n}",
            categories=["symptoms"] if n % 2 else ["medications"],
        )
    assert queries_for_roster() == one


def _roster_fixture(session: Session, make_patient: Any, clinician: Any) -> dict[str, Any]:
    """Five patients whose open alerts, last check-in and 7-day adherence differ (and one who
    shares neither symptoms nor medications): each sort has one right order."""
    now = datetime.now(UTC)
    people = {
        name: _consented(session, make_patient, clinician, name=name, categories=cats)
        for name, cats in (
            ("Ada", ["symptoms", "medications"]),
            ("Ben", ["symptoms", "medications"]),
            ("Cy", ["symptoms", "medications"]),
            ("Di", ["symptoms", "medications"]),
            ("Ed", ["counseling"]),
        )
    }
    alerts = {"Ada": 0, "Ben": 2, "Cy": 1, "Di": 3, "Ed": 0}
    checkin_hours_ago = {"Ada": 5, "Ben": 50, "Cy": 1, "Di": None, "Ed": 2}
    taken_of_4 = {"Ada": 4, "Ben": 1, "Cy": None, "Di": 3, "Ed": 2}
    for name, patient in people.items():
        for n in range(alerts[name]):
            alert_services.raise_alert(
                session,
                patient_id=patient.id,
                kind="craving_high",
                category="symptoms",
                episode_key=f"{name}{n}",
                now=now - timedelta(hours=1),
            )
        if checkin_hours_ago[name] is not None:
            at = now - timedelta(hours=checkin_hours_ago[name])
            checkin_services.create_checkin(
                session,
                user_id=patient.id,
                body={
                    "id": None,
                    "recorded_at": at,
                    "symptoms": {"anxiety": 2},
                    "craving": 3,
                    "note": None,
                },
                now=at,
            )
        if taken_of_4[name] is not None:
            medication = Medication(
                user_id=patient.id,
                name="Med",
                dose=8.0,
                unit="mg",
                times=["08:00"],
                start_date=(now - timedelta(days=10)).date(),
                schedule_timezone="UTC",
            )
            session.add(medication)
            session.flush()
            for day in range(1, 5):
                at = now - timedelta(days=day)
                taken = day <= taken_of_4[name]
                session.add(
                    Dose(
                        user_id=patient.id,
                        medication_id=medication.id,
                        status="taken" if taken else "missed",
                        source="user" if taken else "system",
                        scheduled_for=at,
                        taken_at=at if taken else None,
                        dose_at=at,
                    )
                )
    session.commit()
    return people


def _names_in_order(html: str, names: list[str]) -> list[str]:
    return sorted(names, key=lambda n: html.index(f">{n}</a>"))


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("name", ["Ada", "Ben", "Cy", "Di", "Ed"]),
        ("-name", ["Ed", "Di", "Cy", "Ben", "Ada"]),
        ("-alerts", ["Di", "Ben", "Cy", "Ada", "Ed"]),
        ("alerts", ["Ada", "Ed", "Cy", "Ben", "Di"]),
        # No value (none in the window, or not shared) comes last either way.
        ("checkin", ["Ben", "Ada", "Cy", "Di", "Ed"]),
        ("-checkin", ["Cy", "Ada", "Ben", "Di", "Ed"]),
        ("adherence", ["Ben", "Di", "Ada", "Cy", "Ed"]),
        ("-adherence", ["Ada", "Di", "Ben", "Cy", "Ed"]),
    ],
)
def test_roster_sorts_by_alerts_last_checkin_and_adherence(
    client: FlaskClient,
    session: Session,
    engine: Any,
    make_clinician: Any,
    make_patient: Any,
    clinic_sign_in: SignIn,
    sort: str,
    expected: list[str],
) -> None:
    clinician = make_clinician()
    people = _roster_fixture(session, make_patient, clinician)
    clinic_sign_in(client, clinician)
    with count_queries(engine) as statements:
        answer = client.get(f"/clinic/patients?sort={sort}")
    assert answer.status_code == 200
    html = answer.get_data(as_text=True)
    assert _names_in_order(html, list(people)) == expected
    # The values shown are the ones sorted by (Ed shares neither: "not shared").
    assert "1 of 4 (25%)" in html and "4 of 4 (100%)" in html and "not shared" in html
    # Sorted and paged by the database: one SELECT with ORDER BY and LIMIT reads the page.
    paged = [q for q in statements if "ORDER BY" in q and "LIMIT" in q and "FROM consents" in q]
    assert len(paged) == 1
    # The active column says how it is sorted; the others do not.
    key = sort.removeprefix("-")
    direction = "descending" if sort.startswith("-") else "ascending"
    headers = re.findall(
        r'<th scope="col"[^>]*aria-sort="(\w+)"[^>]*><a class="sort" href="[^"]*sort=-?(\w+)', html
    )
    assert headers == [(direction, key)]


def test_roster_sorting_keeps_a_fixed_number_of_queries_and_pages(
    app: Flask,
    client: FlaskClient,
    session: Session,
    engine: Any,
    make_clinician: Any,
    make_patient: Any,
    clinic_sign_in: SignIn,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clinician = make_clinician()
    _roster_fixture(session, make_patient, clinician)
    clinic_sign_in(client, clinician)
    monkeypatch.setitem(app.config, "CLINIC_PAGE_SIZE", 2)
    counts = set()
    for sort in ("name", "-alerts", "checkin", "-adherence", "-signed"):
        with count_queries(engine) as statements:
            assert client.get(f"/clinic/patients?sort={sort}").status_code == 200
        counts.add(len(statements))
    assert len(counts) == 1
    first = client.get("/clinic/patients?sort=-alerts&page=1").get_data(as_text=True)
    second = client.get("/clinic/patients?sort=-alerts&page=2").get_data(as_text=True)
    assert ">Di</a>" in first and ">Ben</a>" in first and ">Cy</a>" in second
    assert "sort=-alerts&amp;page=3" in second  # the pager keeps the sort
    # A search keeps the sort, and an unknown sort falls back to the name.
    found = client.get("/clinic/patients?q=d&sort=-alerts").get_data(as_text=True)
    assert found.index(">Di</a>") < found.index(">Ada</a>")
    assert client.get("/clinic/patients?sort=bogus").status_code == 200


def test_the_roster_ledger_covers_what_its_open_alert_count_derives_from(
    client: FlaskClient,
    session: Session,
    make_clinician: Any,
    make_patient: Any,
    clinic_sign_in: SignIn,
) -> None:
    # A counseling-only consent shows no check-in or doses, but its missed-session alert is
    # counted: that count is a disclosure too, of counseling over the alert's events.
    clinician = make_clinician()
    counseling_only = _consented(session, make_patient, clinician, categories=["counseling"])
    everything = _consented(session, make_patient, clinician, name="Ada Whole")
    now = datetime.now(UTC)
    events = (now - timedelta(days=6), now - timedelta(days=5))
    for patient in (counseling_only, everything):
        alert_services.raise_alert(
            session, patient_id=patient.id, kind="missed_session", category="counseling",
            episode_key="1", now=now, events_from=events[0], events_to=events[1],
        )  # fmt: skip
    session.commit()
    clinic_sign_in(client, clinician)
    assert client.get("/clinic/patients").status_code == 200

    rows = {
        r.patient_id: r
        for r in session.scalars(select(Disclosure).where(Disclosure.recipient_id == clinician.id))
    }
    assert set(rows) == {counseling_only.id, everything.id}
    alone = rows[counseling_only.id]
    assert (alone.categories, alone.data_from, alone.data_to) == (["counseling"], *events)
    # Beside the check-in and the doses, one row under the one consent: the window to now.
    whole = rows[everything.id]
    assert sorted(whole.categories) == ["counseling", "medications", "symptoms"]
    assert whole.data_from < events[0] and whole.data_to >= now


def test_roster_search_sort_and_pages(
    app: Flask,
    client: FlaskClient,
    session: Session,
    make_clinician: Any,
    make_patient: Any,
    clinic_sign_in: SignIn,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clinician = make_clinician()
    for name in ("Alma", "Bert", "Cleo", "Dora", "Alba"):
        _consented(session, make_patient, clinician, name=name)
    clinic_sign_in(client, clinician)
    monkeypatch.setitem(app.config, "CLINIC_PAGE_SIZE", 2)
    html = client.get("/clinic/patients?sort=-name").get_data(as_text=True)
    assert html.index("Dora") < html.index("Cleo") and "Bert" not in html
    assert "Page 1 of 3" in html
    html = client.get("/clinic/patients?q=al&page=1").get_data(as_text=True)
    assert "Alba" in html and "Alma" in html and "Bert" not in html
    html = client.get("/clinic/patients?q=%25").get_data(
        as_text=True
    )  # a literal %, not a wildcard
    assert "0 patients" in html


def test_admin_deactivation_ends_sessions_and_api_access(
    client: FlaskClient,
    session: Session,
    make_clinician: Any,
    make_admin: Any,
    clinic_sign_in: SignIn,
    auth_headers: Any,
) -> None:
    clinician, admin = make_clinician(), make_admin()
    clinician_client = client.application.test_client()
    clinic_sign_in(clinician_client, clinician)
    headers = auth_headers(clinician)
    assert client.application.test_client().get("/v1/me", headers=headers).status_code == 200
    creds = clinic_sign_in(client, admin)
    assert client.get("/clinic/patients").status_code == 403  # not an admin page
    answer = client.post(
        f"/clinic/admin/clinicians/{clinician.id}/deactivate", data={"csrf_token": creds["csrf"]}
    )
    assert answer.status_code == 302
    assert clinician_client.get("/clinic/patients").status_code == 302
    assert clinician_client.get("/v1/me", headers=headers).status_code == 401
    token = clinician_client.post(
        "/v1/auth/token", json={"email": clinician.email, "password": "correct horse battery"}
    )
    assert token.status_code == 401
    client.post(
        f"/clinic/admin/clinicians/{clinician.id}/reactivate", data={"csrf_token": creds["csrf"]}
    )
    old = clinician.invite_code
    client.post(
        f"/clinic/admin/clinicians/{clinician.id}/invite-code", data={"csrf_token": creds["csrf"]}
    )
    session.refresh(clinician)
    assert clinician.deactivated_at is None and clinician.invite_code != old


def test_admin_resets_a_lost_second_factor(
    client: FlaskClient,
    session: Session,
    make_clinician: Any,
    make_admin: Any,
    make_patient: Any,
    clinic_sign_in: SignIn,
    auth_headers: Any,
) -> None:
    # A clinician who lost their phone: the admin forgets the factor, every sign-in ends, and
    # the next sign-in with the password enrols a new factor; the old codes are dead.
    clinician, admin, patient = make_clinician(), make_admin(), make_patient()
    clinician_client = client.application.test_client()
    old_secret = clinic_sign_in(clinician_client, clinician)["secret"]
    headers = auth_headers(clinician)
    creds = clinic_sign_in(client, admin)
    page = client.get("/clinic/admin/clinicians").get_data(as_text=True)
    reset_url = f"/clinic/admin/clinicians/{clinician.id}/second-factor/reset"
    assert reset_url in page

    # Another clinician's page, a patient's or an unknown id: 404; no CSRF token: refused.
    for user_id in (patient.id, uuid.uuid4()):
        missing = client.post(
            f"/clinic/admin/clinicians/{user_id}/second-factor/reset",
            data={"csrf_token": creds["csrf"]},
        )
        assert missing.status_code == 404
    assert client.post(reset_url).status_code == 400
    # Not an admin: 403, and the factor stays.
    other = make_clinician()
    other_client = client.application.test_client()
    other_creds = clinic_sign_in(other_client, other)
    refused = other_client.post(reset_url, data={"csrf_token": other_creds["csrf"]})
    assert refused.status_code == 403
    session.refresh(clinician)
    assert clinician.totp_enrolled_at is not None

    answer = client.post(reset_url, data={"csrf_token": creds["csrf"]})
    assert answer.status_code == 302
    assert "reset=1" in answer.headers["Location"]
    session.refresh(clinician)
    assert clinician.totp_secret is None and clinician.totp_enrolled_at is None
    assert (
        session.scalar(
            select(func.count())
            .select_from(RecoveryCode)
            .where(RecoveryCode.user_id == clinician.id)
        )
        == 0
    )
    assert clinician_client.get("/clinic/patients").status_code == 302  # signed out
    assert client.application.test_client().get("/v1/me", headers=headers).status_code == 401
    audit = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "clinic.admin.second_factor_reset")
    ).all()
    allowed = [(row.actor_id, row.target_id) for row in audit if row.outcome == "allowed"]
    assert allowed == [(admin.id, clinician.id)]
    assert [row.outcome for row in audit if row.actor_id == other.id] == ["denied"]

    # The next sign-in enrols a new factor (the fixture's enrol path) with a new secret.
    fresh = client.application.test_client()
    new_secret = clinic_sign_in(fresh, clinician)
    assert new_secret["secret"] != old_secret
    assert fresh.get("/clinic/patients").status_code == 200


def test_admin_creates_a_clinician_and_filters_the_audit_log(
    client: FlaskClient, session: Session, make_admin: Any, clinic_sign_in: SignIn
) -> None:
    admin = make_admin()
    creds = clinic_sign_in(client, admin)
    answer = client.post(
        "/clinic/admin/clinicians",
        data={
            "email": "new.doc@example.test",
            "display_name": "New Doc",
            "organization": "Clinic",
            "password": "long enough pw",
            "csrf_token": creds["csrf"],
        },
    )
    assert answer.status_code == 302
    assert "New Doc" in client.get("/clinic/admin/clinicians").get_data(as_text=True)
    assert client.get("/clinic/admin/audit?outcome=denied&from=2026-01-01").status_code == 200
    assert client.get("/clinic/admin/audit?actor=nope").status_code == 422


def test_api_sign_in_asks_for_the_second_factor_once_enrolled(
    client: FlaskClient, make_clinician: Any, make_admin: Any, clinic_sign_in: SignIn
) -> None:
    clinician, other, admin = make_clinician(), make_clinician(), make_admin()
    creds = clinic_sign_in(client.application.test_client(), clinician)
    body = {"email": clinician.email, "password": "correct horse battery"}
    missing = client.post("/v1/auth/token", json=body)
    assert missing.status_code == 401 and missing.json["mfa_required"] is True
    wrong = client.post("/v1/auth/token", json={**body, "totp_code": "123456"})
    assert wrong.status_code == 401
    ok = client.post("/v1/auth/token", json={**body, "totp_code": next_code(creds["secret"])})
    assert ok.status_code == 200
    # An admin requires enrolment: an unenrolled clinician cannot get tokens.
    other_body = {"email": other.email, "password": "correct horse battery"}
    assert client.post("/v1/auth/token", json=other_body).status_code == 200
    admin_client = client.application.test_client()
    admin_creds = clinic_sign_in(admin_client, admin)
    admin_client.post(
        "/clinic/admin/settings", data={"require_totp": "on", "csrf_token": admin_creds["csrf"]}
    )
    assert client.post("/v1/auth/token", json=other_body).status_code == 403
    assert pyotp  # the same library the dashboard uses


def test_recovery_code_signs_in_once(client: FlaskClient, make_clinician: Any) -> None:
    clinician = make_clinician()
    page = client.get("/clinic/login").get_data(as_text=True)
    client.post(
        "/clinic/login",
        data={
            "email": clinician.email,
            "password": "correct horse battery",
            "csrf_token": csrf_of(page),
        },
    )
    page = client.get("/clinic/enrol").get_data(as_text=True)
    import re

    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page).group(1)  # type: ignore[union-attr]
    done = client.post(
        "/clinic/enrol", data={"code": pyotp.TOTP(secret).now(), "csrf_token": csrf_of(page)}
    )
    codes = re.findall(r"<li><code>([0-9a-f-]+)</code></li>", done.get_data(as_text=True))
    assert len(codes) == 10
    body = {"email": clinician.email, "password": "correct horse battery"}
    assert client.post("/v1/auth/token", json={**body, "totp_code": codes[0]}).status_code == 200
    assert client.post("/v1/auth/token", json={**body, "totp_code": codes[0]}).status_code == 401


def test_cors_allow_list(app: Flask, database_url: str) -> None:
    from api import create_app
    from tests.conftest import TestConfig

    config = TestConfig(database_url)
    config.CORS_ORIGINS = ["https://clinic.example"]
    cors_app = create_app(config)
    preflight = cors_app.test_client().options(
        "/v1/clinician/patients",
        headers={
            "Origin": "https://clinic.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "Authorization",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://clinic.example"
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()
    refused = cors_app.test_client().options(
        "/v1/clinician/patients",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "Access-Control-Allow-Origin" not in refused.headers
    # The default (empty list): no CORS headers at all.
    default = app.test_client().options(
        "/v1/me",
        headers={"Origin": "https://clinic.example", "Access-Control-Request-Method": "GET"},
    )
    assert "Access-Control-Allow-Origin" not in default.headers


def test_reminder_email_inbox_link_lands(client: FlaskClient) -> None:
    answer = client.get(f"/inbox/{uuid.uuid4()}")
    assert answer.status_code == 200
    assert "Open the Waymark app" in answer.get_data(as_text=True)


def test_patient_page_charts_are_images_through_the_gate(
    client: FlaskClient,
    session: Session,
    make_clinician: Any,
    make_patient: Any,
    clinic_sign_in: SignIn,
) -> None:
    clinician = make_clinician()
    patient = _consented(session, make_patient, clinician, categories=["symptoms"])
    checkin_at = datetime.now(UTC) - timedelta(days=1)
    from api.checkins import services as checkin_services

    checkin_services.create_checkin(
        session,
        user_id=patient.id,
        body={"id": None, "recorded_at": checkin_at, "craving": 7, "note": None},
        now=checkin_at,
    )
    session.commit()
    clinic_sign_in(client, clinician)
    html = client.get(f"/clinic/patients/{patient.id}?days=7").get_data(as_text=True)
    src = f"/clinic/patients/{patient.id}/charts/craving.svg?days=7"
    assert f'src="{src}"' in html
    before = session.scalar(select(func.count()).select_from(Disclosure))
    chart = client.get(src)
    assert chart.status_code == 200 and chart.mimetype == "image/svg+xml"
    assert chart.get_data(as_text=True).lstrip().startswith("<svg")
    assert session.scalar(select(func.count()).select_from(Disclosure)) == (before or 0) + 1
    # A chart of a category not shared (medications) does not exist for this clinician.
    assert client.get(f"/clinic/patients/{patient.id}/charts/medications.svg").status_code == 404


def test_a_missing_second_factor_is_no_guess_and_a_wrong_one_is_counted(
    client: FlaskClient, make_clinician: Any, clinic_sign_in: SignIn
) -> None:
    """The attempt is counted before it is judged, in a short transaction of its own; a
    request that only lacks its second factor gets it back (it guessed nothing), a wrong code
    keeps it and counts one failure more, so the limit is reached by wrong codes only."""
    clinician = make_clinician()
    creds = clinic_sign_in(client.application.test_client(), clinician)
    limit = client.application.config["LOGIN_MAX_FAILURES_PER_ACCOUNT"]
    body = {"email": clinician.email, "password": "correct horse battery"}
    for _ in range(limit + 2):
        missing = client.post("/v1/auth/token", json=body)
        assert missing.status_code == 401 and missing.json["mfa_required"] is True
    ok = client.post("/v1/auth/token", json={**body, "totp_code": next_code(creds["secret"])})
    assert ok.status_code == 200
    wrong = [
        client.post("/v1/auth/token", json={**body, "totp_code": "000000"}).status_code
        for _ in range(limit)
    ]
    # Each wrong code is an attempt and a failure: the limit is reached halfway.
    assert wrong[: (limit + 1) // 2] == [401] * ((limit + 1) // 2) and wrong[-1] == 429
    right = client.post("/v1/auth/token", json={**body, "totp_code": next_code(creds["secret"])})
    assert right.status_code == 429
