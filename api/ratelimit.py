"""Fixed-window counters shared by all gunicorn workers: in the database, or in Redis if set."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, Protocol

import structlog
from sqlalchemy import String, case, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from api.db import Base
from api.errors import ServiceUnavailable, TooManyRequests

log = structlog.get_logger("waymark.ratelimit")


class RateCounter(Base):
    __tablename__ = "rate_counters"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[datetime]
    count: Mapped[int] = mapped_column(default=0)


@dataclass(frozen=True)
class Window:
    count: int
    retry_after: int  # seconds until the window resets


class Counter(Protocol):
    def hit(self, session: Session, key: str, *, window: int, now: datetime) -> Window: ...
    def peek(self, session: Session, key: str, *, window: int, now: datetime) -> Window: ...
    def reset(self, session: Session, key: str) -> None: ...
    def undo(self, session: Session, key: str) -> None: ...


def take_attempt(
    session: Session,
    counter: Counter,
    key: str,
    *,
    limit: int,
    window: int,
    now: datetime,
    detail: str,
) -> Window:
    """Count an attempt before judging it, and refuse it (TooManyRequests) past `limit`.

    Counting first, in one atomic increment, is what makes the limit hold under parallel
    clients: a peek then a later hit let every client that peeked below the limit through
    (6 guesses instead of 5 with 4 clients). An attempt that turns out fine is given back
    (`undo`) or the key reset by the caller.
    """
    counted = counter.hit(session, key, window=window, now=now)
    if counted.count > limit:
        raise TooManyRequests(counted.retry_after, detail)
    return counted


class DatabaseCounter:
    """Counters in the caller's transaction: they persist when the caller commits."""

    def hit(self, session: Session, key: str, *, window: int, now: datetime) -> Window:
        dialect = session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        expired = RateCounter.window_start <= now - timedelta(seconds=window)
        # One statement, atomic under concurrent workers: insert, or count up (or restart an
        # expired window) on the existing row, which the database locks for the update.
        stmt = (
            insert(RateCounter)
            .values(key=key, window_start=now, count=1)
            .on_conflict_do_update(
                index_elements=[RateCounter.key],
                set_={
                    "count": case((expired, 1), else_=RateCounter.count + 1),
                    "window_start": case((expired, now), else_=RateCounter.window_start),
                },
            )
            .returning(RateCounter.count, RateCounter.window_start)
        )
        count, start = session.execute(stmt).one()
        return Window(count, _remaining(start, window, now))

    def peek(self, session: Session, key: str, *, window: int, now: datetime) -> Window:
        row = session.execute(
            select(RateCounter.count, RateCounter.window_start).where(RateCounter.key == key)
        ).first()
        if row is None:
            return Window(0, 0)
        count, start = row
        if start <= now - timedelta(seconds=window):
            return Window(0, 0)
        return Window(count, _remaining(start, window, now))

    def reset(self, session: Session, key: str) -> None:
        session.execute(delete(RateCounter).where(RateCounter.key == key))

    def undo(self, session: Session, key: str) -> None:
        session.execute(
            update(RateCounter)
            .where(RateCounter.key == key, RateCounter.count > 0)
            .values(count=RateCounter.count - 1)
            .execution_options(synchronize_session=False)
        )


# Decrement only a live key: DECR on an expired one would make a key without expiry at -1.
_UNDO = "if redis.call('exists', KEYS[1]) == 1 then return redis.call('decr', KEYS[1]) end return 0"


class RedisCounter:
    """Counters in Redis (INCR + EXPIRE NX in one MULTI): one window per key, shared by every
    worker and host. Needs Redis >= 7 (EXPIRE NX).

    If Redis is down the throttle fails closed: the request answers 503 with Retry-After
    (ServiceUnavailable), never an unthrottled sign-in and never a 500. Timeouts are short so a
    hung Redis costs a request two seconds, not a worker.
    """

    def __init__(self, url: str, *, prefix: str = "waymark:rl:", timeout: float = 2.0) -> None:
        import redis  # only when configured: it is a heavy import for every process

        self.client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self.errors = redis.RedisError
        self.prefix = prefix

    def _run(self, pipe: Any) -> list[Any]:
        try:
            return list(pipe.execute())
        except self.errors as exc:
            # The key names an account or address: log only the kind of failure.
            log.error("ratelimit.redis_unavailable", error=type(exc).__name__)
            raise ServiceUnavailable(
                "Sign-in protection is not available right now. Try again shortly."
            ) from exc

    def hit(self, session: Session, key: str, *, window: int, now: datetime) -> Window:
        name = self.prefix + key
        pipe = self.client.pipeline()
        pipe.incr(name)
        pipe.expire(name, window, nx=True)
        pipe.ttl(name)
        count, _, ttl = self._run(pipe)
        return Window(int(count), max(int(ttl), 1))

    def peek(self, session: Session, key: str, *, window: int, now: datetime) -> Window:
        name = self.prefix + key
        pipe = self.client.pipeline()
        pipe.get(name)
        pipe.ttl(name)
        count, ttl = self._run(pipe)
        return Window(int(count or 0), max(int(ttl), 0))

    def reset(self, session: Session, key: str) -> None:
        pipe = self.client.pipeline()
        pipe.delete(self.prefix + key)
        self._run(pipe)

    def undo(self, session: Session, key: str) -> None:
        pipe = self.client.pipeline()
        pipe.eval(_UNDO, 1, self.prefix + key)
        self._run(pipe)


def purge_expired(session: Session, *, now: datetime, longest_window: int) -> int:
    """Delete database counters whose window started more than `longest_window` seconds ago.

    A row that old is past its window whatever its key's window is, and `hit`/`peek` treat an
    expired row exactly like a missing one, so deleting it changes no answer; without this the
    table keeps one row per address and account ever seen. Redis expires its own keys.
    """
    cutoff = now - timedelta(seconds=longest_window)
    result = session.execute(delete(RateCounter).where(RateCounter.window_start <= cutoff))
    return int(getattr(result, "rowcount", 0) or 0)


def _remaining(start: datetime, window: int, now: datetime) -> int:
    return max(1, int((start + timedelta(seconds=window) - now).total_seconds()))


@cache
def _redis_counter(url: str) -> RedisCounter:
    # One client (and connection pool) per process, not a new connection per sign-in.
    return RedisCounter(url)


def make_counter(redis_url: str | None) -> Counter:
    return _redis_counter(redis_url) if redis_url else DatabaseCounter()
