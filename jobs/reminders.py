"""The reminder jobs: the dispatcher (due rules -> outbox) and the sender (outbox -> channels).

Both are safe to run twice or concurrently (row claims, unique keys, claim tokens), so a crash, a
restart or a second scheduler never sends a reminder twice. Each batch is its own transaction.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Any

import structlog
from sqlalchemy.orm import Session

from api.notifications import services as outbox
from api.notifications.channels import (
    EmailChannel,
    LinkSettings,
    PushChannel,
    PushSettings,
    deliver,
    email_settings,
)
from api.reminders.dispatch import DispatchSettings, dispatch_batch

log = structlog.get_logger("waymark.jobs.reminders")


def dispatch_settings(cfg: Mapping[str, Any]) -> DispatchSettings:
    return DispatchSettings(
        grace=timedelta(minutes=cfg["REMINDER_GRACE_MINUTES"]),
        batch_size=cfg["DISPATCH_BATCH_SIZE"],
    )


def sender_settings(cfg: Mapping[str, Any]) -> outbox.SenderSettings:
    return outbox.SenderSettings(
        grace=timedelta(minutes=cfg["REMINDER_GRACE_MINUTES"]),
        lease=timedelta(seconds=cfg["DELIVERY_LEASE"]),
        max_attempts=cfg["DELIVERY_MAX_ATTEMPTS"],
        backoff_base=timedelta(seconds=cfg["DELIVERY_BACKOFF_BASE"]),
        backoff_cap=timedelta(seconds=cfg["DELIVERY_BACKOFF_CAP"]),
    )


def channels(cfg: Mapping[str, Any]) -> tuple[EmailChannel, PushChannel, LinkSettings]:
    email = EmailChannel(email_settings(cfg))
    push = PushChannel(
        PushSettings(
            endpoint=cfg["PUSH_ENDPOINT"],
            timeout=cfg["PUSH_TIMEOUT"],
            auth_token=cfg["PUSH_AUTH_TOKEN"],
        )
    )
    domain = parseaddr(cfg["MAIL_FROM"])[1].rpartition("@")[2] or "waymark.invalid"
    return email, push, LinkSettings(base_url=cfg["PUBLIC_BASE_URL"], message_domain=domain)


def dispatch_reminders(
    session: Session, *, now: datetime, settings: DispatchSettings, max_batches: int = 1000
) -> int:
    """Dispatch everything due at `now`, one committed transaction per batch. Returns rules."""
    total = 0
    for _ in range(max_batches):
        claimed = dispatch_batch(session, now=now, settings=settings)
        session.commit()
        # The batch wrote with set-based SQL, not through the ORM: forget any loaded rule.
        session.expire_all()
        total += claimed
        if claimed < settings.batch_size:
            break
    return total


def send_notifications(
    session: Session,
    *,
    clock: Callable[[], datetime],
    settings: outbox.SenderSettings,
    batch_size: int,
    email: EmailChannel,
    push: PushChannel,
    links: LinkSettings,
    budget_seconds: float = 60.0,
) -> Counter[str]:
    """Send what is due: claim a batch (commit), send each row, record each outcome (commit).

    A row whose lease has run out before its turn is left alone: it will be claimed again.
    """
    outcomes: Counter[str] = Counter()
    deadline = time.monotonic() + budget_seconds
    try:
        while time.monotonic() < deadline:
            claimed, handled = outbox.claim_deliveries(
                session, now=clock(), limit=batch_size, settings=settings
            )
            session.commit()
            if handled:
                outcomes["handled_in_claim"] += handled
            for item in claimed:
                if clock() >= item.lease_until:
                    outcomes["lease_expired"] += 1
                    continue
                committed: list[bool] = []

                def commit_point(
                    item: outbox.Claimed = item, committed: list[bool] = committed
                ) -> bool:
                    # Everything but the last byte is with the provider: record, then finish.
                    won = outbox.mark_sent(session, claimed=item, now=clock())
                    session.commit()
                    committed.append(won)
                    return won

                result = deliver(item, email=email, push=push, links=links, commit=commit_point)
                if result.outcome in ("sent", "lost") and committed:
                    outcomes[result.outcome] += 1
                    continue
                status = outbox.record_outcome(
                    session,
                    claimed=item,
                    outcome=result.outcome,
                    error=result.error,
                    now=clock(),
                    settings=settings,
                )
                session.commit()
                outcomes[status] += 1
            if not claimed and not handled:
                break
    finally:
        email.close()
    return outcomes
