"""Raising, listing and acknowledging alerts.

A clinician sees an alert only where the consent gate (api.consent.gate, Gate.visible) lets them
see its category over the period of the events it describes (events_from to events_to), judged
by the consent in force now: an alert raised before a consent narrowed, or from data before its
window, is not shown. Acknowledging is each clinician's own: it hides the alert from their open
list, counts and summaries only, and nobody is ever shown who else acknowledged it.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import ColumnElement, and_, exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.alerts.models import NOTE_MAX, Alert, AlertAcknowledgement
from api.alerts.rules import RULE_CATEGORY
from api.consent.gate import Gate
from api.consent.models import CATEGORIES
from api.disclosures.services import record_disclosures
from api.dml import dialect_of, insert_ignoring_conflicts, one_of
from api.errors import NotFound, ValidationError
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
    events_from: datetime | None = None,
    events_to: datetime | None = None,
) -> tuple[Alert, bool]:
    """Raise an alert once per (patient, kind, episode): a second call returns the first.
    The events period defaults to the trigger time (else `now`): one instant.
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
        events_from=events_from or triggered_at or now,
        events_to=events_to or events_from or triggered_at or now,
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
    racing still raise each once). Each: patient_id, kind, category, episode_key, events_from,
    events_to and optionally triggered_at, detail. Returns how many were new."""
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


def _visible(gate: Gate) -> ColumnElement[bool]:
    return Alert.clinician_visible.is_(True) & gate.visible(
        patient_col=Alert.patient_id,
        category_col=Alert.category,
        time_col=Alert.events_from,
        until_col=Alert.events_to,
    )


def acknowledged_by(clinician_id: uuid.UUID) -> ColumnElement[bool]:
    """The alert was acknowledged by this clinician (SQL): anyone else's acknowledgement is no
    concern of theirs."""
    return exists().where(
        AlertAcknowledgement.alert_id == Alert.id,
        AlertAcknowledgement.clinician_id == clinician_id,
    )


def visible_open(gate: Gate) -> ColumnElement[bool]:
    """Alerts the gate's clinician may see and has not acknowledged (lists, counts, summaries)."""
    return and_(_visible(gate), ~acknowledged_by(gate.clinician_id))


def _as_seen(
    alert: Alert, clinician_id: uuid.UUID, at: datetime | None, note: str | None = None
) -> dict[str, Any]:
    """The alert as this clinician sees it: their own acknowledgement and note, or none."""
    return {
        "id": alert.id,
        "patient_id": alert.patient_id,
        "kind": alert.kind,
        "category": alert.category,
        "episode_key": alert.episode_key,
        "created_at": alert.created_at,
        "triggered_at": alert.triggered_at,
        "events_from": alert.events_from,
        "events_to": alert.events_to,
        "detail": alert.detail,
        "acknowledged_at": at,
        "acknowledged_by": clinician_id if at is not None else None,
        "acknowledgement_note": note if at is not None else None,
    }


def list_alerts(
    session: Session,
    *,
    clinician_id: uuid.UUID,
    state: str,
    limit: int,
    cursor: str | None,
    now: datetime,
) -> dict[str, Any]:
    """Alerts about patients whose consent in force covers the alert's category and the time of
    its events, newest first; `state` is this clinician's own (open: not acknowledged by them).
    Each patient on the page gets a disclosure row (kind read) in this transaction."""
    gate = Gate.open(session, clinician_id=clinician_id, now=now)
    stmt = select(Alert).where(_visible(gate))
    if state == "open":
        stmt = stmt.where(~acknowledged_by(clinician_id))
    elif state == "acknowledged":
        stmt = stmt.where(acknowledged_by(clinician_id))
    items, next_cursor = keyset_page(
        session, stmt, order=Alert.created_at, tiebreak=Alert.id, limit=limit, cursor=cursor
    )
    acks: dict[uuid.UUID, tuple[datetime, str | None]] = {}
    if items:
        # This clinician's own acknowledgements only: another's time or note is never read.
        rows = session.execute(
            select(
                AlertAcknowledgement.alert_id,
                AlertAcknowledgement.acknowledged_at,
                AlertAcknowledgement.note,
            ).where(
                AlertAcknowledgement.clinician_id == clinician_id,
                one_of(session, AlertAcknowledgement.alert_id, [a.id for a in items]),
            )
        )
        acks = {alert_id: (at, note) for alert_id, at, note in rows}
    _disclose(session, gate=gate, shown=_listed(items))
    return {
        "items": [_as_seen(a, clinician_id, *acks.get(a.id, (None, None))) for a in items],
        "next_cursor": next_cursor,
    }


def _listed(alerts: Iterable[Alert]) -> dict[uuid.UUID, AlertsShown]:
    by_patient: dict[uuid.UUID, list[Alert]] = defaultdict(list)
    for alert in alerts:
        by_patient[alert.patient_id].append(alert)
    return {
        patient_id: AlertsShown(
            count=len(rows),
            categories=tuple(sorted({a.category for a in rows})),
            events_from=min(a.events_from for a in rows),
            events_to=max(a.events_to for a in rows),
        )
        for patient_id, rows in by_patient.items()
    }


