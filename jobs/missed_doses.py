"""Store `missed` rows for scheduled doses whose window passed without a log (every few minutes).

Reads compute missed doses on their own; the stored rows make them visible to sync and keep
history after a schedule changes. Each batch of regimens commits on its own.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy.orm import Session

from api.medications import services

log = structlog.get_logger("waymark.jobs.missed_doses")


def run(
    session: Session,
    *,
    now: datetime,
    window_minutes: int,
    lookback_days: int,
    batch_size: int = 500,
) -> int:
    total, after = 0, None
    while True:
        stored, after = services.mark_missed_doses_batch(
            session,
            now=now,
            after=after,
            limit=batch_size,
            window_minutes=window_minutes,
            lookback=timedelta(days=lookback_days),
        )
        session.commit()
        total += stored
        if after is None:
            break
    log.info("job.missed_doses", stored=total)
    return total
