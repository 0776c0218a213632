"""COWS assessments a clinician records for a consented patient."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, synonym

from api.db import Base
from api.offline import ClientIdMixin


class CowsAssessment(ClientIdMixin, Base):
    """One Clinical Opiate Withdrawal Scale assessment, scored by the instruments definition.

    The patient's record: it goes with the patient's account; the author may be erased later."""

    __tablename__ = "cows_assessments"
    __table_args__ = (
        CheckConstraint("total >= 0", name="total"),
        Index("ix_cows_assessments_patient_assessed", "patient_id", "assessed_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    clinician_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    consent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("consents.id", ondelete="SET NULL")
    )
    assessed_at: Mapped[datetime]
    instrument_version: Mapped[str] = mapped_column(String(20))
    answers: Mapped[dict[str, Any]] = mapped_column(JSON)
    total: Mapped[int]
    severity: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]

    # Offline-safe creates: a replay is recognised for the clinician who made it.
    user_id = synonym("clinician_id")
