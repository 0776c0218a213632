"""The audit log: every attempt on another person's data leaves a row, allowed or refused, even
when the request fails; admins list and filter it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.audit.models import AuditEvent
from api.consent.models import ImmutableRecord
from tests.consenting import sign


def rows(session: Session) -> list[AuditEvent]:
    session.expire_all()
    return list(session.scalars(select(AuditEvent).order_by(AuditEvent.at)))


def test_allowed_and_refused_attempts_are_recorded(
    client: FlaskClient,
    session: Session,
    patient: Any,
    make_clinician: Any,
    make_admin: Any,
    auth_headers: Any,
) -> None:
    clinician = make_clinician()
    consent = sign(session, patient=patient, clinician=clinician)
    alert_path = f"/v1/clinician/alerts/{uuid.uuid4()}/acknowledge"
    ok = client.get(
        "/v1/clinician/patients",
        headers={**auth_headers(clinician), "X-Request-ID": "req-allowed-1"},
    )
    assert ok.status_code == 200
    assert client.post(alert_path, headers=auth_headers(clinician)).status_code == 404
    assert client.get("/v1/clinician/patients", headers=auth_headers(patient)).status_code == 403
    assert client.get("/v1/clinician/patients").status_code == 401
    bad = client.get(
        "/v1/clinician/patients", query_string={"limit": 0}, headers=auth_headers(clinician)
    )
    assert bad.status_code == 422

    recorded = rows(session)
    summary = [(r.action, r.actor_id, r.actor_role, r.outcome, r.status) for r in recorded]
    assert summary == [
        ("clinician.roster.list", clinician.id, "clinician", "allowed", None),
        ("clinician.alerts.acknowledge", clinician.id, "clinician", "denied", 404),
        ("clinician.roster.list", patient.id, "patient", "denied", 403),
        ("clinician.roster.list", None, None, "denied", 401),
        ("clinician.roster.list", clinician.id, "clinician", "failed", 422),
    ]
    assert recorded[0].request_id == "req-allowed-1"
    assert recorded[0].client_address == "127.0.0.1"
    assert str(recorded[1].target_id) == alert_path.split("/")[4]
    assert consent.id  # the consent exists; the roster read still disclosed no category data

    admin = auth_headers(make_admin())
    listed = client.get("/v1/admin/audit", headers=admin)
    assert listed.status_code == 200
    assert len(listed.json["items"]) == 5
    assert listed.json["items"][0]["status"] == 422  # newest first
    denied = client.get("/v1/admin/audit", query_string={"outcome": "denied"}, headers=admin)
    assert {i["status"] for i in denied.json["items"]} == {401, 403, 404}
    by_actor = client.get(
        "/v1/admin/audit", query_string={"actor_id": str(patient.id)}, headers=admin
    )
    assert [i["status"] for i in by_actor.json["items"]] == [403]
    assert client.get("/v1/admin/audit", headers=auth_headers(clinician)).status_code == 403


def test_filters_by_patient_and_time_and_pages(
    client: FlaskClient, session: Session, make_admin: Any, auth_headers: Any
) -> None:
    from api.audit.services import record_access

    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    patient_id = uuid.uuid4()
    for i in range(5):
        record_access(
            session,
            actor_id=uuid.uuid4(),
            actor_role="clinician",
            action="x",
            patient_id=patient_id if i % 2 == 0 else None,
            target_id=None,
            outcome="allowed",
            status=None,
            request_id=None,
            client_address=None,
            now=t0 + timedelta(hours=i),
        )
    session.commit()
    admin = auth_headers(make_admin())
    mine = client.get(
        "/v1/admin/audit", query_string={"patient_id": str(patient_id), "limit": 2}, headers=admin
    ).json
    rest = client.get(
        "/v1/admin/audit",
        query_string={"patient_id": str(patient_id), "limit": 2, "cursor": mine["next_cursor"]},
        headers=admin,
    ).json
    assert [i["at"] for i in mine["items"] + rest["items"]] == [
        (t0 + timedelta(hours=h)).isoformat() for h in (4, 2, 0)
    ]
    window = client.get(
        "/v1/admin/audit",
        query_string={
            "from": (t0 + timedelta(hours=1)).isoformat(),
            "to": (t0 + timedelta(hours=3)).isoformat(),
        },
        headers=admin,
    ).json
    assert len(window["items"]) == 2
    bad = client.get("/v1/admin/audit", query_string={"outcome": "maybe"}, headers=admin)
    assert bad.status_code == 422 and "outcome" in bad.json["errors"]


def test_the_audit_log_is_append_only(session: Session) -> None:
    from api.audit.services import record_access

    row = record_access(
        session,
        actor_id=None,
        actor_role=None,
        action="x",
        patient_id=None,
        target_id=None,
        outcome="denied",
        status=401,
        request_id=None,
        client_address=None,
        now=datetime.now(UTC),
    )
    session.commit()
    row.outcome = "allowed"
    with pytest.raises(ImmutableRecord):
        session.flush()
