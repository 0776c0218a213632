"""The reminder jobs: the dispatcher (due rules -> outbox) and the sender (outbox -> channels).

Both are safe to run twice or concurrently (row claims, unique keys, claim tokens), so a crash, a
restart or a second scheduler never sends a reminder twice. Each batch is its own transaction.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from email.utils import parseaddr
from functools import partial
from typing import Any

import structlog
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from api.notifications import services as outbox
from api.notifications.channels import (
    EmailChannel,
    LinkSettings,
    Result,
    deliver,
    email_settings,
)
from api.notifications.push import PushRouter
from api.observability import item_failed
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


def channels(cfg: Mapping[str, Any]) -> tuple[EmailChannel, LinkSettings]:
    """The email channel and the links it carries (push: PushRouter.from_config, made once per
    process so its access tokens and connections outlive one run)."""
    email = EmailChannel(email_settings(cfg))
    domain = parseaddr(cfg["MAIL_FROM"])[1].rpartition("@")[2] or "waymark.invalid"
    return email, LinkSettings(
        base_url=cfg["PUBLIC_BASE_URL"],
        message_domain=domain,
        token_key=cfg["SECRET_KEY"].encode(),
    )


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
    push: PushRouter,
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
            if claimed:
                _send_batch(
                    session,
                    claimed,
                    clock=clock,
                    settings=settings,
                    email=email,
                    push=push,
                    links=links,
                    outcomes=outcomes,
                )
            if not claimed and not handled:
                break
    finally:
        email.close()
    return outcomes


def _lane(item: outbox.Claimed, push: PushRouter) -> str:
    return push.lane(item.platform) if item.channel == "push" else item.channel


def _send_batch(
    session: Session,
    claimed: list[outbox.Claimed],
    *,
    clock: Callable[[], datetime],
    settings: outbox.SenderSettings,
    email: EmailChannel,
    push: PushRouter,
    links: LinkSettings,
    outcomes: Counter[str],
) -> None:
    """Send a claimed batch with one thread per lane (email, and each push provider), so a slow
    or failing provider holds up only its own rows. The session stays on this thread: lanes ask
    it for the commit point and hand it their outcomes through a queue."""
    lanes: dict[str, list[outbox.Claimed]] = {}
    for item in claimed:
        lanes.setdefault(_lane(item, push), []).append(item)
    inbox: queue.Queue[tuple[str, outbox.Claimed, Any, list[bool]]] = queue.Queue()
    abandoned = threading.Event()

    def run_lane(items: list[outbox.Claimed]) -> None:
        for item in items:
            if abandoned.is_set() or clock() >= item.lease_until:
                inbox.put(("expired", item, None, []))
                continue
            committed: list[bool] = []

            def commit_point(
                item: outbox.Claimed = item, committed: list[bool] = committed
            ) -> bool:
                # Everything but the last byte is with the provider: record, then finish.
                reply: queue.Queue[bool] = queue.Queue(maxsize=1)
                inbox.put(("commit", item, reply, committed))
                while not abandoned.is_set():
                    try:
                        won = reply.get(timeout=0.5)
                    except queue.Empty:
                        continue
                    committed.append(won)
                    return won
                return False

            try:
                result = deliver(
                    item, email=email, push=push, links=links, commit=commit_point, now=clock()
                )
            except Exception as exc:  # an adapter bug must not stop the other deliveries
                item_failed("reminder_send", exc, delivery_id=item.delivery_id)
                result = Result("retry", "internal_error")
            inbox.put(("done", item, result, committed))

    threads = [
        threading.Thread(target=run_lane, args=(items,), name=f"send-{lane}", daemon=True)
        for lane, items in lanes.items()
    ]
    for thread in threads:
        thread.start()
    try:
        pending = len(claimed)
        while pending:
            try:
                kind, item, payload, committed = inbox.get(timeout=0.5)
            except queue.Empty:
                if any(thread.is_alive() for thread in threads) or not inbox.empty():
                    continue
                # A lane died outside its delivery: its rows stay claimed until the lease ends.
                break
            if kind == "commit":
                won = _isolated(session, item, partial(_mark_sent, session, item, now=clock()))
                # A row that cannot be marked is not sent: its claim runs out, it is retried.
                payload.put(bool(won))
                continue
            pending -= 1
            if kind == "expired":
                outcomes["lease_expired"] += 1
                continue
            status = _isolated(
                session,
                item,
                partial(_record, session, item, payload, committed, now=clock(), settings=settings),
            )
            outcomes[status or "item_failed"] += 1
    finally:
        # If this thread failed (the database), lanes stop at their next row or commit point.
        abandoned.set()
        for thread in threads:
            thread.join()


def _isolated(session: Session, item: outbox.Claimed, work: Callable[[], Any]) -> Any:
    """Run one delivery's bookkeeping; if that row fails, roll back, log its id, count it
    (waymark_job_item_failures_total{job="reminder_send"}) and answer None, so the rest of the
    batch goes on (the row's claim runs out and it is claimed again). The database being down is
    no row's fault: that ends the run."""
    try:
        return work()
    except (OperationalError, InterfaceError, PoolTimeout):
        session.rollback()
        raise
    except Exception as exc:
        session.rollback()
        item_failed("reminder_send", exc, delivery_id=item.delivery_id)
        return None


def _mark_sent(session: Session, item: outbox.Claimed, *, now: datetime) -> bool:
    won = outbox.mark_sent(session, claimed=item, now=now)
    session.commit()
    return won


def _record(
    session: Session,
    item: outbox.Claimed,
    result: Result,
    committed: list[bool],
    *,
    now: datetime,
    settings: outbox.SenderSettings,
) -> str:
    """Record one delivery's outcome (committed); a push or email already marked sent at its
    commit point needs nothing more. Returns what to count it as."""
    if result.outcome in ("sent", "lost") and committed:
        return result.outcome
    status = outbox.record_outcome(
        session,
        claimed=item,
        outcome=result.outcome,
        error=result.error,
        now=now,
        settings=settings,
        retry_after=result.retry_after,
    )
    session.commit()
    return status
