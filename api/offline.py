"""Offline-safe creates: a client may send its own `id`; a resend of the same body answers the
stored resource, the same id with another body answers 409 (contract: Conventions)."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import date, datetime
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy import String, bindparam, inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, make_transient_to_detached, mapped_column

from api.dml import insert_ignoring_conflicts
from api.errors import Conflict
from api.sync.services import change_params, record_change, select_with_change

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


def replay(
    session: Session, model: type[T], *, id: uuid.UUID, user_id: uuid.UUID, body: dict[str, Any]
) -> T:
    """The stored resource for a resend of `body` with this id; Conflict if it differs."""
    return _replay(session.get(model, id), user_id=user_id, digest=fingerprint(body))


def create_once(
    session: Session,
    obj: T,
    *,
    body: dict[str, Any],
    feed: str | None = None,
    now: datetime | None = None,
) -> tuple[T, bool]:
    """Insert `obj` (whose id may come from the client) unless that id exists; with `feed` (an
    entity type of the sync feed), a creation is also recorded there as an upsert at `now`.

    Returns (resource, created); when created, `obj` itself is now persistent in the session.
    Raises Conflict if the id exists with another body or owner.
    Safe under concurrent resends: the primary key decides, and the loser reads the winner's row.
    """
    digest = fingerprint(body)
    obj.create_fingerprint = digest
    model = type(obj)
    if obj.id is None:
        obj.id = uuid.uuid4()
    if feed is not None and now is None:
        raise TypeError("create_once(feed=...) needs now")
    if _plain(obj):
        created, recorded = _insert_if_absent(session, obj, feed=feed, now=now)
        if created:
            if feed is not None and not recorded:
                _record(session, obj, feed, now)
            return obj, True
        existing = session.get(model, obj.id, populate_existing=True)
        return _replay(existing, user_id=obj.user_id, digest=digest), False
    with session.no_autoflush:  # a pending `obj` must not be flushed and then taken as a resend
        existing = session.get(model, obj.id)
    if existing is not None and existing is not obj:
        return _replay(existing, user_id=obj.user_id, digest=digest), False
    try:
        with session.begin_nested():
            session.add(obj)
            session.flush()
    except IntegrityError:
        existing = session.get(model, obj.id, populate_existing=True)
        return _replay(existing, user_id=obj.user_id, digest=digest), False
    if feed is not None:
        _record(session, obj, feed, now)
    return obj, True


def _record(session: Session, obj: Any, entity_type: str, now: datetime | None) -> None:
    assert now is not None
    record_change(
        session,
        user_id=obj.user_id,
        entity_type=entity_type,
        entity_id=obj.id,
        op="upsert",
        now=now,
    )


def _plain(obj: Any) -> bool:
    """A new object of a single-table model, with only column attributes set: it can be written
    with one INSERT ... ON CONFLICT statement (else the savepoint path above)."""
    state = inspect(obj)
    mapper = state.mapper
    if not state.transient or mapper.inherits is not None or len(mapper.primary_key) != 1:
        return False
    return not any(rel.key in state.dict for rel in mapper.relationships)


def _insert_if_absent(
    session: Session, obj: Any, *, feed: str | None, now: datetime | None
) -> tuple[bool, bool]:
    """INSERT ... ON CONFLICT (pk) DO NOTHING RETURNING: one round trip instead of a lookup, a
    savepoint, the insert and its release. On PostgreSQL the same statement also writes the feed
    row when `feed` is given. On success `obj` is attached as if loaded from its row (columns it
    did not set come back from RETURNING), so later changes to it are UPDATEs.

    Returns (created, recorded in the feed)."""
    state = inspect(obj)
    mapper = state.mapper
    given = tuple(prop.key for prop in mapper.column_attrs if prop.key in state.dict)
    dialect = session.get_bind().dialect.name
    with_feed = feed if dialect == "postgresql" else None
    stmt, returned = _insert_statement(mapper, dialect, given, with_feed)
    params = {mapper.get_property(k).columns[0].key: state.dict[k] for k in given}
    if with_feed is not None:
        assert now is not None
        params.update(change_params(obj.user_id, now))
    first = session.connection().execute(stmt, params).first()
    if first is None:
        return False, False
    for key, value in zip(returned, first, strict=True):
        setattr(obj, key, value)
    make_transient_to_detached(obj)
    session.add(obj)
    return True, with_feed is not None


@lru_cache(maxsize=256)
def _insert_statement(
    mapper: Any, dialect: str, given: tuple[str, ...], feed: str | None = None
) -> tuple[Any, list[str]]:
    table = mapper.local_table
    # The primary key always comes back: no row back means the id was taken.
    returned = [
        p.key for p in mapper.column_attrs if p.key not in given or p.columns[0].primary_key
    ]
    columns = [mapper.get_property(k).columns[0] for k in returned]
    stmt: Any
    if feed is None:
        stmt = insert_ignoring_conflicts(
            dialect, table, index_elements=table.primary_key.columns
        ).returning(*columns)
        return stmt, returned
    # In a CTE the INSERT names its values; the feed row needs the owner back as well.
    values = {
        col.key: bindparam(col.key, type_=col.type)
        for col in (mapper.get_property(k).columns[0] for k in given)
    }
    extra = [] if "user_id" in returned else [table.c.user_id]
    created = (
        insert_ignoring_conflicts(dialect, table, index_elements=table.primary_key.columns)
        .values(values)
        .returning(*columns, *extra)
        .cte("created")
    )
    stmt = select_with_change(created, entity_type=feed, columns=[c.key for c in columns])
    return stmt, returned
