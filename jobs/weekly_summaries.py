"""Weekly summaries: build one per consent (with share_weekly_summary) and finished local week,
deliver each after checking its consent again, then tell each clinician by email (a link, no
health data). Every step is safe to rerun and to run in two schedulers at once."""

from __future__ import annotations

import smtplib
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from email.utils import make_msgid, parseaddr
from typing import Any

import structlog
from sqlalchemy.orm import Session

from api.consent.gate import JobGate
from api.db import utcnow
from api.notifications.channels import EmailChannel, email_settings
from api.summaries import services
from api.summaries.services import SendEmail
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
    session: Session,
    *,
    now: Any,
    config: Mapping[str, Any],
    send_email: SendEmail | None = None,
) -> dict[str, int]:
    """Deliver what was built (consent checked again at `now`), then send the notifications."""
    delivered = cancelled = 0
    while True:
        done, dropped = services.deliver_weekly_batch(
            session, now=now, limit=config["WEEKLY_SUMMARY_BATCH_SIZE"]
        )
        session.commit()
        delivered, cancelled = delivered + done, cancelled + dropped
        if done + dropped == 0:
            break
    close: Callable[[], None] | None = None
    if send_email is None:
        send_email, close = outbox_sender(config)
    try:
        notified = notify_clinicians(session, now=now, config=config, send_email=send_email)
    finally:
        if close is not None:
            close()
    return {"delivered": delivered, "cancelled": cancelled, "notified": notified}


def notify_clinicians(
    session: Session, *, now: Any, config: Mapping[str, Any], send_email: SendEmail
) -> int:
    """One email per clinician per run; after the deliveries committed, never inside them.
    A failed send leaves its summaries to the next run."""
    sent = 0
    while True:
        batch = services.pending_notifications(session, limit=config["WEEKLY_SUMMARY_BATCH_SIZE"])
        progressed = False
        for note in batch:
            subject, body = services.notification_email(note, base_url=config["PUBLIC_BASE_URL"])
            try:
                send_email(note.email, subject, body)
            except (OSError, smtplib.SMTPException) as exc:
                log.warning(
                    "weekly_summaries.notify_failed",
                    clinician_id=str(note.clinician_id),
                    error_type=type(exc).__name__,
                )
                continue
            services.mark_notified(session, summary_ids=note.summary_ids, now=now)
            log.info("weekly_summaries.notified", clinician_id=str(note.clinician_id))
            sent += 1
            progressed = True
        session.commit()
        if not progressed:
            return sent


def outbox_sender(config: Mapping[str, Any]) -> tuple[SendEmail, Callable[[], None]]:
    """(send, close): the notices go out through the outbox's email channel (api.notifications:
    its SMTP client and settings, SMTP_TIMEOUT included), one connection for the run."""
    channel = EmailChannel(email_settings(config))
    domain = parseaddr(config["MAIL_FROM"])[1].rpartition("@")[2] or "waymark.invalid"

    def send(to: str, subject: str, body: str) -> None:
        result = channel.send(
            to=to, subject=subject, body=body, message_id=make_msgid(domain=domain)
        )
        if result.outcome != "sent":
            raise smtplib.SMTPException(result.error or result.outcome)

    return send, channel.close


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
