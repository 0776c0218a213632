"""Counseling sessions."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base, TimestampMixin
from api.offline import ClientIdMixin

KINDS = ("individual", "group", "peer_support", "family", "other")
ATTENDANCE = ("scheduled", "attended", "missed", "cancelled", "rescheduled")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class CounselingSession(ClientIdMixin, TimestampMixin, Base):
    __tablename__ = "counseling_sessions"
    __table_args__ = (
        Index("ix_counseling_sessions_user_starts_at", "user_id", "starts_at"),
        CheckConstraint(_in("kind", KINDS), name="kind"),
        CheckConstraint(_in("attendance", ATTENDANCE), name="attendance"),
        CheckConstraint("duration_minutes BETWEEN 1 AND 1440", name="duration"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime]
    duration_minutes: Mapped[int]
    provider_name: Mapped[str | None] = mapped_column(String(200))
    location: Mapped[str | None] = mapped_column(String(200))
    attendance: Mapped[str] = mapped_column(String(20), default="scheduled")
    note: Mapped[str | None] = mapped_column(Text)
