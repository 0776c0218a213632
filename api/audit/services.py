"""Writing and listing the audit log. Append-only: there is no update or delete here."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.audit.models import OUTCOMES, AuditEvent
from api.pagination import keyset_page


def outcome_for_status(status: int) -> str:
    """401, 403, 404 and 429 refuse access; any other error is a failed attempt."""
    if status < 400:
        return "allowed"
    return "denied" if status in (401, 403, 404, 429) else "failed"


def record_access(
    session: Session,
    *,
    actor_id: uuid.UUID | None,
    actor_role: str | None,
    action: str,
    patient_id: uuid.UUID | None,
    target_id: uuid.UUID | None,
    outcome: str,
    status: int | None,
    request_id: str | None,
    client_address: str | None,
    now: datetime,
) -> AuditEvent:
    """Add one audit row to the caller's transaction (ids and outcome, never health values)."""
    assert outcome in OUTCOMES, outcome
    row = AuditEvent(
        at=now,
        actor_id=actor_id,
        actor_role=actor_role,
        action=action,
        patient_id=patient_id,
        target_id=target_id,
        outcome=outcome,
        status=status,
        request_id=request_id,
        client_address=client_address,
    )
    session.add(row)
    return row


def list_audit(
    session: Session,
    *,
    actor_id: uuid.UUID | None,
    patient_id: uuid.UUID | None,
    outcome: str | None,
    from_: datetime | None,
    to: datetime | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """Audit rows, newest first, filtered by actor, patient, outcome and time."""
    stmt = select(AuditEvent)
    if actor_id is not None:
        stmt = stmt.where(AuditEvent.actor_id == actor_id)
    if patient_id is not None:
        stmt = stmt.where(AuditEvent.patient_id == patient_id)
    if outcome is not None:
        stmt = stmt.where(AuditEvent.outcome == outcome)
    if from_ is not None:
        stmt = stmt.where(AuditEvent.at >= from_)
    if to is not None:
        stmt = stmt.where(AuditEvent.at < to)
    items, next_cursor = keyset_page(
        session, stmt, order=AuditEvent.at, tiebreak=AuditEvent.id, limit=limit, cursor=cursor
    )
    return {"items": items, "next_cursor": next_cursor}
