"""Who runs the jobs: one scheduler at a time.

PostgreSQL: a session-level advisory lock (pg_try_advisory_lock) held on a dedicated connection
that is never returned to a pool. The lock lives exactly as long as that database session: when
the leader dies (even SIGKILL) its connection closes and PostgreSQL releases the lock; a standby
that retries every SCHEDULER_LEADER_RETRY seconds takes over. TCP keepalives bound how long a
vanished host (no FIN) keeps the lock: about idle + interval * count = 25 s.

SQLite (a file on one host): an exclusive flock on "<database>.scheduler.lock", released by the
kernel when the process dies. An in-memory database is one process by definition.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from typing import IO, Protocol

import structlog
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

log = structlog.get_logger("waymark.jobs.leader")

KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


class Leadership(Protocol):
    kind: str

    def try_acquire(self) -> bool: ...
    def holds(self) -> bool: ...
    def release(self) -> None: ...
    def dispose(self) -> None: ...


class PostgresAdvisoryLock:
    kind = "pg_advisory_lock"

    def __init__(self, url: str, *, key: int) -> None:
        self.key = key
        # NullPool: closing the connection really closes the session, which releases the lock.
        self._engine = create_engine(
            url, poolclass=NullPool, isolation_level="AUTOCOMMIT", connect_args=KEEPALIVES
        )
        self._conn: Connection | None = None
        self._held = False

    def try_acquire(self) -> bool:
        try:
            if self._conn is None:
                self._conn = self._engine.connect()
            got = self._conn.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
            ).scalar()
        except SQLAlchemyError as exc:
            log.warning("leader.acquire_failed", error_type=type(exc).__name__)
            self._drop()
            return False
        self._held = bool(got)
        return self._held

    def holds(self) -> bool:
        """Ask PostgreSQL whether this session still holds the lock (False if the session died)."""
        if self._conn is None or not self._held:
            return False
        try:
            held = self._conn.execute(
                text(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'"
                    " AND pid = pg_backend_pid() AND granted"
                    " AND classid = :hi AND objid = :lo AND objsubid = 1)"
                ),
                {"hi": (self.key >> 32) & 0xFFFFFFFF, "lo": self.key & 0xFFFFFFFF},
            ).scalar()
        except SQLAlchemyError as exc:
            log.warning("leader.check_failed", error_type=type(exc).__name__)
            self._drop()
            return False
        self._held = bool(held)
        return self._held

    def release(self) -> None:
        if self._conn is not None and self._held:
            # Closing the session below releases the lock anyway.
            with contextlib.suppress(SQLAlchemyError):
                self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
        self._drop()

    def _drop(self) -> None:
        self._held = False
        if self._conn is not None:
            with contextlib.suppress(SQLAlchemyError):
                self._conn.close()
            self._conn = None

    def dispose(self) -> None:
        self.release()
        self._engine.dispose()


class FileLock:
    kind = "flock"

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: IO[bytes] | None = None

    def try_acquire(self) -> bool:
        if self._file is not None:
            return True
        handle = open(self.path, "ab")  # noqa: SIM115 - held open for as long as we lead
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._file = handle
        return True

    def holds(self) -> bool:
        return self._file is not None

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def dispose(self) -> None:
        self.release()


class SingleProcess:
    kind = "single_process"

    def try_acquire(self) -> bool:
        return True

    def holds(self) -> bool:
        return True

    def release(self) -> None:
        return None

    def dispose(self) -> None:
        return None


def make_leadership(
    database_url: str, *, key: int
) -> PostgresAdvisoryLock | FileLock | SingleProcess:
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        return PostgresAdvisoryLock(database_url, key=key)
    if url.database and url.database != ":memory:":
        return FileLock(os.path.abspath(url.database) + ".scheduler.lock")
    return SingleProcess()
