"""Alerts: an acknowledgement carries the acknowledging clinician's optional note.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-06 17:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | Sequence[str] | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alert_acknowledgements", schema=None) as batch_op:
        batch_op.add_column(sa.Column("note", sa.Text(), nullable=True))
        batch_op.create_check_constraint("note_length", "length(note) <= 1000")


def downgrade() -> None:
    with op.batch_alter_table("alert_acknowledgements", schema=None) as batch_op:
        batch_op.drop_constraint("note_length", type_="check")
        batch_op.drop_column("note")
