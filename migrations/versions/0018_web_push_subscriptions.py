"""Devices: Web Push subscription keys (p256dh, auth) beside the endpoint kept as the token.

Revision ID: 0018
Revises: 0009
Create Date: 2026-12-06 15:00:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import api.db

revision: str = "0018"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("push_p256dh", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("push_auth", sa.String(length=40), nullable=True))
    # A web device registered before this held only an endpoint: nothing can be encrypted to it,
    # so it is disabled until the browser registers its whole subscription again.
    devices = sa.table(
        "devices",
        sa.column("platform", sa.String),
        sa.column("disabled_at", api.db.UTCDateTime(timezone=True)),
        sa.column("disabled_reason", sa.String),
    )
    op.execute(
        devices.update()
        .where(devices.c.platform == "web", devices.c.disabled_at.is_(None))
        .values(disabled_at=datetime.now(UTC), disabled_reason="subscription_incomplete")
    )


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("push_auth")
        batch.drop_column("push_p256dh")
