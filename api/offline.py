"""Offline-safe creates: a client may send its own `id`; a resend of the same body answers the
stored resource, the same id with another body answers 409 (contract: Conventions)."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy import String
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from api.errors import Conflict

T = TypeVar("T", bound="ClientIdMixin")


class ClientIdMixin:
    """For resources a phone creates offline: remembers the fingerprint of the creating body."""

    id: Mapped[uuid.UUID]
    user_id: Mapped[uuid.UUID]
    create_fingerprint: Mapped[str | None] = mapped_column(String(64))


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def fingerprint(body: dict[str, Any]) -> str:
    """A stable hash of a validated create body (key order and id do not matter)."""
    payload = {k: v for k, v in body.items() if k != "id"}
    raw = json.dumps(_canonical(payload), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()


def _replay(existing: T | None, *, user_id: uuid.UUID, digest: str) -> T:
    if existing is None:
        raise Conflict("This id is already in use.")
    # Another user's id answers like a mismatch: nothing tells the caller that it exists.
    if existing.user_id != user_id or existing.create_fingerprint != digest:
        raise Conflict("This id was already used with a different body.")
    return existing


def create_once(session: Session, obj: T, *, body: dict[str, Any]) -> tuple[T, bool]:
    """Insert `obj` (whose id may come from the client) unless that id exists.

    Returns (resource, created). Raises Conflict if the id exists with another body or owner.
    Safe under concurrent resends: the primary key decides, and the loser reads the winner's row.
    """
    digest = fingerprint(body)
    obj.create_fingerprint = digest
    model = type(obj)
    if obj.id is not None:
        existing = session.get(model, obj.id)
        if existing is not None:
            return _replay(existing, user_id=obj.user_id, digest=digest), False
    else:
        obj.id = uuid.uuid4()
    try:
        with session.begin_nested():
            session.add(obj)
            session.flush()
    except IntegrityError:
        existing = session.get(model, obj.id, populate_existing=True)
        return _replay(existing, user_id=obj.user_id, digest=digest), False
    return obj, True
