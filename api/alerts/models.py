"""Alerts: one row per patient, kind and episode; each clinician acknowledges for themselves."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from api.consent.models import CATEGORIES
from api.db import Base

# An acknowledgement note is a line or two for the clinician's own record ("called, stable"),
# bounded so one request cannot store an essay.
NOTE_MAX = 1000


class Alert(Base):
    """An alert about a patient's data; `category` is the consent category it derives from, so a
    clinician sees it only under a consent granting that category."""

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("patient_id", "kind", "episode_key"),
        CheckConstraint(f"category IN ({', '.join(repr(c) for c in CATEGORIES)})", name="category"),
        CheckConstraint("events_to >= events_from", name="events_period"),
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
    # When the evidence occurred (a reading, a dose window closing) and what it was, in words
    # for the clinician (never advice to the patient). Health data: shown only under consent.
    triggered_at: Mapped[datetime | None]
    detail: Mapped[str | None] = mapped_column(Text)
    # The period of the events the alert describes (a reading: its instant; a run of missed
    # doses: from the first dose to the last one's window closing; a check-in gap: from the first
    # check-in of the streak to the end of the gap). An alert is data about those events: the
    # consent gate judges it by this period, never by when the job happened to raise it.
    events_from: Mapped[datetime]
    events_to: Mapped[datetime]


class AlertAcknowledgement(Base):
    """One clinician's acknowledgement of an alert. Acknowledging is per clinician: it hides the
    alert from that clinician's open list only, and no clinician learns who else acknowledged
    (that would reveal another treating relationship). The note is health-adjacent text: shown
    to its author only, never logged."""

    __tablename__ = "alert_acknowledgements"
    __table_args__ = (CheckConstraint(f"length(note) <= {NOTE_MAX}", name="note_length"),)

    alert_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True
    )
    clinician_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    acknowledged_at: Mapped[datetime]
    note: Mapped[str | None] = mapped_column(Text)
