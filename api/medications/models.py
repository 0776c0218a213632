"""Medication regimens and dose logs."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base, TimestampMixin
from api.offline import ClientIdMixin

# Units a dose is counted in: mass and volume, and the countable forms the OUD medicines come in
# (sublingual tablets and films, patches, drops, sprays) plus "unit" for anything else.
UNITS = (
    "mg",
    "mcg",
    "g",
    "ml",
    "tablet",
    "capsule",
    "film",
    "patch",
    "drop",
    "puff",
    "spray",
    "unit",
)
DOSE_STATUSES = ("taken", "skipped", "missed")
DOSE_SOURCES = ("user", "system")

# Ids of materialised missed doses are derived from (medication, instant), so a missed dose has
# the same id whether the job stored it or a read computed it.
_MISSED_NAMESPACE = uuid.UUID("6b1f3c9e-2f5a-4f0e-9a57-0d6c1f0b7a11")


def missed_dose_id(medication_id: uuid.UUID, scheduled_for: datetime) -> uuid.UUID:
    instant = scheduled_for.astimezone(UTC).isoformat()
    return uuid.uuid5(_MISSED_NAMESPACE, f"{medication_id}/{instant}")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Medication(ClientIdMixin, TimestampMixin, Base):
    """A regimen as the user names it. The schedule (times, days, as_needed) is expanded in
    `schedule_timezone` for instants from `schedule_from` on; earlier doses were stored as rows
    when the schedule or zone last changed (see docs/medications.md)."""

    __tablename__ = "medications"
    __table_args__ = (
        CheckConstraint("dose > 0", name="dose_positive"),
        CheckConstraint(_in("unit", UNITS), name="unit"),
        CheckConstraint("end_date IS NULL OR end_date >= start_date", name="dates_ordered"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    dose: Mapped[float] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(16))
    times: Mapped[list[str]] = mapped_column(JSON)  # sorted, distinct local "HH:MM"
    days_of_week: Mapped[list[int] | None] = mapped_column(JSON)  # ISO weekdays; None = every day
    start_date: Mapped[date]
    end_date: Mapped[date | None]
    as_needed: Mapped[bool] = mapped_column(default=False)
    rxnorm_code: Mapped[str | None] = mapped_column(String(12))
    schedule_timezone: Mapped[str] = mapped_column(String(64))
    schedule_from: Mapped[datetime | None]
    archived_at: Mapped[datetime | None]

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.schedule_timezone)

    def is_active(self, at: datetime) -> bool:
        """Not archived, and the local date at `at` lies within start_date..end_date."""
        if self.archived_at is not None and self.archived_at <= at:
            return False
        today = at.astimezone(self.zone).date()
        return self.start_date <= today and (self.end_date is None or today <= self.end_date)


class Dose(ClientIdMixin, TimestampMixin, Base):
    """One answer to a scheduled dose (taken, skipped, or missed as stored by the job), or an
    as-needed dose taken. At most one row per (medication, scheduled instant)."""

    __tablename__ = "doses"
    __table_args__ = (
        UniqueConstraint("medication_id", "scheduled_for"),
        Index("ix_doses_user_dose_at", "user_id", "dose_at"),
        CheckConstraint(_in("status", DOSE_STATUSES), name="status"),
        CheckConstraint(_in("source", DOSE_SOURCES), name="source"),
        CheckConstraint(
            "(status = 'taken' AND taken_at IS NOT NULL)"
            " OR (status <> 'taken' AND taken_at IS NULL)",
            name="taken_at_when_taken",
        ),
        CheckConstraint(
            "(source = 'system' AND status = 'missed' AND scheduled_for IS NOT NULL)"
            " OR (source = 'user' AND status <> 'missed')",
            name="missed_by_system",
        ),
        CheckConstraint("scheduled_for IS NOT NULL OR taken_at IS NOT NULL", name="has_time"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    medication_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("medications.id", ondelete="CASCADE")
    )
    status: Mapped[str] = mapped_column(String(10))
    source: Mapped[str] = mapped_column(String(10), default="user")
    scheduled_for: Mapped[datetime | None]
    taken_at: Mapped[datetime | None]
    # The instant the dose counts at: scheduled_for, or taken_at for an as-needed dose. Lists
    # and adherence read ranges of it through one index.
    dose_at: Mapped[datetime]
    note: Mapped[str | None] = mapped_column(Text)
