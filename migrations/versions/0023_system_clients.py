"""SMART Backend Services clients and their used assertion ids; Bulk Data export levels, the
receiving client and the parameters a lenient kick-off ignored.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import api.db

revision: str = "0023"
down_revision: str | Sequence[str] | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "system_clients",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("clinician_id", sa.Uuid(), nullable=False),
        sa.Column("jwks", sa.JSON(), nullable=True),
        sa.Column("jwks_url", sa.String(length=2000), nullable=True),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", api.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Uuid(), nullable=True),
        sa.Column("disabled_at", api.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "jwks IS NOT NULL OR jwks_url IS NOT NULL", name=op.f("ck_system_clients_has_keys")
        ),
        sa.ForeignKeyConstraint(
            ["clinician_id"],
            ["users.id"],
            name=op.f("fk_system_clients_clinician_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_system_clients_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_system_clients")),
    )
    op.create_index(
        op.f("ix_system_clients_clinician_id"), "system_clients", ["clinician_id"], unique=False
    )
    op.create_table(
        "client_assertions",
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("jti", sa.String(length=255), nullable=False),
        sa.Column("expires_at", api.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["system_clients.id"],
            name=op.f("fk_client_assertions_client_id_system_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("client_id", "jti", name=op.f("pk_client_assertions")),
    )
    op.create_index(
        op.f("ix_client_assertions_expires_at"), "client_assertions", ["expires_at"], unique=False
    )
    with op.batch_alter_table("export_jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("level", sa.String(length=10), server_default="patient", nullable=False)
        )
        batch_op.add_column(sa.Column("group_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("client_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("ignored", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("consent_ids", sa.JSON(), nullable=True))
        batch_op.create_index(batch_op.f("ix_export_jobs_client_id"), ["client_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_export_jobs_client_id_system_clients"),
            "system_clients",
            ["client_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.create_check_constraint("level", "level IN ('patient', 'group', 'system')")


def downgrade() -> None:
    with op.batch_alter_table("export_jobs", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_export_jobs_level"), type_="check")
        batch_op.drop_constraint(
            batch_op.f("fk_export_jobs_client_id_system_clients"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_export_jobs_client_id"))
        batch_op.drop_column("consent_ids")
        batch_op.drop_column("ignored")
        batch_op.drop_column("client_id")
        batch_op.drop_column("group_id")
        batch_op.drop_column("level")
    op.drop_index(op.f("ix_client_assertions_expires_at"), table_name="client_assertions")
    op.drop_table("client_assertions")
    op.drop_index(op.f("ix_system_clients_clinician_id"), table_name="system_clients")
    op.drop_table("system_clients")
