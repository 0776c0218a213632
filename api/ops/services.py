"""Health and readiness checks, and the scheduler heartbeat."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from api.ops.models import SchedulerHeartbeat


def database_ready(session: Session) -> bool:
    try:
        session.execute(text("SELECT 1"))
    except Exception:
        session.rollback()
        return False
    return True


def scheduler_status(session: Session, *, now: datetime, stale_after: int) -> dict[str, Any]:
    last = session.scalar(select(func.max(SchedulerHeartbeat.beat_at)))
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
