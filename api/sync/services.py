"""The change feed behind /v1/sync. Every feature's create/update/delete calls record_change, and
registers how to serialize its entity type with register_entity."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from api.sync.models import Change

ENTITY_TYPES = ("checkin", "medication", "dose", "counseling_session", "reminder")

# entity_type -> loader(session, user_id, ids) -> {id: serialized dict}; one query per type per
# page, never one per row.
Loader = Callable[[Session, uuid.UUID, Iterable[uuid.UUID]], dict[uuid.UUID, dict[str, Any]]]
LOADERS: dict[str, Loader] = {}


def register_entity(entity_type: str, loader: Loader) -> None:
    assert entity_type in ENTITY_TYPES, entity_type
    LOADERS[entity_type] = loader


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
