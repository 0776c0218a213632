"""A consent holds the ten elements of 42 CFR 2.31 and is never edited once signed."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, event, inspect
from sqlalchemy.orm import Mapped, mapped_column, relationship, synonym

from api.categories import CATEGORIES
from api.db import Base, ImmutableRecord
from api.offline import ClientIdMixin

PURPOSES = ("treatment", "care_coordination", "patient_request")
STATUSES = ("active", "expired", "revoked")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Consent(ClientIdMixin, Base):
    """One signed consent from a patient (1) to let the program (2) disclose categories (3) to a
    named clinician (4) for a purpose (5), revocable as stated (6), until expires_at (7), signed
    by typed name from the patient's authenticated account (8) at signed_at (9), on a text
    version (10)."""

    __tablename__ = "consents"
    __table_args__ = (
        CheckConstraint(_in("purpose", PURPOSES), name="purpose"),
        CheckConstraint("expires_at IS NOT NULL OR purpose = 'treatment'", name="expiry_required"),
        CheckConstraint(
            "expires_at IS NULL OR expires_at > signed_at", name="expires_after_signed"
        ),
        CheckConstraint(
            "revoked_at IS NULL OR revoked_at >= signed_at", name="revoked_after_signed"
        ),
        Index("ix_consents_recipient_patient", "recipient_id", "patient_id"),
        Index("ix_consents_patient_signed", "patient_id", "signed_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # The authenticated account that signed is the patient's own: only the patient can create it.
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    discloser: Mapped[str] = mapped_column(String(200))
    recipient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # The recipient as named when signed (a later rename does not rewrite a signed document).
    recipient_name: Mapped[str] = mapped_column(String(100))
    recipient_organization: Mapped[str | None] = mapped_column(String(200))
    purpose: Mapped[str] = mapped_column(String(30))
    revocation_statement: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime | None]
    # The period of data the consent names starts here (None: from signed_at).
    data_from: Mapped[datetime | None]
    signature: Mapped[str] = mapped_column(String(200))
    consent_text_version: Mapped[str] = mapped_column(String(40))
    signed_at: Mapped[datetime]
    share_weekly_summary: Mapped[bool] = mapped_column(default=False)
    replaces_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("consents.id", ondelete="SET NULL")
    )
    revoked_at: Mapped[datetime | None]

    category_rows: Mapped[list[ConsentCategory]] = relationship(
        lazy="selectin",
        order_by="ConsentCategory.category",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    # ClientIdMixin (offline-safe creates) names the owner user_id.
    user_id = synonym("patient_id")

    @property
    def categories(self) -> list[str]:
        return [row.category for row in self.category_rows]

    def status_at(self, at: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= at:
            return "expired"
        return "active"


class ConsentCategory(Base):
    __tablename__ = "consent_categories"
    __table_args__ = (CheckConstraint(_in("category", CATEGORIES), name="category"),)

    consent_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("consents.id", ondelete="CASCADE"), primary_key=True
    )
    category: Mapped[str] = mapped_column(String(20), primary_key=True)


# Once signed, only revoked_at may be set; anything else is a new consent.
_MUTABLE_CONSENT_FIELDS = {"revoked_at"}


@event.listens_for(Consent, "before_update")
def _consent_is_immutable(_mapper: Any, _connection: Any, target: Consent) -> None:
    state = inspect(target)
    changed = {
        attr.key
        for attr in state.mapper.column_attrs
        if state.attrs[attr.key].history.has_changes()
    }
    if changed - _MUTABLE_CONSENT_FIELDS:
        raise ImmutableRecord(f"a signed consent is never edited: {sorted(changed)}")


@event.listens_for(ConsentCategory, "before_update")
def _category_is_immutable(_mapper: Any, _connection: Any, _target: ConsentCategory) -> None:
    raise ImmutableRecord("a signed consent's categories are never edited")
