"""Delete Idempotency-Key records past their expiry (IDEMPOTENCY_TTL, at least 24 hours)."""

from __future__ import annotations

from datetime import datetime

import structlog
from sqlalchemy.orm import Session

from api import idempotency

log = structlog.get_logger("waymark.jobs")


def purge(session: Session, *, now: datetime) -> int:
    """Safe to run twice or from two schedulers: it deletes by expiry, nothing else."""
    removed = idempotency.purge_expired(session, now=now)
    log.info("idempotency.purged", removed=removed)
    return removed
