"""Health and readiness checks, and the scheduler heartbeat."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session

from api.ops.models import SchedulerHeartbeat


def database_ready(session: Session) -> bool:
    """Whether the database answers; the caller (the route) ends the failed transaction."""
    try:
        session.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


def scheduler_status(session: Session, *, now: datetime, stale_after: int) -> dict[str, Any]:
    # Only the leader runs jobs: a standby's beats say nothing about reminders going out.
    last = session.scalar(
        select(func.max(SchedulerHeartbeat.beat_at)).where(SchedulerHeartbeat.is_leader)
    )
    if last is None:
        return {"status": "unknown", "last_beat_at": None}
    stale = now - last > timedelta(seconds=stale_after)
    return {"status": "stale" if stale else "ok", "last_beat_at": last.isoformat()}


def beat(session: Session, *, instance: str, now: datetime, is_leader: bool) -> None:
    row = session.get(SchedulerHeartbeat, instance)
    if row is None:
        session.add(SchedulerHeartbeat(instance=instance, beat_at=now, is_leader=is_leader))
    else:
        row.beat_at = now
        row.is_leader = is_leader
    session.flush()


def take_leadership(session: Session, *, instance: str, now: datetime) -> None:
    """The instance that got the lock is the one leader row; rows silent for a day are pruned."""
    session.execute(
        update(SchedulerHeartbeat)
        .where(SchedulerHeartbeat.instance != instance)
        .values(is_leader=False)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        delete(SchedulerHeartbeat)
        .where(SchedulerHeartbeat.beat_at < now - timedelta(days=1))
        .execution_options(synchronize_session=False)
    )
    beat(session, instance=instance, now=now, is_leader=True)
