"""Queue notifications with their outbox rows, claim due rows for sending, record the outcome.

Exactly-once rests on three things: the unique (rule_id, scheduled_for) key of a notification
(a second dispatcher or a retried batch inserts nothing), the claim (a row moves queued ->
sending under FOR UPDATE SKIP LOCKED, with a lease and a claim token, and is committed before
anything leaves the process), and the conditional mark (sending -> sent only for the holder of
the claim token). A sender that dies after the claim leaves a row whose lease runs out; it is
claimed again, so nothing is lost. See docs/reminders.md for the one window that remains.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import and_, select, text, update
from sqlalchemy.orm import Session

from api.auth import signals as auth_signals
from api.auth.models import User
from api.devices.models import Device
from api.notifications import bulk
from api.notifications.models import Delivery, Notification

log = structlog.get_logger("waymark.notifications")

# Literal, so the planner can match the partial index ix_notification_deliveries_pending.
PENDING = text("notification_deliveries.status IN ('queued', 'sending')")


@dataclass(frozen=True)
class Occurrence:
    """One reminder that came due (or was snoozed), ready to be queued."""

    user_id: uuid.UUID
    rule_id: uuid.UUID
    kind: str
    scheduled_for: datetime
    due_at: datetime
    email: bool
    push: bool
    missed: bool = False
    source: str = "schedule"


@dataclass(frozen=True)
class SenderSettings:
    grace: timedelta  # a delivery not attempted this long after it was due is missed
    lease: timedelta  # how long a claim holds before another sender may take the row
    max_attempts: int
    backoff_base: timedelta  # retry n waits base * 2**(n-1), at most backoff_cap
    backoff_cap: timedelta


def _rowcount(result: Any) -> int:
    """Rows an UPDATE matched (a CursorResult's rowcount; typed loosely by SQLAlchemy)."""
    return int(result.rowcount)


def enqueue(
    session: Session, *, occurrences: Sequence[Occurrence], now: datetime
) -> set[uuid.UUID]:
    """Insert a notification per occurrence unless its (rule, instant) exists, and its outbox
    rows: inbox always, email and push (one per active device) as the rule asks. Missed
    occurrences are recorded with every row `missed`. Returns the ids inserted; flushes only."""
    if not occurrences:
        return set()
    rows = [
        {
            "id": uuid.uuid4(),
            "user_id": o.user_id,
            "rule_id": o.rule_id,
            "kind": o.kind,
            "source": o.source,
            "scheduled_for": o.scheduled_for,
            "due_at": o.due_at,
            "created_at": now,
        }
        for o in occurrences
    ]
    inserted = set(
        bulk.insert_rows(
            session,
            Notification.__table__,  # type: ignore[arg-type]
            rows,
            on_conflict_do_nothing=("rule_id", "scheduled_for"),
            returning="id",
        )
    )

    fresh = [(o, r["id"]) for o, r in zip(occurrences, rows, strict=True) if r["id"] in inserted]
    devices = _active_devices(session, {o.user_id for o, _ in fresh if o.push and not o.missed})
    deliveries: list[dict[str, Any]] = []
    for occurrence, notification_id in fresh:
        base = {
            "notification_id": notification_id,
            "status": "missed" if occurrence.missed else "queued",
            "attempts": 0,
            "next_attempt_at": occurrence.due_at,
            "device_id": None,  # every row carries every key: executemany uses the first's
        }
        deliveries.append({**base, "id": uuid.uuid4(), "channel": "inbox", "target": ""})
        if occurrence.email:
            deliveries.append({**base, "id": uuid.uuid4(), "channel": "email", "target": ""})
        for device_id in devices.get(occurrence.user_id, ()) if occurrence.push else ():
            deliveries.append(
                {
                    **base,
                    "id": uuid.uuid4(),
                    "channel": "push",
                    "target": str(device_id),
                    "device_id": device_id,
                }
            )
    bulk.insert_rows(session, Delivery.__table__, deliveries)  # type: ignore[arg-type]
    return inserted


# Not reminders: the email that tells an account's owner someone tried to register with its
# address (registration answers the same either way, so only the owner learns of it), and the
# weekly summaries' notice to a clinician (links, no health data).
ACCOUNT_EXISTS = "account_exists"
WEEKLY_SUMMARIES = "weekly_summaries"
# The emails that carry a single-use token (password reset, address verification):
# api.auth.email_tokens derives the token from the notification's id, and the sender writes it
# into the message; nothing stores it.
PASSWORD_RESET = "password_reset"
VERIFY_EMAIL = "verify_email"
MESSAGES = frozenset({ACCOUNT_EXISTS, WEEKLY_SUMMARIES, PASSWORD_RESET, VERIFY_EMAIL})


def queue_email(
    session: Session,
    *,
    user_id: uuid.UUID,
    kind: str,
    now: datetime,
    payload: dict[str, Any] | None = None,
) -> uuid.UUID:
    """Queue one email to the user, through the outbox like every email (sent after the commit
    by the sender, with its retries): no inbox row, no push, no rule. `payload` holds what the
    text needs besides the kind (ids, never content). Flushes only."""
    notification = Notification(
        user_id=user_id,
        rule_id=None,  # no rule: never matches the (rule_id, scheduled_for) key of a reminder
        kind=kind,
        source="schedule",
        scheduled_for=now,
        due_at=now,
        created_at=now,
        payload=payload,
    )
    session.add(notification)
    session.flush()
    session.add(
        Delivery(
            notification_id=notification.id,
            channel="email",
            target="",
            status="queued",
            attempts=0,
            next_attempt_at=now,
        )
    )
    session.flush()
    log.info("notification.email_queued", notification_id=str(notification.id), kind=kind)
    return notification.id


def queue_account_exists_email(session: Session, *, user_id: uuid.UUID, now: datetime) -> uuid.UUID:
    """Queue the account notice (see ACCOUNT_EXISTS). Flushes only."""
    return queue_email(session, user_id=user_id, kind=ACCOUNT_EXISTS, now=now)


@auth_signals.address_taken.connect
def _on_address_taken(session: Session, *, user_id: uuid.UUID, now: datetime) -> None:
    queue_account_exists_email(session, user_id=user_id, now=now)


@auth_signals.email_token_requested.connect
def _on_email_token(
    session: Session, *, user_id: uuid.UUID, purpose: str, now: datetime
) -> uuid.UUID:
    return queue_email(session, user_id=user_id, kind=purpose, now=now)


def _active_devices(session: Session, user_ids: set[uuid.UUID]) -> dict[uuid.UUID, list[uuid.UUID]]:
    found: dict[uuid.UUID, list[uuid.UUID]] = {}
    if not user_ids:
        return found
    rows = session.execute(
        select(Device.user_id, Device.id)
        .where(Device.user_id.in_(user_ids), Device.disabled_at.is_(None))
        .order_by(Device.created_at)
    )
    for user_id, device_id in rows:
        found.setdefault(user_id, []).append(device_id)
    return found


def cancel_pending(session: Session, *, rule_id: uuid.UUID, source: str | None = None) -> int:
    """Cancel what a rule has queued and not yet sent (the rule was disabled or deleted)."""
    notifications = select(Notification.id).where(Notification.rule_id == rule_id)
    if source is not None:
        notifications = notifications.where(Notification.source == source)
    return _rowcount(
        session.execute(
            update(Delivery)
            .where(Delivery.status == "queued", Delivery.notification_id.in_(notifications))
            .values(status="cancelled", last_error="rule_changed")
            .execution_options(synchronize_session=False)
        )
    )


# ---------------------------------------------------------------------------------------------
# The sender's side: claim, then (outside any transaction) send, then record.


@dataclass(frozen=True)
class Claimed:
    """A delivery claimed for sending, with what the channel needs (loaded in the claim)."""

    delivery_id: uuid.UUID
    claim_token: uuid.UUID
    channel: str
    attempts: int
    notification_id: uuid.UUID
    kind: str
    user_id: uuid.UUID
    email: str
    discreet: bool
    device_id: uuid.UUID | None
    platform: str | None
    device_token: str | None
    lease_until: datetime
    due_at: datetime | None = None  # push: a reminder is stale PUSH_TTL after it
    push_p256dh: str | None = None  # Web Push subscription keys
    push_auth: str | None = None
    payload: dict[str, Any] | None = None  # a message's ids (Notification.payload)

    def __repr__(self) -> str:  # the email address and device token stay out of any log
        return f"<Claimed {self.delivery_id} {self.channel} attempt {self.attempts}>"


def claim_deliveries(
    session: Session, *, now: datetime, limit: int, settings: SenderSettings
) -> tuple[list[Claimed], int]:
    """Claim up to `limit` due outbox rows (queued, or sending with an expired lease).

    Inbox rows are delivered here (no side effect leaves the process); rows past the grace
    window become missed (never attempted) or failed (attempted, gave up); push rows whose device
    is gone fail. The rest move to `sending` with a lease. Returns (claimed, rows settled here).
    Flushes only: the caller commits before sending anything.
    """
    rows = session.execute(
        select(Delivery, Notification, User.email, User.discreet_notifications, Device)
        .join(Notification, Notification.id == Delivery.notification_id)
        .join(User, User.id == Notification.user_id)
        .outerjoin(Device, Device.id == Delivery.device_id)
        .where(PENDING, Delivery.next_attempt_at <= now)
        .order_by(Delivery.next_attempt_at)
        .limit(limit)
        .with_for_update(of=Delivery, skip_locked=True)
    ).all()
    claimed: list[Claimed] = []
    for delivery, notification, email, discreet, device in rows:
        # A reminder past its grace is stale: recorded, not sent. A message (MESSAGES) is as
        # useful late: it waits out a sender that was down, and only the attempts bound it.
        late = notification.kind not in MESSAGES and now - notification.due_at > settings.grace
        if late:
            delivery.status = "missed" if delivery.attempts == 0 else "failed"
            delivery.last_error = "past_grace"
            log.info("delivery.missed", delivery_id=str(delivery.id), channel=delivery.channel)
            continue
        if delivery.channel == "inbox":
            delivery.status, delivery.sent_at, delivery.attempts = "sent", now, 1
            notification.inbox_at = notification.inbox_at or now
            continue
        if delivery.channel == "push" and (device is None or device.disabled_at is not None):
            delivery.status, delivery.last_error = "failed", "device_disabled"
            continue
        delivery.status = "sending"
        delivery.attempts += 1
        delivery.next_attempt_at = now + settings.lease
        delivery.claim_token = uuid.uuid4()
        claimed.append(
            Claimed(
                delivery_id=delivery.id,
                claim_token=delivery.claim_token,
                channel=delivery.channel,
                attempts=delivery.attempts,
                notification_id=notification.id,
                kind=notification.kind,
                user_id=notification.user_id,
                email=email,
                discreet=discreet,
                device_id=device.id if device is not None else None,
                platform=device.platform if device is not None else None,
                device_token=device.token if device is not None else None,
                lease_until=delivery.next_attempt_at,
                due_at=notification.due_at,
                push_p256dh=device.push_p256dh if device is not None else None,
                push_auth=device.push_auth if device is not None else None,
                payload=notification.payload,
            )
        )
    session.flush()
    return claimed, len(rows) - len(claimed)


def release_orphaned_claims(session: Session, *, now: datetime) -> int:
    """Free every row still `sending`: for the one sender that runs (the scheduler leader, one run
    at a time), such a row was claimed by a run that never finished it (a killed leader, a run cut
    by a database outage). Its claim token changes, so a late sender that still holds the old one
    can no longer commit it, and with the commit before the last byte it sends nothing either.
    Returns the rows freed; flushes only."""
    return _rowcount(
        session.execute(
            update(Delivery)
            .where(PENDING, Delivery.status == "sending")
            .values(status="queued", next_attempt_at=now, claim_token=None)
            .execution_options(synchronize_session=False)
        )
    )


def backoff(attempts: int, settings: SenderSettings) -> timedelta:
    """Wait before retry after `attempts` failed tries: base, 2*base, 4*base, ... up to the cap."""
    return min(settings.backoff_base * 2 ** max(attempts - 1, 0), settings.backoff_cap)


def mark_sent(session: Session, *, claimed: Claimed, now: datetime) -> bool:
    """The commit point: record the delivery as sent while the claim is still ours (the caller
    commits at once, then lets the provider act). False if the claim was taken over."""
    won = _rowcount(
        session.execute(
            update(Delivery)
            .where(
                Delivery.id == claimed.delivery_id,
                Delivery.claim_token == claimed.claim_token,
                Delivery.status == "sending",
            )
            .values(status="sent", sent_at=now, last_error=None)
            .execution_options(synchronize_session=False)
        )
    )
    log.info(
        "delivery.sent" if won else "delivery.claim_lost",
        delivery_id=str(claimed.delivery_id),
        channel=claimed.channel,
        attempt=claimed.attempts,
    )
    return won == 1


def record_outcome(
    session: Session,
    *,
    claimed: Claimed,
    outcome: str,
    error: str | None,
    now: datetime,
    settings: SenderSettings,
    retry_after: float | None = None,
) -> str:
    """Record what the channel answered: "sent", "retry", "deferred", "failed" or
    "invalid_token". A retry waits the backoff, or the provider's Retry-After when longer; a
    deferred row (its provider paused, nothing attempted) waits `retry_after` and gets its
    attempt back.

    Only the holder of the claim token can change the row, so a sender whose lease ran out and
    was taken over records nothing. A row already marked sent at the commit point is set back
    when the provider refused it after all. Returns the new status ("lost" if the claim was lost).
    """
    values: dict[str, Any]
    asked = timedelta(seconds=retry_after or 0)
    if outcome == "sent":
        values = {"status": "sent", "sent_at": now, "last_error": None}
    elif outcome == "deferred":
        values = {
            "status": "queued",
            "next_attempt_at": now + max(asked, timedelta(seconds=1)),
            "attempts": Delivery.attempts - 1,
            "last_error": error,
        }
    elif outcome == "retry" and claimed.attempts < settings.max_attempts:
        wait = max(backoff(claimed.attempts, settings), asked)
        values = {"status": "queued", "next_attempt_at": now + wait, "last_error": error}
    else:
        values = {"status": "failed", "last_error": error or outcome}
    won = _rowcount(
        session.execute(
            update(Delivery)
            .where(
                and_(
                    Delivery.id == claimed.delivery_id,
                    Delivery.claim_token == claimed.claim_token,
                    Delivery.status.in_(("sending", "sent")),
                )
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
    )
    if outcome == "invalid_token" and claimed.device_id is not None:
        session.execute(
            update(Device)
            .where(Device.id == claimed.device_id, Device.disabled_at.is_(None))
            .values(disabled_at=now, disabled_reason="invalid_token", updated_at=now)
            .execution_options(synchronize_session=False)
        )
        log.info("device.disabled", device_id=str(claimed.device_id), reason="invalid_token")
    session.flush()
    status = values["status"] if won else "lost"
    log.info(
        "delivery.recorded",
        delivery_id=str(claimed.delivery_id),
        channel=claimed.channel,
        attempt=claimed.attempts,
        status=status,
        error=error,
    )
    return status
