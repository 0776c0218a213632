"""The inbox: notifications that reached the user (delivered to the inbox channel)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth.models import User
from api.errors import NotFound
from api.notifications.models import Notification
from api.notifications.texts import visible_text
from api.pagination import keyset_page

log = structlog.get_logger("waymark.inbox")


def _item(notification: Notification, *, discreet: bool) -> dict[str, Any]:
    # The text follows the user's current discreet setting, also for what is already there.
    text = visible_text(notification.kind, discreet=discreet)
    return {
        "id": notification.id,
        "kind": notification.kind,
        "reminder_id": notification.rule_id,
        "title": text.title,
        "body": text.body,
        "scheduled_for": notification.scheduled_for,
        "delivered_at": notification.inbox_at,
        "read_at": notification.read_at,
        "snoozed": notification.source == "snooze",
    }


def list_inbox(
    session: Session, *, user: User, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first."""
    rows, next_cursor = keyset_page(
        session,
        select(Notification).where(
            Notification.user_id == user.id, Notification.inbox_at.is_not(None)
        ),
        order=Notification.inbox_at,  # type: ignore[arg-type]
        tiebreak=Notification.id,
        limit=limit,
        cursor=cursor,
    )
    return [_item(n, discreet=user.discreet_notifications) for n in rows], next_cursor


def mark_read(
    session: Session, *, user: User, notification_id: uuid.UUID, now: datetime
) -> dict[str, Any]:
    """Mark an inbox item read (again is a no-op). Raises NotFound unless it is in the inbox."""
    notification = session.get(Notification, notification_id)
    if notification is None or notification.user_id != user.id or notification.inbox_at is None:
        raise NotFound("No such inbox item.")
    if notification.read_at is None:
        notification.read_at = now
        session.flush()
        log.info("inbox.read", notification_id=str(notification.id), user_id=str(user.id))
    return _item(notification, discreet=user.discreet_notifications)
