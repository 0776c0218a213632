"""The change feed behind /v1/sync. Every feature's create/update/delete calls record_change, and
registers how to serialize its entity type with register_entity."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import structlog
from sqlalchemy import (
    CTE,
    BigInteger,
    Select,
    Table,
    bindparam,
    func,
    insert,
    literal,
    select,
    true,
)
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
    params = {**values, "lock_key": _lock_key(user_id)}
    session.connection().execute(_LOCK_AND_INSERT_CHANGE, params)


def select_with_change(created: CTE, *, entity_type: str, columns: list[str]) -> Select[Any]:
    """PostgreSQL only: one statement that runs `created` (an INSERT ... RETURNING in a CTE
    whose rows carry `id` and `user_id`) and appends an upsert to the feed of each row's user
    under that user's feed lock, as record_change does. It selects `columns` of the inserted
    rows. Execute it with the insert's parameters plus change_params(user_id, now).

    Saves a round trip on hot creates (check-ins); the feed's ordering rule is the same: the
    change's seq is drawn only after the lock is held (it is taken per row of the join below).
    """
    assert entity_type in ENTITY_TYPES, entity_type
    row = select(
        created.c.user_id,
        literal(entity_type),
        created.c.id,
        literal("upsert"),
        bindparam("feed_changed_at", type_=_changes.c.changed_at.type),
    ).select_from(created.join(_feed_lock("feed_lock_key"), true()))
    change = insert(_changes).from_select(_FEED_COLUMNS, row).cte("feed_change")
    return select(*(created.c[name] for name in columns)).add_cte(change)


def change_params(user_id: uuid.UUID, now: datetime) -> dict[str, Any]:
    """The parameters select_with_change adds."""
    return {"feed_lock_key": _lock_key(user_id), "feed_changed_at": now}


def _lock_key(user_id: uuid.UUID) -> int:
    return int.from_bytes(user_id.bytes[:8], "big", signed=True) ^ _FEED_LOCK_NAMESPACE


_changes = cast(Table, Change.__table__)
_FEED_COLUMNS = ["user_id", "entity_type", "entity_id", "op", "changed_at"]


def _feed_lock(param: str) -> CTE:
    # MATERIALIZED: the lock is taken before the row (and its seq) exists.
    return (
        select(func.pg_advisory_xact_lock(bindparam(param, type_=BigInteger())))
        .cte("feed_lock")
        .prefix_with("MATERIALIZED")
    )


def _lock_and_insert() -> Any:
    table = _changes
    row = select(*(bindparam(c, type_=table.c[c].type) for c in _FEED_COLUMNS)).select_from(
        _feed_lock("lock_key")
    )
    return insert(table).from_select(_FEED_COLUMNS, row)


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


def _sequence(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        raise ValueError("not a sequence number")
    return int(text)


def decode_sync_cursor(cursor: str) -> int:
    (seq,) = decode_cursor(cursor, [_sequence], field="since")
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
