"""Engine, sessionmaker, declarative Base and the request-scoped session."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import structlog
from flask import Flask, current_app, g
from sqlalchemy import DateTime, Engine, MetaData, Uuid, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

T = TypeVar("T")

log = structlog.get_logger("waymark.db")

# Stable constraint names, so Alembic autogenerate and both databases agree.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, on SQLite (which keeps no offset) and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: pass an aware datetime")
        value = value.astimezone(UTC)
        # SQLite stores text; dropping tzinfo keeps lexical order equal to time order.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), uuid.UUID: Uuid()}


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(default=lambda: datetime.now(UTC))
    updated_at: Mapped[datetime] = mapped_column(
        default=lambda: datetime.now(UTC), onupdate=lambda: datetime.now(UTC)
    )


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 15})
        _configure_sqlite(engine)
        return engine
    # PostgreSQL JIT-compiles a query whose estimated cost passes jit_above_cost. The roster's
    # correlated subqueries are costed far above what they take (1,000 patients: estimate 200k,
    # 40 ms to run), so it spent 130-400 ms compiling each time (EXPLAIN ANALYZE, bench.dashboard);
    # short requests like ours never win that back. A startup option: no statement, no
    # transaction opened on a fresh connection.
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args={"options": "-c jit=off"},
    )
    _ping_idle_connections(engine)
    return engine


PING_AFTER_IDLE = 10.0  # seconds


def _monotonic() -> float:
    return time.monotonic()


def _ping_idle_connections(engine: Engine) -> None:
    # pool_pre_ping would cost a round trip on every checkout, i.e. on every request. A connection
    # returned to the pool moments ago is alive; only one idle for a while (a database restart, a
    # proxy's idle timeout) is pinged, and a dead one is replaced before anyone gets it.
    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        record.info["returned_at"] = _monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get("returned_at")
        if returned is not None and _monotonic() - returned < PING_AFTER_IDLE:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # any failure means: do not hand this connection out
            raise DisconnectionError() from exc
        if not alive:
            raise DisconnectionError()


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling breaks SAVEPOINT and BEGIN timing; take it over
    # (SQLAlchemy's documented recipe), and set WAL, foreign keys and a busy timeout per connection.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=15000")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front, so two writers queue instead of deadlocking.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """Holds the engine and sessionmaker for one app."""

    def __init__(self, url: str, *, pool_size: int = 5) -> None:
        self.engine = make_engine(url, pool_size=pool_size)
        self.sessionmaker = sessionmaker(bind=self.engine, expire_on_commit=False)

    def init_app(self, app: Flask) -> None:
        app.extensions["db"] = self
        app.teardown_appcontext(_close_session)


def get_db() -> Database:
    return current_app.extensions["db"]


def get_session() -> Session:
    """The request-scoped session: one per app context, closed on teardown."""
    if "db_session" not in g:
        g.db_session = get_db().sessionmaker()
    return g.db_session


def _close_session(_exc: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


class OwnTransaction(Protocol):
    """How a service that must keep a write whatever the request answers is handed
    `in_own_transaction` (services never reach for the app themselves)."""

    def __call__(self, name: str, work: Callable[[Session], T], /) -> T: ...


def in_own_transaction(name: str, work: Callable[[Session], T], /) -> T:
    """Run `work` in a named short transaction of its own, committed when it returns.

    Only routes and jobs commit their transactions; this is the one other place, for the few
    writes that must outlive a request that fails: a sign-in attempt counted before it is judged,
    a refused sign-in's failure, a revoked login, a denied attempt's audit row, an idempotency
    claim. `name` says which (the logs; docs/architecture.md lists them). Services get it passed
    in as an `OwnTransaction`. The request's own transaction
    is rolled back first, so nothing of it is committed here and, on SQLite (BEGIN IMMEDIATE),
    its write lock is free."""
    request_session = g.get("db_session")
    if request_session is not None:
        request_session.rollback()
    with get_db().sessionmaker() as session, session.begin():
        result = work(session)
    log.debug("db.own_transaction", name=name)
    return result


def utcnow() -> datetime:
    return datetime.now(UTC)


class ImmutableRecord(RuntimeError):
    """A signed consent or a ledger row was about to be changed: a programming error."""
