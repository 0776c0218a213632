"""Weekly summaries: one per consent and local week, built, then delivered (or cancelled)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base

STATUSES = ("built", "delivered", "cancelled")


class WeeklySummary(Base):
    """The summary of one local week (Monday to Monday in the patient's zone) for the recipient of
    one consent with share_weekly_summary. The unique (consent, week) makes a rerun or a second
    scheduler a no-op. `content` is the summary document as delivered; it is dropped when the
    delivery is cancelled (the consent ended between building and delivering)."""

    __tablename__ = "weekly_summaries"
    __table_args__ = (
        UniqueConstraint("consent_id", "week_start"),
        CheckConstraint(f"status IN ({', '.join(repr(s) for s in STATUSES)})", name="status"),
        CheckConstraint("(status = 'delivered') = (delivered_at IS NOT NULL)", name="delivered_at"),
        CheckConstraint("status <> 'cancelled' OR content IS NULL", name="cancelled_empty"),
        Index("ix_weekly_summaries_clinician_delivered", "clinician_id", "delivered_at"),
        Index("ix_weekly_summaries_status_built", "status", "built_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    consent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consents.id", ondelete="CASCADE"))
    patient_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    clinician_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    week_start: Mapped[date]  # the local Monday
    period_from: Mapped[datetime]
    period_to: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(12), default="built")
    content: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    built_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    # The clinician's notification (a link, no health data) went out; null: still to send.
    notified_at: Mapped[datetime | None]
