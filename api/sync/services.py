"""The change feed behind /v1/sync. Every feature's create/update/delete calls record_change, and
registers how to serialize its entity type with register_entity."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import structlog
from sqlalchemy import BigInteger, Table, bindparam, func, insert, select
from sqlalchemy.orm import Session

from api.errors import ValidationError
from api.pagination import decode_cursor, encode_cursor
from api.sync.models import Change

log = structlog.get_logger("waymark.sync")

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
    """Append to the user's change feed in the caller's transaction: it commits with the write.

    On PostgreSQL the same statement first takes the user's feed lock (held until commit): a
    reader that saw seq 11 committed before seq 10 would move its cursor past 10 and never see
    it, so one user's feed writers commit in seq order. SQLite serializes writers already.
    """
    assert entity_type in ENTITY_TYPES, entity_type
    assert op in ("upsert", "delete"), op
    values = {
        "user_id": user_id,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "op": op,
        "changed_at": now,
    }
    if session.get_bind().dialect.name != "postgresql":
        session.connection().execute(_INSERT_CHANGE, values)
        return
    lock_key = int.from_bytes(user_id.bytes[:8], "big", signed=True) ^ _FEED_LOCK_NAMESPACE
    session.connection().execute(_LOCK_AND_INSERT_CHANGE, {**values, "lock_key": lock_key})


_changes = cast(Table, Change.__table__)


def _lock_and_insert() -> Any:
    table = _changes
    columns = ["user_id", "entity_type", "entity_id", "op", "changed_at"]
    # MATERIALIZED: the lock is taken before the row (and its seq) exists.
    lock = (
        select(func.pg_advisory_xact_lock(bindparam("lock_key", type_=BigInteger())))
        .cte("feed_lock")
        .prefix_with("MATERIALIZED")
    )
    row = select(*(bindparam(c, type_=table.c[c].type) for c in columns)).select_from(lock)
    return insert(table).from_select(columns, row)


_FEED_LOCK_NAMESPACE = 0x5741594D41524B  # "WAYMARK": keeps clear of other advisory lock users
_INSERT_CHANGE = insert(_changes)
_LOCK_AND_INSERT_CHANGE = _lock_and_insert()


@dataclass(frozen=True)
class SyncEntry:
    type: str
    id: uuid.UUID
    op: str
    changed_at: datetime
    data: dict[str, Any] | None


@dataclass(frozen=True)
class SyncPage:
    changes: list[SyncEntry]
    cursor: str
    has_more: bool


def encode_sync_cursor(seq: int) -> str:
    return encode_cursor([seq])


def decode_sync_cursor(cursor: str) -> int:
    (seq,) = decode_cursor(cursor, [int])
    if not 0 <= seq < 2**63:  # a BIGINT
        raise ValidationError({"since": ["Not a cursor this service issued."]})
    return seq


def changes_since(
    session: Session, *, user_id: uuid.UUID, since: str | None, limit: int
) -> SyncPage:
    """One page of the user's change feed after the cursor `since` (None: from the start).

    Within the page only the latest change of each entity is kept; upserts carry the entity as
    the API shows it, loaded in bulk (one query per entity type); deletes are tombstones. An
    upsert whose entity is gone by now is left out: its delete comes in a later page. Raises
    ValidationError for a cursor this service did not issue.
    """
    try:
        after = decode_sync_cursor(since) if since else 0
    except ValidationError as exc:
        raise ValidationError({"since": ["Not a cursor this service issued."]}) from exc
    rows = list(
        session.execute(
            select(Change.seq, Change.entity_type, Change.entity_id, Change.op, Change.changed_at)
            .where(Change.user_id == user_id, Change.seq > after)
            .order_by(Change.seq)
            .limit(limit + 1)
        )
    )
    has_more = len(rows) > limit
    rows = rows[:limit]
    latest: dict[tuple[str, uuid.UUID], Any] = {}
    for row in rows:
        latest.pop((row.entity_type, row.entity_id), None)  # re-insert: ordered by latest seq
        latest[(row.entity_type, row.entity_id)] = row

    wanted: dict[str, list[uuid.UUID]] = {}
    for (entity_type, entity_id), row in latest.items():
        if row.op == "upsert":
            wanted.setdefault(entity_type, []).append(entity_id)
    loaded: dict[str, dict[uuid.UUID, dict[str, Any]]] = {}
    for entity_type, ids in wanted.items():
        loader = LOADERS.get(entity_type)
        if loader is None:
            log.warning("sync.no_loader", entity_type=entity_type)
            loaded[entity_type] = {}
            continue
        loaded[entity_type] = loader(session, user_id, ids)

    changes: list[SyncEntry] = []
    for (entity_type, entity_id), row in latest.items():
        if row.op == "delete":
            changes.append(SyncEntry(entity_type, entity_id, "delete", row.changed_at, None))
            continue
        data = loaded[entity_type].get(entity_id)
        if data is not None:
            changes.append(SyncEntry(entity_type, entity_id, "upsert", row.changed_at, data))
    last = rows[-1].seq if rows else after
    return SyncPage(changes=changes, cursor=encode_sync_cursor(last), has_more=has_more)
