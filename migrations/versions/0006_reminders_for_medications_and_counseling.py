"""Reminders for medications and counseling; joins the medications (0003) and reminders (0004)
branches

Revision ID: 0006
Revises: 0003, 0004
Create Date: 2026-11-26 05:00:00
"""

from collections.abc import Sequence

revision: str = "0006"
down_revision: str | Sequence[str] | None = ("0003", "0004")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
