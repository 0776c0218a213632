"""Operational state: the scheduler's heartbeat."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base


class SchedulerHeartbeat(Base):
    """One row per scheduler instance; /readyz reports a stale scheduler from it."""

    __tablename__ = "scheduler_heartbeats"

    instance: Mapped[str] = mapped_column(String(100), primary_key=True)
    beat_at: Mapped[datetime]
    is_leader: Mapped[bool] = mapped_column(default=False)
