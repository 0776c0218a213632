"""Per-clinician alert acknowledgements, the period of the events an alert describes, and what
of each patient a bulk export holds.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 14:55:23.909340
"""

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa
from alembic import op

import api.db

revision: str = "0019"
down_revision: str | Sequence[str] | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Alerts raised before this revision kept no events period. For the kinds that describe a span,
# it is rebuilt from the episode key, reaching back further than any setting would (the streak of
# a check-in gap, the baseline of a rising trend; one day more for any time zone): an old alert
# may then be hidden from a consent whose window would have allowed it, never the reverse.
_REACH_BACK = {"checkin_gap": timedelta(days=31), "rising_trend": timedelta(days=62)}


def _aware(value: object) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _events_from(kind: str, episode_key: str, fallback: datetime) -> datetime:
    try:
        if kind == "missed_doses":  # "<medication id>:<first missed dose, UTC ISO>"
            start = _aware(episode_key.split(":", 1)[1])
            assert start is not None
            return min(start, fallback)
        if kind in _REACH_BACK:  # "<local day>" or "<series>:<local day>"
            day = date.fromisoformat(episode_key.rsplit(":", 1)[-1])
            start = datetime.combine(day, time(0), tzinfo=UTC) - _REACH_BACK[kind]
            return min(start, fallback)
    except (ValueError, IndexError, AssertionError):
        # An unreadable key: the earliest time anything could be about.
        return datetime(1900, 1, 1, tzinfo=UTC)
    return fallback


_ACKS = sa.table(
    "alert_acknowledgements",
    sa.column("alert_id", sa.Uuid()),
    sa.column("clinician_id", sa.Uuid()),
    sa.column("acknowledged_at", api.db.UTCDateTime(timezone=True)),
)
_ALERTS = sa.table(
    "alerts",
    sa.column("id", sa.Uuid()),
    sa.column("kind", sa.String()),
    sa.column("episode_key", sa.String()),
    sa.column("created_at", api.db.UTCDateTime(timezone=True)),
    sa.column("triggered_at", api.db.UTCDateTime(timezone=True)),
    sa.column("events_from", api.db.UTCDateTime(timezone=True)),
    sa.column("events_to", api.db.UTCDateTime(timezone=True)),
    sa.column("acknowledged_at", api.db.UTCDateTime(timezone=True)),
    sa.column("acknowledged_by_id", sa.Uuid()),
)


def _create_acknowledgements() -> None:
    op.create_table(
        "alert_acknowledgements",
        sa.Column("alert_id", sa.Uuid(), nullable=False),
        sa.Column("clinician_id", sa.Uuid(), nullable=False),
        sa.Column("acknowledged_at", api.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.id"],
            name=op.f("fk_alert_acknowledgements_alert_id_alerts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["clinician_id"],
            ["users.id"],
            name=op.f("fk_alert_acknowledgements_clinician_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("alert_id", "clinician_id", name=op.f("pk_alert_acknowledgements")),
    )
    with op.batch_alter_table("alert_acknowledgements", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_alert_acknowledgements_clinician_id"), ["clinician_id"], unique=False
        )


def upgrade() -> None:
    bind = op.get_bind()
    # An acknowledgement made so far was one clinician's: it stays theirs (one whose account is
    # gone leaves none, and the alert is open again for everyone else, as it should be). Read
    # first: SQLite rebuilds the alerts table below, which would cascade to a table made before.
    acks = [
        {"alert_id": row.id, "clinician_id": row.acknowledged_by_id, "acknowledged_at": row.at}
        for row in bind.execute(
            sa.select(
                _ALERTS.c.id, _ALERTS.c.acknowledged_by_id, _ALERTS.c.acknowledged_at.label("at")
            ).where(
                _ALERTS.c.acknowledged_by_id.is_not(None), _ALERTS.c.acknowledged_at.is_not(None)
            )
        )
    ]
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("events_from", api.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("events_to", api.db.UTCDateTime(timezone=True), nullable=True)
        )
    rows = bind.execute(
        sa.select(
            _ALERTS.c.id,
            _ALERTS.c.kind,
            _ALERTS.c.episode_key,
            _ALERTS.c.created_at,
            _ALERTS.c.triggered_at,
        )
    ).all()
    updates = []
    for row in rows:
        at = _aware(row.triggered_at) or _aware(row.created_at)
        assert at is not None
        updates.append({"_id": row.id, "f": _events_from(row.kind, row.episode_key, at), "t": at})
    if updates:
        bind.execute(
            _ALERTS.update()
            .where(_ALERTS.c.id == sa.bindparam("_id"))
            .values(events_from=sa.bindparam("f"), events_to=sa.bindparam("t")),
            updates,
        )

    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.alter_column(
            "events_from", existing_type=api.db.UTCDateTime(timezone=True), nullable=False
        )
        batch_op.alter_column(
            "events_to", existing_type=api.db.UTCDateTime(timezone=True), nullable=False
        )
        batch_op.create_check_constraint("events_period", "events_to >= events_from")
        batch_op.drop_constraint("acknowledged", type_="check")
        batch_op.drop_constraint(op.f("fk_alerts_acknowledged_by_id_users"), type_="foreignkey")
        batch_op.drop_column("acknowledged_at")
        batch_op.drop_column("acknowledged_by_id")

    _create_acknowledgements()
    if acks:
        bind.execute(_ACKS.insert(), acks)

    with op.batch_alter_table("export_job_patients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("windows", sa.JSON(), nullable=True))


def downgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("export_job_patients", schema=None) as batch_op:
        batch_op.drop_column("windows")

    # Back to one acknowledgement per alert: the earliest clinician's.
    first: dict[object, dict[str, object]] = {}
    for row in bind.execute(
        sa.select(_ACKS).order_by(_ACKS.c.acknowledged_at, _ACKS.c.clinician_id)
    ):
        first.setdefault(
            row.alert_id, {"_id": row.alert_id, "at": row.acknowledged_at, "by": row.clinician_id}
        )
    with op.batch_alter_table("alert_acknowledgements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alert_acknowledgements_clinician_id"))
    op.drop_table("alert_acknowledgements")

    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("acknowledged_by_id", sa.Uuid(), nullable=True))
        batch_op.add_column(
            sa.Column("acknowledged_at", api.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_foreign_key(
            op.f("fk_alerts_acknowledged_by_id_users"),
            "users",
            ["acknowledged_by_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_check_constraint(
            "acknowledged", "acknowledged_by_id IS NULL OR acknowledged_at IS NOT NULL"
        )
        batch_op.drop_constraint("events_period", type_="check")
        batch_op.drop_column("events_to")
        batch_op.drop_column("events_from")
    if first:
        bind.execute(
            _ALERTS.update()
            .where(_ALERTS.c.id == sa.bindparam("_id"))
            .values(acknowledged_at=sa.bindparam("at"), acknowledged_by_id=sa.bindparam("by")),
            list(first.values()),
        )
