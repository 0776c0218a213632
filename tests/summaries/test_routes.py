"""GET /v1/clinician/patients/{id}/summary over the database: the demo taper recomputed
independently, the consent gate per category, formats, the ledger and the audit trail."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.audit.models import AuditEvent
from api.consent import services as consent_services
from api.disclosures.models import Disclosure
from tests.consenting import sign
from tests.support.demo import DemoPatient, generate_demo
from tests.support.demo_seed import seed_demo
from tests.support.queries import count_queries
from tests.support.test_demo import Expected, leaves

ALL = ["symptoms", "medications", "counseling"]


@pytest.fixture
def demo() -> DemoPatient:
    return generate_demo(seed=6)


@pytest.fixture
def world(
    session: Session,
    demo: DemoPatient,
    make_patient: Callable[..., Any],
    make_clinician: Callable[..., Any],
    auth_headers: Callable[[Any], dict[str, str]],
) -> dict[str, Any]:
    patient = make_patient(display_name="Demo Patient (taper)", timezone=demo.timezone)
    clinician = make_clinician()
    seed_demo(session, demo, patient_id=patient.id, created_at=demo.start)
    session.commit()
    consent = sign(
        session,
        patient=patient,
        clinician=clinician,
        categories=ALL,
        now=datetime.now(UTC) - timedelta(days=1),
        days=60,
        data_from=demo.start - timedelta(days=1),
    )
    return {
        "patient": patient,
        "clinician": clinician,
        "consent": consent,
        "headers": auth_headers(clinician),
    }


def url(world: dict[str, Any], demo: DemoPatient, **params: str) -> str:
    query = {"from": demo.start.isoformat(), "to": demo.end.isoformat(), **params}
    encoded = "&".join(f"{k}={v.replace('+', '%2B')}" for k, v in query.items())
    return f"/v1/clinician/patients/{world['patient'].id}/summary?{encoded}"


def test_demo_summary_over_the_database_is_recomputed_independently(
    client: FlaskClient, world: dict[str, Any], demo: DemoPatient
) -> None:
    answer = client.get(url(world, demo), headers=world["headers"])
    assert answer.status_code == 200, answer.json
    body = answer.json
    got, want = leaves(body["sections"]), leaves(Expected(demo).sections())
    assert set(got) == set(want), set(got) ^ set(want)
    for path, value in want.items():
        if isinstance(value, float) or isinstance(got[path], float):
            assert math.isclose(got[path], value, abs_tol=1e-9), path
        else:
            assert got[path] == value, path
    assert body["patient"]["display_name"] == "Demo Patient (taper)"
    assert body["consent"]["id"] == str(world["consent"].id)
    assert body["redisclosure_notice"].startswith("This record which has been disclosed")
    assert answer.headers["X-Redisclosure-Notice"].startswith("This record")
    assert answer.headers["Cache-Control"] == "no-store, private"


def test_a_summary_is_a_disclosure_and_an_audited_read(
    client: FlaskClient, session: Session, world: dict[str, Any], demo: DemoPatient
) -> None:
    assert client.get(url(world, demo), headers=world["headers"]).status_code == 200
    (row,) = session.scalars(select(Disclosure).where(Disclosure.patient_id == world["patient"].id))
    assert row.kind == "summary" and sorted(row.categories) == sorted(ALL)
    assert row.consent_id == world["consent"].id
    assert (row.data_from, row.data_to) == (demo.start, demo.end)
    audit = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "clinician.summary.read")
    ).all()
    assert [(a.outcome, a.patient_id) for a in audit] == [("allowed", world["patient"].id)]


def test_withheld_categories_say_so_and_leak_nothing(
    client: FlaskClient,
    session: Session,
    world: dict[str, Any],
    demo: DemoPatient,
    make_clinician: Callable[..., Any],
    auth_headers: Callable[[Any], dict[str, str]],
) -> None:
    partial = make_clinician()
    sign(
        session,
        patient=world["patient"],
        clinician=partial,
        categories=["counseling"],
        now=datetime.now(UTC) - timedelta(days=1),
        data_from=demo.start - timedelta(days=1),
    )
    answer = client.get(url(world, demo), headers=auth_headers(partial))
    assert answer.status_code == 200
    sections = answer.json["sections"]
    assert sections["medications"] == {
        "status": "withheld",
        "category": "medications",
        "reason": sections["medications"]["reason"],
    }
    assert sections["counseling"]["status"] == "included"
    text = answer.get_data(as_text=True)
    assert "Buprenorphine" not in text and "anxiety" not in text
    (row,) = session.scalars(select(Disclosure).where(Disclosure.recipient_id == partial.id))
    assert row.categories == ["counseling"]


def test_a_consent_window_that_starts_inside_the_period_is_respected(
    client: FlaskClient,
    session: Session,
    world: dict[str, Any],
    demo: DemoPatient,
    make_clinician: Callable[..., Any],
    auth_headers: Callable[[Any], dict[str, str]],
) -> None:
    later = make_clinician()
    sign(
        session,
        patient=world["patient"],
        clinician=later,
        categories=ALL,
        now=datetime.now(UTC) - timedelta(days=1),
        data_from=demo.start + timedelta(days=35),
    )
    body = client.get(url(world, demo), headers=auth_headers(later)).json
    checkins = body["sections"]["checkins"]
    assert checkins["days_in_period"] == 7
    assert checkins["data_window"]["from"].startswith("2026-11-09")
    (row,) = session.scalars(select(Disclosure).where(Disclosure.recipient_id == later.id))
    assert row.data_from == demo.start + timedelta(days=35)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"from": "2026-11-10T00:00:00+00:00", "to": "2026-11-01T00:00:00+00:00"}, "to"),
        ({"from": "2025-01-01T00:00:00+00:00", "to": "2026-11-01T00:00:00+00:00"}, "to"),
        ({"from": "2026-11-01"}, "from"),
        ({"format": "docx"}, "format"),
        ({"colour": "blue"}, "colour"),  # unknown query parameters are refused, not ignored
    ],
)
def test_bad_periods_and_formats_are_422_naming_the_field(
    client: FlaskClient, world: dict[str, Any], query: dict[str, str], field: str
) -> None:
    params = "&".join(f"{k}={v.replace('+', '%2B')}" for k, v in query.items())
    answer = client.get(
        f"/v1/clinician/patients/{world['patient'].id}/summary?{params}", headers=world["headers"]
    )
    assert answer.status_code == 422
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert field in answer.json["errors"]


def test_no_consent_revoked_or_wrong_role_is_refused(
    client: FlaskClient,
    session: Session,
    world: dict[str, Any],
    demo: DemoPatient,
    make_clinician: Callable[..., Any],
    auth_headers: Callable[[Any], dict[str, str]],
) -> None:
    stranger = make_clinician()
    assert client.get(url(world, demo), headers=auth_headers(stranger)).status_code == 404
    patient_headers = auth_headers(world["patient"])
    assert client.get(url(world, demo), headers=patient_headers).status_code == 403
    consent_services.revoke_consent(
        session,
        patient_id=world["patient"].id,
        consent_id=world["consent"].id,
        now=datetime.now(UTC),
    )
    session.commit()
    assert client.get(url(world, demo), headers=world["headers"]).status_code == 404
    denied = session.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "clinician.summary.read", AuditEvent.outcome == "denied"
        )
    ).all()
    assert len(denied) == 3


def test_html_and_pdf_by_parameter_or_accept(
    client: FlaskClient, world: dict[str, Any], demo: DemoPatient
) -> None:
    page = client.get(url(world, demo, format="html"), headers=world["headers"])
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "Demo Patient (taper)" in html and "<svg" in html and "42 CFR part 2" in html
    negotiated = client.get(url(world, demo), headers={**world["headers"], "Accept": "text/html"})
    assert negotiated.mimetype == "text/html"
    pdf = client.get(url(world, demo, format="pdf"), headers=world["headers"])
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    assert pdf.data.startswith(b"%PDF")
    assert "Demo" not in pdf.headers["Content-Disposition"]  # no name in the file name


def test_html_and_pdf_at_paths_of_their_own_answer_one_declared_media_type(
    strict_client: FlaskClient, world: dict[str, Any], demo: DemoPatient
) -> None:
    # A generated client parses an operation's answers as its first media type; these paths have
    # one each (the strict client checks it is the declared one) and take the period alone.
    base = url(world, demo).replace("/summary?", "/summary{}?")
    page = strict_client.get(base.format(".html"), headers=world["headers"])
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert "Demo Patient (taper)" in page.get_data(as_text=True)
    pdf = strict_client.get(base.format(".pdf"), headers=world["headers"])
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    assert pdf.data.startswith(b"%PDF") and pdf.headers["Content-Disposition"].startswith("inline")
    assert pdf.headers["Cache-Control"] == "no-store, private"
    mixed = strict_client.get(base.format(".pdf") + "&format=html", headers=world["headers"])
    assert mixed.status_code == 422 and "format" in mixed.json["errors"]


def test_the_number_of_queries_does_not_grow_with_the_period(
    app: Flask, client: FlaskClient, world: dict[str, Any], demo: DemoPatient
) -> None:
    counts = []
    for days in (7, 42, 366):
        start = demo.end - timedelta(days=days)
        query = (
            url(world, demo).split("?")[0]
            + "?"
            + (
                f"from={start.isoformat().replace('+', '%2B')}"
                f"&to={demo.end.isoformat().replace('+', '%2B')}"
            )
        )
        with count_queries(
            app.extensions["db"].engine, skip=("SAVEPOINT", "RELEASE")
        ) as statements:
            assert client.get(query, headers=world["headers"]).status_code == 200
        counts.append(len(statements))
    assert counts[0] == counts[1] == counts[2], counts
    assert counts[0] <= 25
