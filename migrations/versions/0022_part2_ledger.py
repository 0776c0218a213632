"""Part 2 (2024): the ledger's purpose and receiving system client; the patient's name at
signing; a consent no longer goes with its recipient's account (no foreign key).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 14:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | Sequence[str] | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Tables whose rows point at consents. On SQLite batch mode rebuilds `consents` (DROP TABLE with
# foreign keys on fires their ON DELETE actions), so their rows are kept aside and put back.
_DEPENDENTS = ("consent_categories", "weekly_summaries", "cows_assessments")


def _rebuild_consents(change) -> None:  # type: ignore[no-untyped-def]
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    if sqlite:
        for table in _DEPENDENTS:
            op.execute(f"CREATE TEMP TABLE _keep_{table} AS SELECT * FROM {table}")  # noqa: S608
        op.execute("CREATE TEMP TABLE _keep_replaces AS SELECT id, replaces_id FROM consents")
    with op.batch_alter_table("consents", schema=None) as batch_op:
        change(batch_op)
    if sqlite:
        for table in _DEPENDENTS:
            op.execute(f"DELETE FROM {table}")  # noqa: S608 (fixed table names)
            op.execute(f"INSERT INTO {table} SELECT * FROM _keep_{table}")  # noqa: S608
            op.execute(f"DROP TABLE _keep_{table}")
        op.execute(
            "UPDATE consents SET replaces_id = (SELECT k.replaces_id FROM _keep_replaces k "
            "WHERE k.id = consents.id)"
        )
        op.execute("DROP TABLE _keep_replaces")


def upgrade() -> None:
    op.add_column("consents", sa.Column("patient_name", sa.String(length=100), nullable=True))
    op.execute(
        "UPDATE consents SET patient_name = "
        "(SELECT users.display_name FROM users WHERE users.id = consents.patient_id)"
    )

    def change(batch_op) -> None:  # type: ignore[no-untyped-def]
        batch_op.alter_column("patient_name", existing_type=sa.String(100), nullable=False)
        batch_op.drop_constraint(op.f("fk_consents_recipient_id_users"), type_="foreignkey")

    _rebuild_consents(change)

    op.add_column("disclosures", sa.Column("purpose", sa.String(length=30), nullable=True))
    op.add_column("disclosures", sa.Column("client_id", sa.Uuid(), nullable=True))
    op.add_column("disclosures", sa.Column("client_name", sa.String(length=200), nullable=True))
    op.execute(
        "UPDATE disclosures SET purpose = COALESCE("
        "(SELECT consents.purpose FROM consents WHERE consents.id = disclosures.consent_id), "
        "'unrecorded')"
    )
    with op.batch_alter_table("disclosures", schema=None) as batch_op:
        batch_op.alter_column("purpose", existing_type=sa.String(30), nullable=False)
        batch_op.create_check_constraint(
            "purpose",
            "purpose IN ('treatment', 'care_coordination', 'patient_request', 'unrecorded')",
        )


def downgrade() -> None:
    with op.batch_alter_table("disclosures", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_disclosures_purpose"), type_="check")
        batch_op.drop_column("client_name")
        batch_op.drop_column("client_id")
        batch_op.drop_column("purpose")
    # Consents whose recipient was erased cannot point at users again: they go, as before.
    op.execute("DELETE FROM consents WHERE recipient_id NOT IN (SELECT id FROM users)")

    def change(batch_op) -> None:  # type: ignore[no-untyped-def]
        batch_op.create_foreign_key(
            op.f("fk_consents_recipient_id_users"),
            "users",
            ["recipient_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.drop_column("patient_name")

    _rebuild_consents(change)
