"""The disclosure ledger: append-only, kept 6 years, never holding health values."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Index, String, event
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base, ImmutableRecord

KINDS = ("read", "summary", "export")


class Disclosure(Base):
    """One disclosure: when, to whom, under which consent, which categories, which data period.

    No foreign keys on purpose: the ledger outlives an erased account or consent (the law keeps
    who received which category when), and an ON DELETE action would rewrite an append-only row.
    """

    __tablename__ = "disclosures"
    __table_args__ = (
        CheckConstraint("kind IN ('read', 'summary', 'export')", name="kind"),
        CheckConstraint("data_from <= data_to", name="period"),
        Index("ix_disclosures_patient_at", "patient_id", "at"),
        Index("ix_disclosures_consent_at", "consent_id", "at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    at: Mapped[datetime]
    patient_id: Mapped[uuid.UUID]
    recipient_id: Mapped[uuid.UUID]
    recipient_name: Mapped[str] = mapped_column(String(100))
    recipient_organization: Mapped[str | None] = mapped_column(String(200))
    consent_id: Mapped[uuid.UUID]
    kind: Mapped[str] = mapped_column(String(10))
    categories: Mapped[list[str]] = mapped_column(JSON)
    data_from: Mapped[datetime]
    data_to: Mapped[datetime]

    @property
    def recipient(self) -> dict[str, Any]:
        return {
            "id": self.recipient_id,
            "display_name": self.recipient_name,
            "organization": self.recipient_organization,
        }


@event.listens_for(Disclosure, "before_update")
@event.listens_for(Disclosure, "before_delete")
def _append_only(_mapper: Any, _connection: Any, _target: Disclosure) -> None:
    raise ImmutableRecord("the disclosure ledger is append-only")