def disclosure_entry(
    gate: Gate, patient_id: uuid.UUID, shown: AlertsShown
) -> dict[str, Any] | None:
    """The ledger's rule for alerts shown, listed or counted: the categories they derive from and
    the period of the events they describe (not when they were raised), under the consent that
    covers them. None when none is shown (a zero count discloses nothing)."""
    if not shown.count or shown.events_from is None or shown.events_to is None:
        return None
    return {
        "patient_id": patient_id,
        "recipient_id": gate.clinician_id,
        "consent_id": gate.covering(patient_id, shown.categories).id,
        "categories": list(shown.categories),
        "data_from": shown.events_from,
        "data_to": shown.events_to,
    }


def _disclose(session: Session, *, gate: Gate, shown: dict[uuid.UUID, AlertsShown]) -> None:
    """A ledger row per patient shown; one INSERT for the page, and the consents noted for the
    answer's scope."""
    entries = [disclosure_entry(gate, patient_id, alerts) for patient_id, alerts in shown.items()]
    record_disclosures(
        session, kind="read", entries=[e for e in entries if e], now=gate.now, note=True
    )


def acknowledge_alert(
    session: Session,
    *,
    clinician_id: uuid.UUID,
    alert_id: uuid.UUID,
    now: datetime,
    note: str | None = None,
) -> dict[str, Any]:
    """Acknowledge for this clinician (others' open lists are untouched), with their optional
    note (blank is none); again changes nothing, the first time and note stay. Raises NotFound
    if the clinician cannot see it, ValidationError if the note is too long."""
    note = (note or "").strip() or None
    if note is not None and len(note) > NOTE_MAX:
        raise ValidationError({"note": [f"At most {NOTE_MAX} characters."]})
    gate = Gate.open(session, clinician_id=clinician_id, now=now)
    alert = session.scalar(select(Alert).where(Alert.id == alert_id, _visible(gate)))
    if alert is None:
        raise NotFound("No such alert.")
    stmt = insert_ignoring_conflicts(
        dialect_of(session),
        AlertAcknowledgement.__table__,
        index_elements=["alert_id", "clinician_id"],
    )
    # ON CONFLICT DO NOTHING: a second acknowledgement (or two racing) keeps the first time.
    session.execute(
        stmt.values(alert_id=alert.id, clinician_id=clinician_id, acknowledged_at=now, note=note)
    )
    at, kept = session.execute(
        select(AlertAcknowledgement.acknowledged_at, AlertAcknowledgement.note).where(
            AlertAcknowledgement.alert_id == alert.id,
            AlertAcknowledgement.clinician_id == clinician_id,
        )
    ).one()
    if at == now:
        # Ids only: the note is health-adjacent text.
        log.info("alert.acknowledged", alert_id=str(alert.id), clinician_id=str(clinician_id))
    return _as_seen(alert, clinician_id, at, kept)


# The categories an alert can derive from (api.alerts.rules): a count of a patient's open alerts
# is read as one column per category, so that what the count disclosed is known.
_ALERT_CATEGORIES = tuple(c for c in CATEGORIES if c in set(RULE_CATEGORY.values()))


@dataclass(frozen=True)
class AlertsShown:
    """A patient's alerts as a page shows them, listed or only counted: how many, and what that
    discloses (the categories they derive from and the period of their events)."""

    count: int
    categories: tuple[str, ...]
    events_from: datetime | None
    events_to: datetime | None

    @staticmethod
    def of(row: Any) -> AlertsShown:
        """From a row of open_alerts_select's columns (an outer join's row may be all NULL)."""
        return AlertsShown(
            count=int(row.n_open or 0),
            categories=tuple(c for c in _ALERT_CATEGORIES if getattr(row, f"n_{c}") or 0),
            events_from=row.events_from,
            events_to=row.events_to,
        )


def open_alerts_select(gate: Gate) -> Any:
    """Open alerts per patient as the gate's clinician sees them (one grouped scan): n_open, a
    count per category (n_symptoms, ...) and the span of their events (AlertsShown.of)."""
    return (
        select(
            Alert.patient_id,
            func.count().label("n_open"),
            *(
                func.count().filter(Alert.category == category).label(f"n_{category}")
                for category in _ALERT_CATEGORIES
            ),
            func.min(Alert.events_from).label("events_from"),
            func.max(Alert.events_to).label("events_to"),
        )
        .where(visible_open(gate))
        .group_by(Alert.patient_id)
    )


def open_counts(
    session: Session, *, gate: Gate, patient_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """Alerts the gate's clinician can see and has not acknowledged, per patient (one query).
    A count is derived data: each patient with any gets a ledger row (kind read) for their
    categories and events' period, as a listing of the alerts themselves does."""
    ids = list(patient_ids)
    if not ids:
        return {}
    rows = session.execute(open_alerts_select(gate).where(Alert.patient_id.in_(ids)))
    counted = {row.patient_id: AlertsShown.of(row) for row in rows}
    _disclose(session, gate=gate, shown=counted)
    return {patient_id: c.count for patient_id, c in counted.items()}
