"""Reminder rules. `next_fire_at` (UTC) is the claim key of the dispatcher."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base, TimestampMixin
from api.offline import ClientIdMixin

KINDS = ("medication", "checkin", "counseling")
CHANNELS = ("push", "email", "inbox")


class ReminderRule(ClientIdMixin, TimestampMixin, Base):
    __tablename__ = "reminder_rules"
    __table_args__ = (
        CheckConstraint("kind IN ('medication', 'checkin', 'counseling')", name="kind"),
        CheckConstraint("kind = 'counseling' OR local_time IS NOT NULL", name="local_time"),
        CheckConstraint(
            "kind != 'counseling' OR (lead_minutes IS NOT NULL AND lead_minutes >= 0)",
            name="lead_minutes",
        ),
        CheckConstraint(
            "(kind = 'medication') = (medication_id IS NOT NULL)", name="medication_id"
        ),
        # One rule per dose time of a regimen.
        UniqueConstraint("medication_id", "local_time"),
        # The dispatcher's only access path: due rules in fire order. Disabled rules hold NULL.
        Index("ix_reminder_rules_next_fire_at", "next_fire_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(20))
    # Medication rules: the regimen, one rule per dose time, kept in step with it.
    medication_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("medications.id", ondelete="CASCADE")
    )
    local_time: Mapped[str | None] = mapped_column(String(5))  # "HH:MM" in `timezone`
    lead_minutes: Mapped[int | None]
    days_of_week: Mapped[str | None] = mapped_column(String(7))  # ISO weekdays "135"; None: daily
    start_date: Mapped[date | None]
    end_date: Mapped[date | None]
    push: Mapped[bool] = mapped_column(default=True)
    email: Mapped[bool] = mapped_column(default=False)  # the inbox channel is always on
    enabled: Mapped[bool] = mapped_column(default=True)
    # The IANA zone the rule was set in; it follows the user's zone when the user moves.
    timezone: Mapped[str] = mapped_column(String(64))
    # The next occurrence: its local day and nominal instant (the delivery key), and the instant
    # it fires after quiet hours (what the dispatcher claims by). NULL: nothing left to fire.
    next_local_date: Mapped[date | None]
    next_occurrence_at: Mapped[datetime | None]
    next_fire_at: Mapped[datetime | None]
    # The last occurrence dispatched: at most one reminder per local day survives edits and moves.
    last_local_date: Mapped[date | None]
    last_occurrence_at: Mapped[datetime | None]
    snoozed_until: Mapped[datetime | None]

    @property
    def channels(self) -> list[str]:
        return [c for c in CHANNELS if c == "inbox" or getattr(self, c)]

    @property
    def weekdays(self) -> list[int] | None:
        return None if self.days_of_week is None else [int(d) for d in self.days_of_week]
