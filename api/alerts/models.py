"""Alerts: one row per patient, kind and episode; acknowledged once."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from api.consent.models import CATEGORIES
from api.db import Base


class Alert(Base):
    """An alert about a patient's data; `category` is the consent category it derives from, so a
    clinician sees it only under a consent granting that category."""

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("patient_id", "kind", "episode_key"),
        CheckConstraint(f"category IN ({', '.join(repr(c) for c in CATEGORIES)})", name="category"),
        # The acknowledging clinician may be erased later (SET NULL); the time stays.
        CheckConstraint(
            "acknowledged_by_id IS NULL OR acknowledged_at IS NOT NULL", name="acknowledged"
        ),
        Index("ix_alerts_patient_created", "patient_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    clinician_visible: Mapped[bool] = mapped_column(default=True)
    category: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(40))
    # Identifies one episode of a kind (e.g. the ISO week), so a job raising it twice is a no-op.
    episode_key: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
