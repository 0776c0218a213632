"""Linking and consents over HTTP (contract: "Consent and disclosures")."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.consenting import sign


def iso(t: datetime) -> str:
    return t.isoformat()


@pytest.fixture
def clinician(make_clinician: Any) -> Any:
    return make_clinician(display_name="Dr Lee", organization="Harbor Clinic")


def body(clinician: Any, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "recipient_id": str(clinician.id),
        "categories": ["symptoms"],
        "purpose": "care_coordination",
        "share_weekly_summary": True,
        "expires_at": iso(datetime.now(UTC) + timedelta(days=30)),
        "signature": "Pat Q. Example",
        "consent_text_version": "2026-01",
    }
    data.update(overrides)
    return data


def test_link_by_invite_code_then_consent(
    client: FlaskClient, patient: Any, patient_headers: Any, clinician: Any
) -> None:
    found = client.get(
        "/v1/clinicians/lookup",
        query_string={"invite_code": clinician.invite_code.lower()},
        headers=patient_headers,
    )
    assert found.status_code == 200
    assert found.json == {
        "id": str(clinician.id),
        "display_name": "Dr Lee",
        "organization": "Harbor Clinic",
    }

    created = client.post("/v1/consents", json=body(clinician), headers=patient_headers)
    assert created.status_code == 201, created.json
    consent = created.json
    assert consent["status"] == "active"
    assert consent["revoked_at"] is None
    assert consent["signed_at"]
    assert consent["patient_id"] == str(patient.id)
    assert consent["recipient_id"] == str(clinician.id)
    assert consent["recipient_name"] == "Dr Lee"
    assert consent["discloser"] == "Waymark"
    assert consent["revocation_statement"].startswith("You may revoke")
    assert consent["categories"] == ["symptoms"]
    assert consent["share_weekly_summary"] is True
    assert consent["signature"] == "Pat Q. Example"
    assert consent["consent_text_version"] == "2026-01"

    one = client.get(f"/v1/consents/{consent['id']}", headers=patient_headers)
    assert one.status_code == 200 and one.json == consent
    listed = client.get("/v1/consents", headers=patient_headers)
    assert [c["id"] for c in listed.json["items"]] == [consent["id"]]
    assert listed.json["next_cursor"] is None


def test_lookup_unknown_code_is_404_and_counted(
    client: FlaskClient, app: Any, patient_headers: Any, clinician: Any
) -> None:
    limit = app.config["CLINICIAN_LOOKUP_MAX_PER_USER"]
    for _ in range(limit):
        miss = client.get(
            "/v1/clinicians/lookup",
            query_string={"invite_code": "ZZZZZZZZZZ"},
            headers=patient_headers,
        )
        assert miss.status_code == 404
        assert miss.headers["Content-Type"] == "application/problem+json"
    throttled = client.get(
        "/v1/clinicians/lookup",
        query_string={"invite_code": clinician.invite_code},
        headers=patient_headers,
    )
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) > 0


def test_there_is_no_directory(
    client: FlaskClient, patient_headers: Any, clinician: Any, auth_headers: Any
) -> None:
    missing = client.get("/v1/clinicians/lookup", headers=patient_headers)
    assert missing.status_code == 422 and "invite_code" in missing.json["errors"]
    assert client.get("/v1/clinicians", headers=patient_headers).status_code in (404, 405)
    # Lookup is for patients; a clinician cannot enumerate colleagues either.
    as_clinician = client.get(
        "/v1/clinicians/lookup",
        query_string={"invite_code": clinician.invite_code},
        headers=auth_headers(clinician),
    )
    assert as_clinician.status_code == 403


def test_invite_code_rotation(
    client: FlaskClient, patient_headers: Any, clinician: Any, auth_headers: Any
) -> None:
    old = clinician.invite_code
    rotated = client.post("/v1/clinician/invite-code/rotate", headers=auth_headers(clinician))
    assert rotated.status_code == 200
    new = rotated.json["invite_code"]
    assert new != old and len(new) == 10
    lookup = "/v1/clinicians/lookup"
    assert (
        client.get(lookup, query_string={"invite_code": old}, headers=patient_headers).status_code
        == 404
    )
    assert client.get(lookup, query_string={"invite_code": new}, headers=patient_headers).json[
        "id"
    ] == str(clinician.id)
    assert (
        client.post("/v1/clinician/invite-code/rotate", headers=patient_headers).status_code == 403
    )


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"expires_at": None}, "expires_at"),
        ({"expires_at": "2030-01-01T00:00:00"}, "expires_at"),  # no offset
        ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),  # in the past
        ({"categories": []}, "categories"),
        ({"categories": ["symptoms", "symptoms"]}, "categories"),
        ({"categories": ["counseling_notes"]}, "categories.0"),
        ({"purpose": "marketing"}, "purpose"),
        ({"signature": "   "}, "signature"),
        ({"consent_text_version": ""}, "consent_text_version"),
        ({"recipient_id": str(uuid.uuid4())}, "recipient_id"),
        ({"status": "active"}, "status"),
        ({"revoked_at": None}, "revoked_at"),
    ],
)
def test_create_validation_names_the_field(
    client: FlaskClient,
    patient_headers: Any,
    clinician: Any,
    overrides: dict[str, Any],
    field: str,
) -> None:
    response = client.post(
        "/v1/consents", json=body(clinician, **overrides), headers=patient_headers
    )
    assert response.status_code == 422, response.json
    assert response.headers["Content-Type"] == "application/problem+json"
    assert field in response.json["errors"]


def test_missing_fields_are_named(client: FlaskClient, patient_headers: Any) -> None:
    response = client.post("/v1/consents", json={}, headers=patient_headers)
    assert response.status_code == 422
    assert {"recipient_id", "categories", "purpose", "signature", "consent_text_version"} <= set(
        response.json["errors"]
    )


def test_treatment_may_have_no_expiry(
    client: FlaskClient, patient_headers: Any, clinician: Any
) -> None:
    response = client.post(
        "/v1/consents",
        json=body(clinician, purpose="treatment", expires_at=None),
        headers=patient_headers,
    )
    assert response.status_code == 201
    assert response.json["expires_at"] is None


def test_replay_and_conflict_with_client_id(
    client: FlaskClient, patient_headers: Any, clinician: Any
) -> None:
    data = body(clinician, id=str(uuid.uuid4()))
    first = client.post("/v1/consents", json=data, headers=patient_headers)
    again = client.post("/v1/consents", json=data, headers=patient_headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json == first.json
    other = client.post(
        "/v1/consents", json={**data, "categories": ["counseling"]}, headers=patient_headers
    )
    assert other.status_code == 409


def test_consents_are_never_edited_over_http(
    client: FlaskClient, patient_headers: Any, clinician: Any
) -> None:
    consent = client.post("/v1/consents", json=body(clinician), headers=patient_headers).json
    for method in ("patch", "put", "delete"):
        response = getattr(client, method)(
            f"/v1/consents/{consent['id']}",
            json={"categories": ["counseling"]},
            headers=patient_headers,
        )
        assert response.status_code == 405


def test_revoke_is_immediate_and_idempotent(
    client: FlaskClient, patient_headers: Any, clinician: Any
) -> None:
    consent = client.post("/v1/consents", json=body(clinician), headers=patient_headers).json
    revoked = client.post(f"/v1/consents/{consent['id']}/revoke", headers=patient_headers)
    assert revoked.status_code == 200
    assert revoked.json["status"] == "revoked"
    assert revoked.json["revoked_at"] is not None
    again = client.post(f"/v1/consents/{consent['id']}/revoke", headers=patient_headers)
    assert again.status_code == 200 and again.json["revoked_at"] == revoked.json["revoked_at"]
    listed = client.get("/v1/consents", query_string={"status": "active"}, headers=patient_headers)
    assert listed.json["items"] == []


def test_other_users_cannot_reach_a_consent(
    client: FlaskClient,
    session: Any,
    patient: Any,
    clinician: Any,
    make_patient: Any,
    make_admin: Any,
    auth_headers: Any,
) -> None:
    consent = sign(session, patient=patient, clinician=clinician)
    stranger = auth_headers(make_patient())
    for path in (f"/v1/consents/{consent.id}",):
        assert client.get(path, headers=stranger).status_code == 404
        assert client.get(path, headers=auth_headers(clinician)).status_code == 403
        assert client.get(path, headers=auth_headers(make_admin())).status_code == 403
        assert client.get(path).status_code == 401
    assert client.post(f"/v1/consents/{consent.id}/revoke", headers=stranger).status_code == 404
    assert client.get("/v1/consents", headers=stranger).json["items"] == []


def test_status_reflects_expiry(
    client: FlaskClient, session: Any, patient: Any, patient_headers: Any, clinician: Any
) -> None:
    sign(
        session,
        patient=patient,
        clinician=clinician,
        now=datetime.now(UTC) - timedelta(days=2),
        days=1,
    )
    items = client.get("/v1/consents", headers=patient_headers).json["items"]
    assert [c["status"] for c in items] == ["expired"]
    bad = client.get("/v1/consents", query_string={"status": "paused"}, headers=patient_headers)
    assert bad.status_code == 422 and "status" in bad.json["errors"]
