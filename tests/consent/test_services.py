"""Consents and the gate, at the service level."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.consent import services
from api.consent.gate import CategoryNotConsented, Gate, is_in_force
from api.consent.models import Consent, ImmutableRecord
from api.disclosures.services import record_disclosure
from api.errors import Conflict, NotFound, TooManyRequests, ValidationError
from api.ratelimit import DatabaseCounter
from tests.consenting import SIGNATURE, TEXT_VERSION, consent_body, sign
from tests.support.transactions import own_transactions

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def pair(make_patient: Any, make_clinician: Any) -> tuple[Any, Any]:
    return make_patient(display_name="Pat"), make_clinician(display_name="Dr Lee")


def test_a_consent_records_all_ten_elements(session: Session, pair: Any) -> None:
    patient, clinician = pair
    consent = sign(
        session,
        patient=patient,
        clinician=clinician,
        categories=["medications", "symptoms"],
        now=T0,
        days=30,
        purpose="treatment",
    )
    stored = session.get(Consent, consent.id)
    assert stored is not None
    assert stored.patient_id == patient.id  # 1 (and the signing account, 8)
    assert stored.discloser == "Test Program"  # 2
    assert stored.categories == ["medications", "symptoms"]  # 3
    assert (stored.recipient_id, stored.recipient_name) == (clinician.id, "Dr Lee")  # 4
    assert stored.recipient_organization == "Clinic"
    assert stored.purpose == "treatment"  # 5
    assert stored.revocation_statement  # 6
    assert stored.expires_at == T0 + timedelta(days=30)  # 7
    assert stored.signature == SIGNATURE  # 8
    assert stored.signed_at == T0  # 9
    assert stored.consent_text_version == TEXT_VERSION  # 10
    assert stored.revoked_at is None


def test_no_expiry_only_for_treatment(session: Session, pair: Any) -> None:
    patient, clinician = pair
    treatment = sign(session, patient=patient, clinician=clinician, days=None, purpose="treatment")
    assert treatment.expires_at is None
    # The database refuses it too, whatever the code path.
    row = Consent(
        patient_id=patient.id,
        discloser="x",
        recipient_id=clinician.id,
        recipient_name="x",
        purpose="patient_request",
        revocation_statement="x",
        signature="x",
        patient_name="x",
        consent_text_version="x",
        signed_at=T0,
    )
    with session.begin_nested():
        session.add(row)
        with pytest.raises(IntegrityError):
            session.flush()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"expires_at": T0 - timedelta(seconds=1)}, "expires_at"),
        ({"expires_at": T0}, "expires_at"),
        ({"data_from": T0 + timedelta(seconds=1)}, "data_from"),
    ],
)
def test_times_are_checked_against_now(
    session: Session, pair: Any, change: dict[str, Any], field: str
) -> None:
    patient, clinician = pair
    body = consent_body(clinician, expires_at=T0 + timedelta(days=1))
    body.update(change)
    with pytest.raises(ValidationError) as err:
        services.create_consent(
            session, patient=patient, body=body, discloser="p", revocation_statement="r", now=T0
        )
    assert field in err.value.errors


def test_recipient_must_be_a_clinician(session: Session, pair: Any, make_patient: Any) -> None:
    patient, _ = pair
    for recipient_id in (make_patient().id, uuid.uuid4()):
        body = consent_body(patient, expires_at=T0 + timedelta(days=1), recipient_id=recipient_id)
        with pytest.raises(ValidationError) as err:
            services.create_consent(
                session, patient=patient, body=body, discloser="p", revocation_statement="r", now=T0
            )
        assert "recipient_id" in err.value.errors


def test_a_new_consent_to_the_same_recipient_replaces_the_old(
    session: Session, pair: Any, make_clinician: Any
) -> None:
    patient, clinician = pair
    other = make_clinician()
    wide = sign(
        session, patient=patient, clinician=clinician, categories=["symptoms", "counseling"]
    )
    elsewhere = sign(session, patient=patient, clinician=other, categories=["symptoms"])
    narrow = sign(session, patient=patient, clinician=clinician, categories=["symptoms"])
    session.refresh(wide)
    assert wide.revoked_at is not None
    assert narrow.replaces_id == wide.id
    assert session.get(Consent, elsewhere.id).revoked_at is None  # type: ignore[union-attr]
    gate = Gate.open(session, clinician_id=clinician.id, now=datetime.now(UTC))
    with pytest.raises(CategoryNotConsented):
        gate.grant(patient.id, "counseling")


def test_replay_with_the_same_id(session: Session, pair: Any) -> None:
    patient, clinician = pair
    body = consent_body(clinician, expires_at=T0 + timedelta(days=1), id=uuid.uuid4())
    kw = {"discloser": "p", "revocation_statement": "r", "now": T0}
    first, created = services.create_consent(session, patient=patient, body=dict(body), **kw)
    again, created_again = services.create_consent(session, patient=patient, body=dict(body), **kw)
    assert (created, created_again) == (True, False)
    assert again.id == first.id and again.revoked_at is None  # a replay does not replace itself
    with pytest.raises(Conflict):
        services.create_consent(
            session, patient=patient, body={**body, "categories": ["counseling"]}, **kw
        )


def test_a_signed_consent_is_never_edited(session: Session, pair: Any) -> None:
    patient, clinician = pair
    consent = sign(session, patient=patient, clinician=clinician)
    consent.expires_at = consent.expires_at + timedelta(days=365)  # type: ignore[operator]
    with pytest.raises(ImmutableRecord):
        session.flush()
    session.rollback()
    consent = session.get(Consent, consent.id)  # type: ignore[assignment]
    consent.category_rows[0].category = "medications"
    with pytest.raises(ImmutableRecord):
        session.flush()


def test_revoke_is_at_once_and_idempotent(session: Session, pair: Any) -> None:
    patient, clinician = pair
    consent = sign(session, patient=patient, clinician=clinician, now=T0)
    at = T0 + timedelta(hours=1)
    revoked = services.revoke_consent(session, patient_id=patient.id, consent_id=consent.id, now=at)
    assert revoked.revoked_at == at
    again = services.revoke_consent(
        session, patient_id=patient.id, consent_id=consent.id, now=at + timedelta(hours=1)
    )
    assert again.revoked_at == at
    assert not is_in_force(again, T0 + timedelta(minutes=1))  # revocation counts for good
    assert again.status_at(at) == "revoked"


def test_revocation_is_stamped_after_the_reads_it_waited_for(session: Session, pair: Any) -> None:
    patient, clinician = pair
    consent = sign(session, patient=patient, clinician=clinician, now=T0)
    read_at = T0 + timedelta(minutes=10)
    record_disclosure(
        session,
        patient_id=patient.id,
        recipient_id=clinician.id,
        consent_id=consent.id,
        kind="read",
        categories=["symptoms"],
        data_from=T0,
        data_to=read_at,
        now=read_at,
    )
    # The revoke read its clock before the read committed; it is stamped after the read.
    revoked = services.revoke_consent(
        session, patient_id=patient.id, consent_id=consent.id, now=read_at - timedelta(seconds=1)
    )
    assert revoked.revoked_at == read_at


def test_another_patient_cannot_see_or_revoke(
    session: Session, pair: Any, make_patient: Any
) -> None:
    patient, clinician = pair
    consent = sign(session, patient=patient, clinician=clinician)
    stranger = make_patient()
    with pytest.raises(NotFound):
        services.get_consent(session, patient_id=stranger.id, consent_id=consent.id)
    with pytest.raises(NotFound):
        services.revoke_consent(
            session, patient_id=stranger.id, consent_id=consent.id, now=datetime.now(UTC)
        )
    assert session.get(Consent, consent.id).revoked_at is None  # type: ignore[union-attr]


# --- Linking --------------------------------------------------------------------------------


def test_lookup_by_invite_code_and_throttle(app: Flask, session: Session, pair: Any) -> None:
    patient, clinician = pair
    limits = services.LookupLimits(per_user=3, per_address=100, window=60)
    kw = {
        "patient_id": patient.id,
        "address": "127.0.0.1",
        "counter": DatabaseCounter(),
        "limits": limits,
        "now": T0,
        # Counted in short transactions of their own: savepoints of the test's connection.
        "own_transaction": own_transactions(app.extensions["db"].sessionmaker),
    }
    code = clinician.invite_code
    spaced = f" {code[:5].lower()}-{code[5:]} "
    assert services.lookup_clinician(session, invite_code=spaced, **kw).id == clinician.id
    with pytest.raises(NotFound):
        services.lookup_clinician(session, invite_code="NOPE", **kw)
    with pytest.raises(NotFound):
        services.lookup_clinician(session, invite_code="---", **kw)
    with pytest.raises(TooManyRequests):  # even the right code waits out the window
        services.lookup_clinician(session, invite_code=code, **kw)
    later = {**kw, "now": T0 + timedelta(seconds=61)}
    assert services.lookup_clinician(session, invite_code=code, **later).id == clinician.id


def test_list_consents_by_status(session: Session, pair: Any, make_clinician: Any) -> None:
    patient, clinician = pair
    now = datetime.now(UTC)
    expired = sign(
        session, patient=patient, clinician=make_clinician(), now=now - timedelta(days=40)
    )
    active = sign(session, patient=patient, clinician=clinician, now=now - timedelta(days=1))
    revoked = sign(session, patient=patient, clinician=make_clinician(), now=now)
    services.revoke_consent(session, patient_id=patient.id, consent_id=revoked.id, now=now)
    kw: dict[str, Any] = {"patient_id": patient.id, "limit": 50, "cursor": None, "now": now}
    assert [c.id for c in services.list_consents(session, status=None, **kw)["items"]] == [
        revoked.id,
        active.id,
        expired.id,
    ]
    for status, consent in (("active", active), ("expired", expired), ("revoked", revoked)):
        items = services.list_consents(session, status=status, **kw)["items"]
        assert [c.id for c in items] == [consent.id]
        assert consent.status_at(now) == status
