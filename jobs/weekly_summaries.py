"""Weekly summaries: build one per consent (with share_weekly_summary) and finished local week,
deliver each after checking its consent again, then tell each clinician by email (a link, no
health data). Every step is safe to rerun and to run in two schedulers at once."""

from __future__ import annotations

import smtplib
import uuid
from collections.abc import Mapping
from email.message import EmailMessage
from typing import Any

import structlog
from sqlalchemy.orm import Session

from api.consent.gate import JobGate
from api.db import utcnow
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
    notified = notify_clinicians(
        session, now=now, config=config, send_email=send_email or smtp_sender(config)
    )
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


def smtp_sender(config: Mapping[str, Any]) -> SendEmail:
    def send(to: str, subject: str, body: str) -> None:
        message = EmailMessage()
        message["From"] = config["MAIL_FROM"]
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)
        with smtplib.SMTP(config["SMTP_HOST"], config["SMTP_PORT"], timeout=10) as smtp:
            if config["SMTP_STARTTLS"]:
                smtp.starttls()
            if config["SMTP_USERNAME"]:
                smtp.login(config["SMTP_USERNAME"], config["SMTP_PASSWORD"] or "")
            smtp.send_message(message)

    return send


def run(session: Session, *, now: Any, config: Mapping[str, Any]) -> dict[str, int]:
    """The scheduler's tick: build, then deliver with the consent checked at delivery time."""
    built = build_weekly_summaries(session, now=now, config=config)
    result = deliver_weekly_summaries(session, now=utcnow(), config=config)
    return {"built": built, **result}
