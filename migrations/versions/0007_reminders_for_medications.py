"""Medication reminders: one rule per dose time of a regimen; joins the medications (0003) and
reminders (0004) branches

Revision ID: 0006
Revises: 0003, 0004
Create Date: 2026-11-26 04:57:53.245250
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("reminder_rules", schema=None) as batch_op:
        batch_op.add_column(sa.Column("medication_id", sa.Uuid(), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_reminder_rules_medication_id_local_time"),
            ["medication_id", "local_time"],
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_reminder_rules_medication_id_medications"),
            "medications",
            ["medication_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.create_check_constraint(
            batch_op.f("ck_reminder_rules_medication_id"),
            "(kind = 'medication') = (medication_id IS NOT NULL)",
        )


def downgrade() -> None:
    with op.batch_alter_table("reminder_rules", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_reminder_rules_medication_id"), type_="check")
        batch_op.drop_constraint(
            batch_op.f("fk_reminder_rules_medication_id_medications"), type_="foreignkey"
        )
        batch_op.drop_constraint(
            batch_op.f("uq_reminder_rules_medication_id_local_time"), type_="unique"
        )
        batch_op.drop_column("medication_id")
