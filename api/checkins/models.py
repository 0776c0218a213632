"""A check-in: an instrument answer set with its score, everyday symptoms, craving, sleep, note."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base
from api.offline import ClientIdMixin

SYMPTOM_NAMES = (
    "nausea",
    "vomiting",
    "diarrhea",
    "muscle_aches",
    "restlessness",
    "anxiety",
    "insomnia",
    "low_mood",
)
CRAVING_SCALE = "0-10"  # a 0-10 numeric rating; stored with each value (instruments.md)
PATIENT_INSTRUMENTS = ("sows", "sows-gossop")  # COWS is recorded by a clinician, elsewhere


class Checkin(ClientIdMixin, Base):
    __tablename__ = "checkins"
    __table_args__ = (
        Index("ix_checkins_user_recorded", "user_id", "recorded_at"),
        CheckConstraint(
            "instrument IS NULL OR instrument IN ('sows', 'sows-gossop')", name="instrument"
        ),
        # A score exists exactly when an instrument was answered.
        CheckConstraint(
            "(instrument IS NULL AND instrument_version IS NULL AND answers IS NULL"
            " AND total IS NULL AND severity IS NULL)"
            " OR (instrument IS NOT NULL AND instrument_version IS NOT NULL"
            " AND answers IS NOT NULL AND total IS NOT NULL)",
            name="scored",
        ),
        CheckConstraint("total >= 0", name="total"),
        CheckConstraint(
            "craving IS NULL OR (craving BETWEEN 0 AND 10 AND craving_scale IS NOT NULL)",
            name="craving",
        ),
        CheckConstraint("sleep_hours >= 0 AND sleep_hours <= 24", name="sleep_hours"),
        CheckConstraint(
            "recorded_offset_minutes BETWEEN -1439 AND 1439", name="recorded_offset_minutes"
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    recorded_at: Mapped[datetime]  # UTC
    # The offset the client sent, so recorded_at is given back as the user wrote it.
    recorded_offset_minutes: Mapped[int]
    instrument: Mapped[str | None] = mapped_column(String(20))
    instrument_version: Mapped[str | None] = mapped_column(String(20))
    answers: Mapped[dict[str, int] | None] = mapped_column(JSON(none_as_null=True))
    total: Mapped[int | None]
    severity: Mapped[str | None] = mapped_column(String(30))
    symptoms: Mapped[dict[str, int] | None] = mapped_column(JSON(none_as_null=True))
    craving: Mapped[int | None]
    craving_scale: Mapped[str | None] = mapped_column(String(10))
    sleep_hours: Mapped[float | None]
    note: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # Deleting keeps only this tombstone (id, owner, creating fingerprint, times): the content is
    # erased, and a resent create of the same id cannot bring the check-in back.
    deleted_at: Mapped[datetime | None]

    @property
    def recorded_at_local(self) -> datetime:
        offset = timezone(timedelta(minutes=self.recorded_offset_minutes))
        return self.recorded_at.astimezone(offset)

    def set_recorded_at(self, value: datetime) -> None:
        offset = value.utcoffset()
        assert offset is not None, "recorded_at must be aware"
        self.recorded_at = value.astimezone(UTC)
        self.recorded_offset_minutes = int(offset.total_seconds() // 60)

    def erase(self, *, now: datetime) -> None:
        """Turn the row into a tombstone: no health value survives."""
        for name in CONTENT_COLUMNS:
            setattr(self, name, None)
        self.deleted_at = now
        self.updated_at = now


CONTENT_COLUMNS = (
    "instrument",
    "instrument_version",
    "answers",
    "total",
    "severity",
    "symptoms",
    "craving",
    "craving_scale",
    "sleep_hours",
    "note",
)
