"""Weekly summaries: build one per consent (with share_weekly_summary) and finished local week,
deliver each after checking its consent again, then tell each clinician by email (a link, no
health data), queued in the outbox. Every step is safe to rerun and to run in two schedulers
at once."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.orm import Session

from api.consent.gate import JobGate
from api.db import utcnow
from api.summaries import services
from jobs.isolation import keyset_batches

log = structlog.get_logger("waymark.jobs.weekly_summaries")


def build_weekly_summaries(session: Session, *, now: Any, config: Mapping[str, Any]) -> int:
    """Build what is missing, one transaction per batch of consents. Returns the count built."""
    cfg = services.SummaryConfig.from_mapping(config)

    def run(after: uuid.UUID | None, limit: int) -> tuple[int, uuid.UUID | None]:
        return services.build_weekly_batch(session, now=now, config=cfg, after=after, limit=limit)

    def next_consent(after: uuid.UUID | None) -> uuid.UUID | None:
        found = JobGate.open(session, now=now).weekly_consents(after=after, limit=1)
        return found[0].id if found else None

    # A consent (one patient's) whose summary fails is logged, counted and skipped.
    return keyset_batches(
        session,
        job="weekly_summaries",
        item="consent_id",
        run=run,
        next_key=next_consent,
        limit=config["WEEKLY_SUMMARY_BATCH_SIZE"],
    )


def deliver_weekly_summaries(
    session: Session, *, now: Any, config: Mapping[str, Any]
) -> dict[str, int]:
    """Deliver what was built (consent checked again at `now`), then queue the notices."""
    delivered = cancelled = 0
    while True:
        done, dropped = services.deliver_weekly_batch(
            session, now=now, limit=config["WEEKLY_SUMMARY_BATCH_SIZE"]
        )
        session.commit()
        delivered, cancelled = delivered + done, cancelled + dropped
        if done + dropped == 0:
            break
    notified = notify_clinicians(session, now=now, config=config)
    return {"delivered": delivered, "cancelled": cancelled, "notified": notified}


def notify_clinicians(session: Session, *, now: Any, config: Mapping[str, Any]) -> int:
    """One email per clinician per batch, queued in the outbox with the summaries marked
    notified, after the deliveries committed. The outbox's sender (send_notifications) sends
    it after this commit, with its retries; nothing leaves the process here."""
    queued = 0
    while True:
        batch = services.queue_notices(session, now=now, limit=config["WEEKLY_SUMMARY_BATCH_SIZE"])
        session.commit()
        queued += batch
        if not batch:
            return queued


def run(
    session: Session,
    *,
    now: Any,
    config: Mapping[str, Any],
    clock: Callable[[], datetime] = utcnow,
) -> dict[str, int]:
    """The scheduler's tick: build at `now`, then deliver with the consent checked at delivery
    time (`clock()`, passed in like the sender's: building a run's batches takes a while)."""
    built = build_weekly_summaries(session, now=now, config=config)
    result = deliver_weekly_summaries(session, now=clock(), config=config)
    return {"built": built, **result}
