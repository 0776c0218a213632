"""Store `missed` rows for scheduled doses whose window passed without a log (every few minutes).

Reads compute missed doses on their own; the stored rows make them visible to sync and keep
history after a schedule changes. Each batch of regimens commits on its own.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import structlog
from sqlalchemy.orm import Session

from api.medications import services
from jobs.isolation import keyset_batches

log = structlog.get_logger("waymark.jobs.missed_doses")


def run(
    session: Session,
    *,
    now: datetime,
    window_minutes: int,
    lookback_days: int,
    batch_size: int = 500,
) -> int:
    lookback = timedelta(days=lookback_days)

    def run_batch(after: uuid.UUID | None, limit: int) -> tuple[int, uuid.UUID | None]:
        return services.mark_missed_doses_batch(
            session,
            now=now,
            after=after,
            limit=limit,
            window_minutes=window_minutes,
            lookback=lookback,
        )

    def next_regimen(after: uuid.UUID | None) -> uuid.UUID | None:
        return services.next_materialisable(
            session, now=now, after=after, window_minutes=window_minutes, lookback=lookback
        )

    # A regimen (one patient's) that fails is logged, counted and skipped.
    total = keyset_batches(
        session,
        job="missed_doses",
        item="medication_id",
        run=run_batch,
        next_key=next_regimen,
        limit=batch_size,
    )
    log.info("job.missed_doses", stored=total)
    return total
