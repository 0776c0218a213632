"""Alerts: raised once per episode, seen only under a consent covering their category."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.alerts import services
from api.consent import services as consent_services
from api.consent.gate import Gate
from api.disclosures.models import Disclosure
from api.errors import NotFound
from tests.consenting import sign

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def cast(make_patient: Any, make_clinician: Any) -> tuple[Any, Any, Any]:
    return make_patient(), make_patient(), make_clinician()


def page(session: Session, clinician: Any, now: datetime, state: str = "open") -> list[Any]:
    return services.list_alerts(
        session, clinician_id=clinician.id, state=state, limit=50, cursor=None, now=now
    )["items"]


def test_raise_is_once_per_episode(session: Session, cast: Any) -> None:
    patient, _, _ = cast
    kw = {"patient_id": patient.id, "kind": "missed_doses", "category": "medications"}
    first, created = services.raise_alert(session, episode_key="2026-W10", now=T0, **kw)
    again, created_again = services.raise_alert(
        session, episode_key="2026-W10", now=T0 + timedelta(hours=1), **kw
    )
    other, created_other = services.raise_alert(session, episode_key="2026-W11", now=T0, **kw)
    assert (created, created_again, created_other) == (True, False, True)
    assert again.id == first.id and other.id != first.id


def test_visibility_follows_the_gate(session: Session, cast: Any) -> None:
    patient, stranger, clinician = cast
    sign(session, patient=patient, clinician=clinician, categories=["symptoms"], now=T0)
    later = T0 + timedelta(days=1)
    seen, _ = services.raise_alert(
        session,
        patient_id=patient.id,
        kind="craving_high",
        category="symptoms",
        episode_key="a",
        now=later,
    )
    # Another category, a time before the consent, another patient, a patient-only alert:
    for n, kw in enumerate(
        [
            {"patient_id": patient.id, "category": "medications", "now": later},
            {"patient_id": patient.id, "category": "symptoms", "now": T0 - timedelta(days=1)},
            {"patient_id": stranger.id, "category": "symptoms", "now": later},
            {
                "patient_id": patient.id,
                "category": "symptoms",
                "now": later,
                "clinician_visible": False,
            },
        ]
    ):
        services.raise_alert(session, kind="k", episode_key=str(n), **kw)  # type: ignore[arg-type]
    now = T0 + timedelta(days=2)
    assert [a["id"] for a in page(session, clinician, now)] == [seen.id]
    gate = Gate.open(session, clinician_id=clinician.id, now=now)
    counts = services.open_counts(session, gate=gate, patient_ids=[patient.id, stranger.id])
    assert counts == {patient.id: 1}
    # Past the consent's expiry nothing is visible.
    assert page(session, clinician, T0 + timedelta(days=30)) == []


def test_listing_discloses_per_patient(session: Session, cast: Any) -> None:
    patient, other, clinician = cast
    consent = sign(session, patient=patient, clinician=clinician, categories=["symptoms"], now=T0)
    sign(session, patient=other, clinician=clinician, categories=["counseling"], now=T0)
    at = [T0 + timedelta(hours=h) for h in (1, 2)]
    for i, when in enumerate(at):
        services.raise_alert(
            session,
            patient_id=patient.id,
            kind=f"k{i}",
            category="symptoms",
            episode_key="e",
            now=when,
        )
    now = T0 + timedelta(days=1)
    assert len(page(session, clinician, now)) == 2
    rows = list(session.scalars(select(Disclosure)))
    assert len(rows) == 1  # nothing about `other`, who has no alerts
    row = rows[0]
    assert (row.patient_id, row.consent_id, row.kind) == (patient.id, consent.id, "read")
    assert (row.categories, row.data_from, row.data_to, row.at) == (["symptoms"], at[0], at[1], now)


def test_acknowledge(session: Session, cast: Any, make_clinician: Any) -> None:
    patient, _, clinician = cast
    consent = sign(session, patient=patient, clinician=clinician, categories=["symptoms"], now=T0)
    alert, _ = services.raise_alert(
        session,
        patient_id=patient.id,
        kind="craving_high",
        category="symptoms",
        episode_key="a",
        now=T0 + timedelta(hours=1),
    )
    now = T0 + timedelta(hours=2)
    with pytest.raises(NotFound):
        services.acknowledge_alert(
            session, clinician_id=make_clinician().id, alert_id=alert.id, now=now
        )
    acked = services.acknowledge_alert(
        session, clinician_id=clinician.id, alert_id=alert.id, now=now
    )
    assert (acked["acknowledged_at"], acked["acknowledged_by"]) == (now, clinician.id)
    again = services.acknowledge_alert(
        session, clinician_id=clinician.id, alert_id=alert.id, now=now + timedelta(hours=1)
    )
    assert again["acknowledged_at"] == now
    assert page(session, clinician, now) == []
    assert [a["id"] for a in page(session, clinician, now, state="acknowledged")] == [alert.id]
    consent_services.revoke_consent(session, patient_id=patient.id, consent_id=consent.id, now=now)
    with pytest.raises(NotFound):
        services.acknowledge_alert(session, clinician_id=clinician.id, alert_id=alert.id, now=now)
