"""42 CFR part 2 (2024 text): the ledger's purpose, consents that outlive their recipient's
account, the patient's name at signing, and consent texts that resolve and never change."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth.models import User
from api.consent import texts as consent_texts
from api.consent.models import Consent
from api.disclosures.models import Disclosure
from tests.consenting import consent_body, sign

PASSWORD = "correct horse battery"


def test_every_ledger_row_records_the_consents_purpose(
    client: FlaskClient,
    session: Session,
    make_patient: Callable[..., User],
    make_clinician: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
) -> None:
    clinician = make_clinician()
    for purpose in ("treatment", "care_coordination", "patient_request"):
        patient = make_patient()
        consent = sign(session, patient=patient, clinician=clinician, purpose=purpose)
        resp = client.get(
            f"/v1/clinician/patients/{patient.id}/checkins", headers=auth_headers(clinician)
        )
        assert resp.status_code == 200
        row = session.scalars(select(Disclosure).where(Disclosure.consent_id == consent.id)).one()
        assert row.purpose == purpose
        # The patient's accounting of disclosures says it too.
        listed = client.get("/v1/disclosures", headers=auth_headers(patient)).get_json()
        assert [d["purpose"] for d in listed["items"]] == [purpose]


def test_a_consent_and_its_ledger_survive_the_recipients_erasure(
    client: FlaskClient,
    session: Session,
    make_patient: Callable[..., User],
    make_clinician: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
) -> None:
    patient = make_patient(display_name="Pat Before")
    clinician = make_clinician(display_name="Dr. Gone", organization="Gone Clinic")
    consent = sign(session, patient=patient, clinician=clinician, purpose="treatment")
    clinician_headers = auth_headers(clinician)
    assert (
        client.get(
            f"/v1/clinician/patients/{patient.id}/checkins", headers=clinician_headers
        ).status_code
        == 200
    )
    erased = client.delete("/v1/me", json={"password": PASSWORD}, headers=clinician_headers)
    assert erased.status_code == 204
    session.expunge_all()
    assert session.scalar(select(User.id).where(User.id == clinician.id)) is None

    # The patient still holds the signed consent, naming the recipient as at signing.
    headers = auth_headers(patient)
    listed = client.get("/v1/consents", headers=headers).get_json()["items"]
    assert [c["id"] for c in listed] == [str(consent.id)]
    assert listed[0]["recipient_name"] == "Dr. Gone"
    assert listed[0]["recipient_organization"] == "Gone Clinic"
    assert listed[0]["categories"] == ["symptoms"]
    # And the ledger row still points at it.
    ledger = client.get("/v1/disclosures", headers=headers).get_json()["items"]
    assert [(d["consent_id"], d["recipient"]["display_name"]) for d in ledger] == [
        (str(consent.id), "Dr. Gone")
    ]
    assert session.scalars(select(Consent.id).where(Consent.id == consent.id)).one()


def test_the_patients_name_at_signing_is_kept(
    client: FlaskClient,
    session: Session,
    patient: User,
    patient_headers: dict[str, str],
    make_clinician: Callable[..., User],
) -> None:
    clinician = make_clinician()
    name_then = patient.display_name
    consent = sign(session, patient=patient, clinician=clinician)
    patient.display_name = "Someone Renamed"
    session.commit()
    body = client.get(f"/v1/consents/{consent.id}", headers=patient_headers).get_json()
    assert body["patient_name"] == name_then != "Someone Renamed"


def test_signing_needs_a_published_consent_text(
    client: FlaskClient, patient_headers: dict[str, str], make_clinician: Callable[..., User]
) -> None:
    body = consent_body(make_clinician(), consent_text_version="1999-99", expires_at=None)
    body["purpose"] = "treatment"
    body["recipient_id"] = str(body["recipient_id"])
    resp = client.post("/v1/consents", json=body, headers=patient_headers)
    assert resp.status_code == 422
    assert "consent_text_version" in resp.get_json()["errors"]


def test_every_consent_text_version_is_served_in_full(client: FlaskClient) -> None:
    listed = client.get("/v1/consent-texts").get_json()
    assert [t["version"] for t in listed] == list(consent_texts.PUBLISHED)
    for version in consent_texts.PUBLISHED:
        resp = client.get(f"/v1/consent-texts/{version}")
        assert resp.status_code == 200
        body = resp.get_json()
        assert hashlib.sha256(body["text"].encode()).hexdigest() == body["sha256"]
    assert client.get("/v1/consent-texts/nope").status_code == 404


@pytest.mark.parametrize("version", list(consent_texts.PUBLISHED))
def test_each_text_holds_the_statements_the_2024_rule_requires(version: str) -> None:
    text = consent_texts.get(version)
    assert text is not None
    words = " ".join(text.text.split()).lower()
    required = [
        # 2.32 / 2.31(a)(4): redisclosure under HIPAA for TPO by a covered entity or BA...
        "covered entity or business associate",
        "treatment, payment or health care operations",
        # ...except in proceedings against the patient.
        "proceedings against me",
        # The consequences of refusing to sign.
        "do not depend on whether i sign",
        # Revocation and expiry (2.31(a)(6), (7)).
        "revoke this consent at any time",
        "expiry date",
    ]
    assert [phrase for phrase in required if phrase not in words] == []


def test_a_published_text_cannot_change_silently(monkeypatch: pytest.MonkeyPatch) -> None:
    consent_texts.get.cache_clear()
    monkeypatch.setitem(consent_texts.PUBLISHED, "2026-01", (datetime.now(UTC).date(), "0" * 64))
    with pytest.raises(consent_texts.TextChanged):
        consent_texts.get("2026-01")
    consent_texts.get.cache_clear()


def _scopes_ok(scopes: list[dict[str, Any]], consent: Consent) -> None:
    assert [s["consent_id"] for s in scopes] == [str(consent.id)]
    scope = scopes[0]
    assert scope["recipient"]["id"] == str(consent.recipient_id)
    assert scope["categories"] == consent.categories
    assert scope["purpose"] == consent.purpose
    assert scope["data_from"] is not None
    assert "expires_at" in scope
    assert scope["consent_text_url"].endswith(f"/v1/consent-texts/{consent.consent_text_version}")


def test_reads_and_alerts_carry_the_consent_scope(
    client: FlaskClient,
    session: Session,
    patient: User,
    make_clinician: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
) -> None:
    clinician = make_clinician()
    consent = sign(
        session,
        patient=patient,
        clinician=clinician,
        categories=("symptoms", "medications", "counseling"),
        now=datetime.now(UTC) - timedelta(days=1),
    )
    headers = auth_headers(clinician)
    for path in ("checkins", "doses", "counseling-sessions", "cows"):
        body = client.get(f"/v1/clinician/patients/{patient.id}/{path}", headers=headers)
        assert body.status_code == 200, path
        _scopes_ok(body.get_json()["consent_scopes"], consent)
    # A page that disclosed nothing carries no scope, but says so (an empty list).
    alerts = client.get("/v1/clinician/alerts", headers=headers).get_json()
    assert alerts["consent_scopes"] == []


def test_a_summary_carries_the_consent_scope(
    client: FlaskClient,
    session: Session,
    patient: User,
    make_clinician: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
) -> None:
    clinician = make_clinician()
    consent = sign(session, patient=patient, clinician=clinician)
    body = client.get(
        f"/v1/clinician/patients/{patient.id}/summary", headers=auth_headers(clinician)
    ).get_json()
    scope = body["consent"]
    assert scope["id"] == str(consent.id)
    assert scope["recipient"]["display_name"] == clinician.display_name
    assert scope["discloser"] == consent.discloser
    assert scope["data_from"] is not None
    assert scope["consent_text_version"] == consent.consent_text_version


def test_an_alert_page_that_shows_an_alert_carries_its_consent_scope(
    client: FlaskClient,
    session: Session,
    patient: User,
    make_clinician: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
) -> None:
    from api.alerts import services as alerts

    clinician = make_clinician()
    now = datetime.now(UTC)
    consent = sign(
        session,
        patient=patient,
        clinician=clinician,
        categories=("symptoms", "medications", "counseling"),
        now=now - timedelta(days=2),
    )
    alerts.raise_alert(
        session,
        patient_id=patient.id,
        kind="withdrawal_threshold",
        category="symptoms",
        episode_key="e",
        now=now - timedelta(hours=1),
    )
    answer = client.get("/v1/clinician/alerts", headers=auth_headers(clinician))
    assert answer.status_code == 200
    body = answer.get_json()
    assert [a["patient_id"] for a in body["items"]] == [str(patient.id)]
    _scopes_ok(body["consent_scopes"], consent)
    assert body["notice"] and answer.headers["X-Redisclosure-Notice"]


def test_a_delivered_weekly_summary_carries_its_consent_scope(
    app: Any,
    client: FlaskClient,
    session: Session,
    patient: User,
    make_clinician: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
) -> None:
    from api.summaries import services as summaries

    clinician = make_clinician()
    now = datetime.now(UTC)
    consent = sign(
        session,
        patient=patient,
        clinician=clinician,
        categories=("symptoms", "medications"),
        now=now - timedelta(days=20),
        data_from=now - timedelta(days=25),
        share_weekly_summary=True,
    )
    config = summaries.SummaryConfig.from_mapping(app.config)
    summaries.build_weekly_batch(session, now=now, config=config, after=None, limit=50)
    assert summaries.deliver_weekly_batch(session, now=now, limit=50) == (1, 0)
    session.commit()
    headers = auth_headers(clinician)
    listed = client.get("/v1/clinician/summaries", headers=headers)
    assert listed.status_code == 200 and listed.headers["X-Redisclosure-Notice"]
    (item,) = listed.get_json()["items"]
    answer = client.get(f"/v1/clinician/summaries/{item['id']}", headers=headers)
    assert answer.status_code == 200 and answer.headers["X-Redisclosure-Notice"]
    scope = answer.get_json()["content"]["consent"]
    assert scope["id"] == str(consent.id)
    assert scope["categories"] == ["medications", "symptoms"]
    assert scope["purpose"] == consent.purpose
    assert scope["discloser"] == consent.discloser
    assert scope["recipient"]["id"] == str(clinician.id)
    assert scope["data_from"].startswith((now - timedelta(days=25)).date().isoformat())
    assert scope["consent_text_version"] == consent.consent_text_version
    assert scope["share_weekly_summary"] is True
    assert answer.get_json()["content"]["redisclosure_notice"]
