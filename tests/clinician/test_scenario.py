"""Issue 5, "Done when": a patient links a clinician, consents to symptoms only for 30 days, the
clinician reads check-ins (allowed, disclosed, audited) and doses (403), the patient revokes, the
next read is 404, and the patient's accounting lists exactly the reads that happened."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask.testing import FlaskClient

PASSWORD = "correct horse battery"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sign_in(client: FlaskClient, email: str) -> dict[str, str]:
    pair = client.post("/v1/auth/token", json={"email": email, "password": PASSWORD})
    assert pair.status_code == 200
    return bearer(pair.json["access_token"])


def test_done_when(client: FlaskClient, app: Any, make_admin: Any, auth_headers: Any) -> None:
    admin = auth_headers(make_admin())
    made = client.post(
        "/v1/admin/clinicians",
        json={
            "email": "dr.lee@example.test",
            "display_name": "Dr Lee",
            "organization": "Harbor Clinic",
            "password": PASSWORD,
        },
        headers=admin,
    )
    assert made.status_code == 201
    invite_code = made.json["invite_code"]
    registered = client.post(
        "/v1/auth/register",
        json={
            "email": "pat@example.test",
            "password": PASSWORD,
            "display_name": "Pat",
            "timezone": "America/Chicago",
        },
    )
    assert registered.status_code == 202
    patient = sign_in(client, "pat@example.test")
    patient_id = client.get("/v1/me", headers=patient).json["id"]
    clinician = sign_in(client, "dr.lee@example.test")

    # The patient links the clinician by invite code, and consents to symptoms for 30 days.
    found = client.get(
        "/v1/clinicians/lookup", query_string={"invite_code": invite_code}, headers=patient
    )
    assert found.status_code == 200 and found.json["display_name"] == "Dr Lee"
    consent = client.post(
        "/v1/consents",
        json={
            "recipient_id": found.json["id"],
            "categories": ["symptoms"],
            "purpose": "care_coordination",
            "share_weekly_summary": False,
            "expires_at": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
            "signature": "Pat Example",
            "consent_text_version": "2026-01",
        },
        headers=patient,
    )
    assert consent.status_code == 201 and consent.json["status"] == "active"
    checkin = client.post(
        "/v1/checkins",
        json={
            "recorded_at": datetime.now(UTC).isoformat(),
            "symptoms": {"anxiety": 6, "insomnia": 4},
            "craving": 7,
            "note": "rough night",
        },
        headers=patient,
    )
    assert checkin.status_code == 201, checkin.json

    # Check-ins: allowed, as the patient sees them, with the redisclosure notice.
    base = f"/v1/clinician/patients/{patient_id}"
    read = client.get(f"{base}/checkins", headers=clinician)
    assert read.status_code == 200, read.json
    assert [c["id"] for c in read.json["items"]] == [checkin.json["id"]]
    assert (
        read.json["items"][0]
        == client.get(f"/v1/checkins/{checkin.json['id']}", headers=patient).json
    )
    assert read.json["notice"] == app.config["REDISCLOSURE_NOTICE"]
    assert read.headers["X-Redisclosure-Notice"].startswith("This record which has been disclosed")

    # Doses: not consented; the refusal names the category.
    doses = client.get(f"{base}/doses", headers=clinician)
    assert doses.status_code == 403
    assert doses.json["missing_category"] == "medications"

    # The patient revokes; the next read finds no such patient.
    revoked = client.post(f"/v1/consents/{consent.json['id']}/revoke", headers=patient)
    assert revoked.status_code == 200 and revoked.json["status"] == "revoked"
    after = client.get(f"{base}/checkins", headers=clinician)
    assert after.status_code == 404
    assert "rough night" not in after.get_data(as_text=True)

    # The accounting lists exactly the one read that disclosed data.
    accounting = client.get("/v1/disclosures", headers=patient).json["items"]
    assert len(accounting) == 1
    entry = accounting[0]
    assert entry["recipient"]["id"] == found.json["id"]
    assert entry["consent_id"] == consent.json["id"]
    assert entry["kind"] == "read"
    assert entry["categories"] == ["symptoms"]
    assert entry["data_from"] == consent.json["signed_at"]
    assert datetime.fromisoformat(entry["at"]) <= datetime.fromisoformat(revoked.json["revoked_at"])

    # The audit trail has all three attempts, allowed and refused, with no health values.
    audit = client.get("/v1/admin/audit", query_string={"patient_id": patient_id}, headers=admin)
    trail = [(e["action"], e["outcome"], e["status"]) for e in reversed(audit.json["items"])]
    assert trail == [
        ("clinician.checkins.read", "allowed", None),
        ("clinician.doses.read", "denied", 403),
        ("clinician.checkins.read", "denied", 404),
    ]
    assert "rough night" not in audit.get_data(as_text=True)
