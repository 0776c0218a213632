"""Notifications (one per rule and scheduled instant) and their outbox (one row per channel)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base

STATUSES = ("queued", "sending", "sent", "failed", "missed", "cancelled")
SOURCES = ("schedule", "snooze")


class Notification(Base):
    """A reminder that came due, or a message with no rule (an account notice, the weekly
    summaries' notice to a clinician). (rule_id, scheduled_for) is unique: a rule fires once per
    instant, however many dispatchers race or retry."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("rule_id", "scheduled_for"),
        CheckConstraint("source IN ('schedule', 'snooze')", name="source"),
        # Partial: a notification enters this index only when it reaches the inbox.
        Index(
            "ix_notifications_user_inbox",
            "user_id",
            "inbox_at",
            postgresql_where=text("inbox_at IS NOT NULL"),
            sqlite_where=text("inbox_at IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # The rule may be deleted later; what was delivered stays in the inbox.
    rule_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("reminder_rules.id", ondelete="SET NULL")
    )
    kind: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(10), default="schedule")
    scheduled_for: Mapped[datetime]  # the nominal instant of the occurrence (the key)
    due_at: Mapped[datetime]  # when it is delivered: after quiet hours
    created_at: Mapped[datetime]
    inbox_at: Mapped[datetime | None]  # when it reached the inbox (listed from then on)
    read_at: Mapped[datetime | None]
    # What a message's text needs besides its kind (the weekly notice: the summaries' ids, for
    # their links). Ids only, never content: texts.email_text renders it when sending.
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))


class Delivery(Base):
    """The outbox: one row per notification, channel and target (a push device), with its state.

    queued -> sending (claimed with a lease) -> sent | queued (retry, backoff) | failed;
    queued -> missed (past the grace window before any attempt) | cancelled (rule gone/disabled).
    """

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        UniqueConstraint("notification_id", "channel", "target"),
        CheckConstraint("channel IN ('inbox', 'email', 'push')", name="channel"),
        CheckConstraint(
            "status IN ('queued', 'sending', 'sent', 'failed', 'missed', 'cancelled')",
            name="status",
        ),
        # The sender's access path: queued rows and leases, in due order. Partial, so rows that
        # are done (sent, failed, missed, cancelled) leave it: it stays as small as the backlog.
        Index(
            "ix_notification_deliveries_pending",
            "next_attempt_at",
            postgresql_where=text("status IN ('queued', 'sending')"),
            sqlite_where=text("status IN ('queued', 'sending')"),
        ),
        # For ON DELETE SET NULL when a device goes; inbox and email rows are not in it.
        Index(
            "ix_notification_deliveries_device_id",
            "device_id",
            postgresql_where=text("device_id IS NOT NULL"),
            sqlite_where=text("device_id IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # No index of its own: the unique (notification_id, channel, target) serves lookups by it.
    notification_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("notifications.id", ondelete="CASCADE")
    )
    channel: Mapped[str] = mapped_column(String(10))
    target: Mapped[str] = mapped_column(String(40), default="")  # the device id for push
    device_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("devices.id", ondelete="SET NULL")
    )
    status: Mapped[str] = mapped_column(String(10), default="queued")
    attempts: Mapped[int] = mapped_column(default=0)
    # queued: when to try (first or again); sending: when the claim's lease runs out.
    next_attempt_at: Mapped[datetime]
    claim_token: Mapped[uuid.UUID | None]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(40))  # a short code, never content
