"""Raising, listing and acknowledging alerts. A clinician sees an alert only where the consent
gate (api.consent.gate, Gate.visible) lets them see its category at its time."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.alerts.models import Alert
from api.consent.gate import Gate
from api.consent.models import CATEGORIES
from api.disclosures.services import record_per_consent
from api.dml import dialect_of, insert_ignoring_conflicts, one_of
from api.errors import NotFound
from api.pagination import keyset_page

log = structlog.get_logger("waymark.alerts")


def raise_alert(
    session: Session,
    *,
    patient_id: uuid.UUID,
    kind: str,
    category: str,
    episode_key: str,
    now: datetime,
    clinician_visible: bool = True,
    triggered_at: datetime | None = None,
    detail: str | None = None,
) -> tuple[Alert, bool]:
    """Raise an alert once per (patient, kind, episode): a second call returns the first.
    Returns (alert, created); safe when two jobs race (the unique key decides)."""
    assert category in CATEGORIES, category
    key = (Alert.patient_id == patient_id, Alert.kind == kind, Alert.episode_key == episode_key)
    existing = session.scalar(select(Alert).where(*key))
    if existing is not None:
        return existing, False
    alert = Alert(
        patient_id=patient_id,
        kind=kind,
        category=category,
        episode_key=episode_key,
        created_at=now,
        clinician_visible=clinician_visible,
        triggered_at=triggered_at,
        detail=detail,
    )
    try:
        with session.begin_nested():
            session.add(alert)
            session.flush()
    except IntegrityError:
        winner = session.scalar(select(Alert).where(*key))
        assert winner is not None
        return winner, False
    log.info("alert.raised", alert_id=str(alert.id), patient_id=str(patient_id))
    return alert, True


def raise_alerts(session: Session, *, alerts: Iterable[dict[str, Any]], now: datetime) -> int:
    """raise_alert for many at once (an INSERT that skips episodes already raised, so two jobs
    racing still raise each once). Each: patient_id, kind, category, episode_key and optionally
    triggered_at, detail. Returns how many were new."""
    candidates = list(alerts)
    if not candidates:
        return 0
    for alert in candidates:
        assert alert["category"] in CATEGORIES, alert["category"]
    # The job re-judges the whole look-back window on every run, so nearly every episode it finds
    # was raised on an earlier run: leave those out with one indexed read instead of sending
    # them all to be refused by the unique key (that was most of the job's time). The ON
    # CONFLICT below still settles a race with a second scheduler.
    patient_ids = {alert["patient_id"] for alert in candidates}
    raised = {
        tuple(row)
        for row in session.execute(
            select(Alert.patient_id, Alert.kind, Alert.episode_key).where(
                one_of(session, Alert.patient_id, patient_ids)
            )
        )
    }
    rows = [
        {
            "id": uuid.uuid4(),
            "clinician_visible": True,
            "triggered_at": None,
            "detail": None,
            **alert,
            "created_at": now,
        }
        for alert in candidates
        if (alert["patient_id"], alert["kind"], alert["episode_key"]) not in raised
    ]
    if not rows:
        return 0
    stmt = insert_ignoring_conflicts(
        dialect_of(session), Alert.__table__, index_elements=["patient_id", "kind", "episode_key"]
    ).returning(Alert.id, Alert.patient_id)
    # executemany: SQLAlchemy batches the rows into multi-row INSERTs itself ("insertmanyvalues")
    # from one cached compiled statement, instead of compiling a 500-row VALUES list each time.
    created = session.execute(stmt, rows).all()
    # Ids only: the alert's kind (e.g. severe withdrawal) next to a patient id is health data.
    for alert_id, patient_id in created:
        log.info("alert.raised", alert_id=str(alert_id), patient_id=str(patient_id))
    return len(created)


def _visible(gate: Gate) -> Any:
    return Alert.clinician_visible.is_(True) & gate.visible(
        patient_col=Alert.patient_id, category_col=Alert.category, time_col=Alert.created_at
    )


def list_alerts(
    session: Session,
    *,
    clinician_id: uuid.UUID,
    state: str,
    limit: int,
    cursor: str | None,
    now: datetime,
) -> dict[str, Any]:
    """Alerts about patients whose consent in force covers the alert's category, newest first.
    Each patient on the page gets a disclosure row (kind read) in this transaction."""
    gate = Gate.open(session, clinician_id=clinician_id, now=now)
    stmt = select(Alert).where(_visible(gate))
    if state == "open":
        stmt = stmt.where(Alert.acknowledged_at.is_(None))
    elif state == "acknowledged":
        stmt = stmt.where(Alert.acknowledged_at.is_not(None))
    items, next_cursor = keyset_page(
        session, stmt, order=Alert.created_at, tiebreak=Alert.id, limit=limit, cursor=cursor
    )
    _disclose(session, gate=gate, alerts=items)
    return {"items": items, "next_cursor": next_cursor}


def _disclose(session: Session, *, gate: Gate, alerts: Iterable[Alert]) -> None:
    by_patient: dict[uuid.UUID, list[Alert]] = defaultdict(list)
    for alert in alerts:
        by_patient[alert.patient_id].append(alert)
    for patient_id, rows in by_patient.items():
        categories = {a.category for a in rows}
        consent_id = gate.covering(patient_id, categories).id
        span = (min(a.created_at for a in rows), max(a.created_at for a in rows))
        record_per_consent(
            session,
            patient_id=patient_id,
            recipient_id=gate.clinician_id,
            kind="read",
            reads=dict.fromkeys(sorted(categories), (consent_id, *span)),
            now=gate.now,
        )


def acknowledge_alert(
    session: Session, *, clinician_id: uuid.UUID, alert_id: uuid.UUID, now: datetime
) -> Alert:
    """Acknowledge once; again changes nothing. Raises NotFound if the clinician cannot see it."""
    gate = Gate.open(session, clinician_id=clinician_id, now=now)
    alert = session.scalar(
        select(Alert).where(Alert.id == alert_id, _visible(gate)).with_for_update(of=Alert)
    )
    if alert is None:
        raise NotFound("No such alert.")
    if alert.acknowledged_at is None:
        alert.acknowledged_at = now
        alert.acknowledged_by_id = clinician_id
        session.flush()
        log.info("alert.acknowledged", alert_id=str(alert.id), clinician_id=str(clinician_id))
    return alert


def open_counts(
    session: Session, *, gate: Gate, patient_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """Unacknowledged alerts the clinician can see, per patient (one query)."""
    ids = list(patient_ids)
    if not ids:
        return {}
    rows = session.execute(
        select(Alert.patient_id, func.count())
        .where(
            Alert.patient_id.in_(ids),
            Alert.acknowledged_at.is_(None),
            _visible(gate),
        )
        .group_by(Alert.patient_id)
    )
    return {patient_id: int(count) for patient_id, count in rows}
