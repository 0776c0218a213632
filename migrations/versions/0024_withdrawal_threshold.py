"""Alerts: the `severe_withdrawal` flag is `withdrawal_threshold` (it tests a threshold; COWS 25
is "moderately severe" and SOWS has no published bands). Stored alerts are renamed.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06 15:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0024"
down_revision: str | Sequence[str] | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("UPDATE alerts SET kind = 'withdrawal_threshold' WHERE kind = 'severe_withdrawal'")


def downgrade() -> None:
    op.execute("UPDATE alerts SET kind = 'severe_withdrawal' WHERE kind = 'withdrawal_threshold'")
