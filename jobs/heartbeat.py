"""Record that the scheduler is alive and who leads; /readyz reads it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from api.ops import services as ops_services


def beat(session: Session, *, instance: str, now: datetime, is_leader: bool) -> None:
    ops_services.beat(session, instance=instance, now=now, is_leader=is_leader)


def take_leadership(session: Session, *, instance: str, now: datetime) -> None:
    ops_services.take_leadership(session, instance=instance, now=now)
