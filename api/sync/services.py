"""Recording changes for the sync feed. Every feature's create/update/delete calls record_change."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.orm import Session

from api.sync.models import Change

ENTITY_TYPES = ("checkin", "medication", "dose", "counseling_session", "reminder")


def record_change(
    session: Session,
    *,
    user_id: uuid.UUID,
    entity_type: str,
    entity_id: uuid.UUID,
    op: str,
    now: datetime,
) -> None:
    """Append to the user's change feed in the caller's transaction: it commits with the write."""
    assert entity_type in ENTITY_TYPES, entity_type
    assert op in ("upsert", "delete"), op
    session.add(
        Change(user_id=user_id, entity_type=entity_type, entity_id=entity_id, op=op, changed_at=now)
    )
