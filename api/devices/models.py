"""Push devices. The token is a credential: it never appears in logs, errors or responses."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base, TimestampMixin
from api.offline import ClientIdMixin

PLATFORMS = ("ios", "android", "web")


class Device(ClientIdMixin, TimestampMixin, Base):
    __tablename__ = "devices"
    __table_args__ = (CheckConstraint("platform IN ('ios', 'android', 'web')", name="platform"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    platform: Mapped[str] = mapped_column(String(10))
    # Uniqueness is on the hash, so a constraint violation can never quote the token itself.
    token: Mapped[str] = mapped_column(Text)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Web Push: the subscription's keys (the endpoint is the token); the payload is encrypted to
    # them (RFC 8291). Base64url: a P-256 public key (65 bytes) and a 16-byte secret.
    push_p256dh: Mapped[str | None] = mapped_column(String(100))
    push_auth: Mapped[str | None] = mapped_column(String(40))
    disabled_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(String(40))

    @property
    def enabled(self) -> bool:
        return self.disabled_at is None

    def __repr__(self) -> str:
        return f"<Device {self.id} {self.platform}>"
