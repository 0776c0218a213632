"""SMART Backend Services clients: systems (an EHR, a registry) that export on a clinician's
consents with a signed JWT instead of a person's sign-in."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base


class SystemClient(Base):
    """A registered system client. It acts for one clinician and never reaches more than that
    clinician's consents allow; every export it makes is a disclosure to that clinician, received
    by this client (the ledger names both)."""

    __tablename__ = "system_clients"
    __table_args__ = (CheckConstraint("jwks IS NOT NULL OR jwks_url IS NOT NULL", name="has_keys"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)  # client_id
    name: Mapped[str] = mapped_column(String(200))
    # The clinician on whose consents it acts; the client goes with that account.
    clinician_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    jwks: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # public keys only
    jwks_url: Mapped[str | None] = mapped_column(String(2000))
    scopes: Mapped[list[str]] = mapped_column(JSON)  # e.g. ["system/*.read"]
    created_at: Mapped[datetime]
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    disabled_at: Mapped[datetime | None]


class ClientAssertion(Base):
    """A `jti` a client has used, kept until its assertion expires: a replay is refused."""

    __tablename__ = "client_assertions"

    client_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("system_clients.id", ondelete="CASCADE"), primary_key=True
    )
    jti: Mapped[str] = mapped_column(String(255), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)
