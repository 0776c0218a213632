"""The per-user change feed that /v1/sync reads: one row per create, update or delete."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base


class Change(Base):
    __tablename__ = "changes"
    __table_args__ = (Index("ix_changes_user_seq", "user_id", "seq"),)

    # A monotonically increasing sequence is the sync cursor: times can tie or go backwards.
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    entity_type: Mapped[str] = mapped_column(String(40))  # checkin, medication, dose, ...
    entity_id: Mapped[uuid.UUID]
    op: Mapped[str] = mapped_column(String(10))  # upsert | delete
    changed_at: Mapped[datetime]
