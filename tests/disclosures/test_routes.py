"""The accounting of disclosures: the patient's own, newest first, paged; append-only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from api.consent.models import ImmutableRecord
from api.disclosures.models import Disclosure
from api.disclosures.services import record_disclosure
from tests.consenting import sign

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def disclose(session: Session, consent: Any, at: datetime, kind: str = "read") -> Disclosure:
    row = record_disclosure(
        session,
        patient_id=consent.patient_id,
        recipient_id=consent.recipient_id,
        consent_id=consent.id,
        kind=kind,
        categories=["symptoms"],
        data_from=T0,
        data_to=at,
        now=at,
    )
    session.commit()
    return row


def test_accounting_lists_own_disclosures_in_pages(
    client: FlaskClient,
    session: Session,
    patient: Any,
    patient_headers: Any,
    make_patient: Any,
    make_clinician: Any,
) -> None:
    clinician = make_clinician(display_name="Dr Lee", organization="Harbor")
    consent = sign(session, patient=patient, clinician=clinician, now=T0)
    other = sign(session, patient=make_patient(), clinician=clinician, now=T0)
    rows = [disclose(session, consent, T0 + timedelta(hours=h)) for h in range(3)]
    disclose(session, other, T0 + timedelta(hours=1))

    first = client.get("/v1/disclosures", query_string={"limit": 2}, headers=patient_headers)
    assert first.status_code == 200
    assert [d["id"] for d in first.json["items"]] == [str(rows[2].id), str(rows[1].id)]
    item = first.json["items"][0]
    assert item["recipient"] == {
        "id": str(clinician.id),
        "display_name": "Dr Lee",
        "organization": "Harbor",
    }
    assert item["consent_id"] == str(consent.id)
    assert item["kind"] == "read"
    assert item["categories"] == ["symptoms"]
    assert item["data_from"] == T0.isoformat()
    assert item["data_to"] == item["at"] == rows[2].at.isoformat()
    second = client.get(
        "/v1/disclosures",
        query_string={"limit": 2, "cursor": first.json["next_cursor"]},
        headers=patient_headers,
    )
    assert [d["id"] for d in second.json["items"]] == [str(rows[0].id)]
    assert second.json["next_cursor"] is None

    ranged = client.get(
        "/v1/disclosures",
        query_string={
            "from": (T0 + timedelta(minutes=30)).isoformat(),
            "to": (T0 + timedelta(hours=2)).isoformat(),
        },
        headers=patient_headers,
    )
    assert [d["id"] for d in ranged.json["items"]] == [str(rows[1].id)]


def test_only_patients_read_the_accounting(
    client: FlaskClient, make_clinician: Any, make_admin: Any, auth_headers: Any
) -> None:
    assert client.get("/v1/disclosures", headers=auth_headers(make_clinician())).status_code == 403
    assert client.get("/v1/disclosures", headers=auth_headers(make_admin())).status_code == 403
    assert client.get("/v1/disclosures").status_code == 401


def test_the_ledger_is_append_only_and_outlives_the_consent(
    session: Session, patient: Any, make_clinician: Any
) -> None:
    consent = sign(session, patient=patient, clinician=make_clinician(), now=T0)
    row = disclose(session, consent, T0 + timedelta(hours=1))
    row.categories = ["medications"]
    with pytest.raises(ImmutableRecord):
        session.flush()
    session.rollback()
    row = session.get(Disclosure, row.id)  # type: ignore[assignment]
    session.delete(row)
    with pytest.raises(ImmutableRecord):
        session.flush()
    session.rollback()
    # Erasing the consent (the account's erasure cascades to it) leaves the ledger row.
    session.execute(Disclosure.__table__.select())  # the table is reachable
    from api.consent.models import Consent

    session.execute(Consent.__table__.delete().where(Consent.__table__.c.id == consent.id))
    session.commit()
    assert session.get(Disclosure, row.id, populate_existing=True) is not None
