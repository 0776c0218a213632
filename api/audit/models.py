"""Audit rows: who tried to reach which patient's data, when, from where, and the outcome."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Index, String, event
from sqlalchemy.orm import Mapped, mapped_column

from api.consent.models import ImmutableRecord
from api.db import Base

OUTCOMES = ("allowed", "denied", "failed")


class AuditEvent(Base):
    """Ids and outcomes only, never health values. No foreign keys: the trail outlives accounts."""

    __tablename__ = "audit_events"
    __table_args__ = (
        CheckConstraint("outcome IN ('allowed', 'denied', 'failed')", name="outcome"),
        Index("ix_audit_events_at", "at"),
        Index("ix_audit_events_actor_at", "actor_id", "at"),
        Index("ix_audit_events_patient_at", "patient_id", "at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    at: Mapped[datetime]
    actor_id: Mapped[uuid.UUID | None]  # None: no valid token
    actor_role: Mapped[str | None] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(80))
    patient_id: Mapped[uuid.UUID | None]  # None for lists across patients
    target_id: Mapped[uuid.UUID | None]  # e.g. the alert acknowledged
    outcome: Mapped[str] = mapped_column(String(10))
    status: Mapped[int | None]  # the HTTP status of a refusal or failure
    request_id: Mapped[str | None] = mapped_column(String(128))
    client_address: Mapped[str | None] = mapped_column(String(100))


@event.listens_for(AuditEvent, "before_update")
@event.listens_for(AuditEvent, "before_delete")
def _append_only(_mapper: Any, _connection: Any, _target: AuditEvent) -> None:
    raise ImmutableRecord("the audit log is append-only")
