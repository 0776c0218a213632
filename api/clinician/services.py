"""Clinician reads. Each one passes the consent gate (api.consent.gate); reads that return a
patient's data append a disclosure row in the same transaction."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.alerts import services as alert_services
from api.auth.models import User
from api.checkins import services as checkin_services
from api.consent.gate import Gate
from api.consent.models import Consent
from api.counseling import services as counseling_services
from api.cows.models import CowsAssessment
from api.disclosures.services import record_disclosure
from api.errors import ValidationError
from api.medications import queries as medication_queries
from api.pagination import keyset_page

log = structlog.get_logger("waymark.clinician")

# fetch(start, end) -> (items, next_cursor): one feature's own list service, as the patient's.
Fetch = Callable[[datetime, datetime], tuple[list[Any], str | None]]


def roster(
    session: Session, *, clinician_id: uuid.UUID, limit: int, cursor: str | None, now: datetime
) -> dict[str, Any]:
    """Patients with a consent in force to this clinician, newest consent first (three queries
    a page: consents, names, open alert counts)."""
    gate = Gate.open(session, clinician_id=clinician_id, now=now, lock=False)
    stmt = gate.consents_stmt()
    consents, next_cursor = keyset_page(
        session, stmt, order=Consent.signed_at, tiebreak=Consent.id, limit=limit, cursor=cursor
    )
    patient_ids = [c.patient_id for c in consents]
    names: dict[uuid.UUID, str] = {}
    if patient_ids:
        rows = session.execute(select(User.id, User.display_name).where(User.id.in_(patient_ids)))
        names = {row.id: row.display_name for row in rows}
    counts = alert_services.open_counts(session, gate=gate, patient_ids=patient_ids)
    items = [
        {
            "patient_id": c.patient_id,
            "display_name": names.get(c.patient_id),
            "consent": c,
            "open_alerts": counts.get(c.patient_id, 0),
        }
        for c in consents
    ]
    return {"items": items, "next_cursor": next_cursor}


def _disclosed_read(
    session: Session,
    *,
    clinician_id: uuid.UUID,
    patient_id: uuid.UUID,
    category: str,
    from_: datetime | None,
    to: datetime | None,
    now: datetime,
    fetch: Fetch,
) -> dict[str, Any]:
    """The gate, then the feature's list cut to the consent's window, then a ledger row for
    exactly the period read, all in the caller's transaction."""
    gate = Gate.open(session, clinician_id=clinician_id, now=now, patient_id=patient_id)
    grant = gate.grant(patient_id, category)
    if from_ is not None and to is not None and from_ > to:
        raise ValidationError({"to": ["Must not be before from."]})
    start, end = grant.clip(from_, to)
    items, next_cursor = fetch(start, end)
    record_disclosure(
        session,
        patient_id=patient_id,
        recipient_id=clinician_id,
        consent_id=grant.consent_id,
        kind="read",
        categories=[category],
        data_from=start,
        data_to=end,
        now=now,
    )
    return {"items": items, "next_cursor": next_cursor}


def read_checkins(
    session: Session,
    *,
    clinician_id: uuid.UUID,
    patient_id: uuid.UUID,
    from_: datetime | None,
    to: datetime | None,
    limit: int,
    cursor: str | None,
    now: datetime,
) -> dict[str, Any]:
    """The patient's check-ins under category symptoms, by recorded_at. Raises NotFound,
    CategoryNotConsented (see consent.gate.Gate.grant)."""
    return _disclosed_read(
        session,
        clinician_id=clinician_id,
        patient_id=patient_id,
        category="symptoms",
        from_=from_,
        to=to,
        now=now,
        fetch=lambda start, end: checkin_services.list_checkins(
            session, user_id=patient_id, from_=start, to=end, limit=limit, cursor=cursor
        ),
    )


def read_doses(
    session: Session,
    *,
    clinician_id: uuid.UUID,
    patient_id: uuid.UUID,
    from_: datetime | None,
    to: datetime | None,
    medication_id: uuid.UUID | None,
    limit: int,
    cursor: str | None,
    window_minutes: int,
    now: datetime,
) -> dict[str, Any]:
    """The patient's doses (logged and missed) under category medications. Raises NotFound,
    CategoryNotConsented (see consent.gate.Gate.grant)."""
    return _disclosed_read(
        session,
        clinician_id=clinician_id,
        patient_id=patient_id,
        category="medications",
        from_=from_,
        to=to,
        now=now,
        fetch=lambda start, end: medication_queries.list_doses(
            session,
            user_id=patient_id,
            now=now,
            start=start,
            end=end,
            medication_id=medication_id,
            limit=limit,
            cursor=cursor,
            window_minutes=window_minutes,
        ),
    )


def read_counseling_sessions(
    session: Session,
    *,
    clinician_id: uuid.UUID,
    patient_id: uuid.UUID,
    from_: datetime | None,
    to: datetime | None,
    limit: int,
    cursor: str | None,
    now: datetime,
) -> dict[str, Any]:
    """The patient's counseling sessions under category counseling (their notes are never
    disclosed; the schema leaves them out). Raises NotFound, CategoryNotConsented."""
    return _disclosed_read(
        session,
        clinician_id=clinician_id,
        patient_id=patient_id,
        category="counseling",
        from_=from_,
        to=to,
        now=now,
        fetch=lambda start, end: counseling_services.list_sessions(
            session, user_id=patient_id, start=start, end=end, limit=limit, cursor=cursor
        ),
    )


def _as_seen_by(assessment: CowsAssessment, clinician_id: uuid.UUID) -> dict[str, Any]:
    """An assessment as a clinician reads it: who recorded it only if it was they themselves
    (another clinician's id would reveal another treating relationship)."""
    fields = ("id", "patient_id", "instrument_version", "assessed_at", "answers", "total")
    view = {name: getattr(assessment, name) for name in fields}
    view |= {"severity": assessment.severity, "created_at": assessment.created_at}
    view["clinician_id"] = clinician_id if assessment.clinician_id == clinician_id else None
    return view


def read_cows(
    session: Session,
    *,
    clinician_id: uuid.UUID,
    patient_id: uuid.UUID,
    from_: datetime | None,
    to: datetime | None,
    limit: int,
    cursor: str | None,
    now: datetime,
) -> dict[str, Any]:
    """The patient's COWS assessments (by any clinician) under category symptoms, newest first
    by assessed_at. Raises NotFound, CategoryNotConsented."""

    def fetch(start: datetime, end: datetime) -> tuple[list[Any], str | None]:
        stmt = select(CowsAssessment).where(
            CowsAssessment.patient_id == patient_id,
            CowsAssessment.assessed_at >= start,
            CowsAssessment.assessed_at < end,
        )
        items, next_cursor = keyset_page(
            session,
            stmt,
            order=CowsAssessment.assessed_at,
            tiebreak=CowsAssessment.id,
            limit=limit,
            cursor=cursor,
        )
        return [_as_seen_by(a, clinician_id) for a in items], next_cursor

    return _disclosed_read(
        session,
        clinician_id=clinician_id,
        patient_id=patient_id,
        category="symptoms",
        from_=from_,
        to=to,
        now=now,
        fetch=fetch,
    )
