"""Dashboard sign-ins: server-side sessions behind an opaque cookie."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base


class ClinicSession(Base):
    """One dashboard sign-in. The cookie holds a random token; only its hash is stored, so a
    database read does not yield live cookies. `stage` is "password" until the second factor
    (or enrolment) is done, then "full"."""

    __tablename__ = "clinic_sessions"
    __table_args__ = (CheckConstraint("stage IN ('password', 'full')", name="stage"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    stage: Mapped[str] = mapped_column(String(10))
    csrf_token: Mapped[str] = mapped_column(String(64))
    # An enrolment in progress: the secret shown as a QR code, kept here until confirmed.
    # Sealed like users.totp_secret (api.auth.mfa.SecretBox).
    pending_totp_secret: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    ended_reason: Mapped[str | None] = mapped_column(String(20))
