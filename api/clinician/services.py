"""Clinician reads. Each one passes consent.services (the gate); reads that return a patient's
data append a disclosure row in the same transaction."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.alerts import services as alert_services
from api.auth.models import User
from api.consent import services as consent_services
from api.consent.models import Consent
from api.pagination import keyset_page


def roster(
    session: Session, *, clinician_id: uuid.UUID, limit: int, cursor: str | None, now: datetime
) -> dict[str, Any]:
    """Patients with a consent in force to this clinician, newest consent first (three queries
    a page: consents, names, open alert counts)."""
    stmt = consent_services.active_for_clinician_stmt(clinician_id=clinician_id, now=now)
    consents, next_cursor = keyset_page(
        session, stmt, order=Consent.signed_at, tiebreak=Consent.id, limit=limit, cursor=cursor
    )
    patient_ids = [c.patient_id for c in consents]
    names: dict[uuid.UUID, str] = {}
    if patient_ids:
        rows = session.execute(select(User.id, User.display_name).where(User.id.in_(patient_ids)))
        names = {row.id: row.display_name for row in rows}
    counts = alert_services.open_counts(
        session, clinician_id=clinician_id, patient_ids=patient_ids, now=now
    )
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
