"""Register and remove push devices. Tokens are looked up by their SHA-256, never logged."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.devices.models import Device
from api.devices.origins import origin_allowed
from api.errors import NotFound, ValidationError
from api.offline import create_once
from api.pagination import keyset_page
from api.security import hash_token

log = structlog.get_logger("waymark.devices")


def register_device(
    session: Session,
    *,
    user_id: uuid.UUID,
    body: dict[str, Any],
    now: datetime,
    webpush_origins: Iterable[str] | None = None,
) -> tuple[Device, bool]:
    """Register a push token, or a Web Push subscription (its endpoint is the token). A token
    already known (this user's, or another account's on the same phone) moves to this user and
    is enabled again: a token belongs to one app install. Returns (device, created).
    Raises ValidationError for a subscription endpoint outside `webpush_origins` (the push
    services the server will call), Conflict for a client id reused with another body."""
    subscription = body.get("subscription")
    if subscription is not None:
        token = subscription["endpoint"]
        keys = (subscription["keys"]["p256dh"], subscription["keys"]["auth"])
        if webpush_origins is not None and not origin_allowed(token, webpush_origins):
            raise ValidationError(
                {"subscription.endpoint": ["Not a push service this server sends to."]}
            )
    else:
        token, keys = body["token"], (None, None)
    digest = hash_token(token)
    existing = session.scalar(select(Device).where(Device.token_hash == digest).with_for_update())
    if existing is not None and (body.get("id") is None or body["id"] == existing.id):
        existing.user_id = user_id
        existing.platform = body["platform"]
        existing.push_p256dh, existing.push_auth = keys
        existing.disabled_at = existing.disabled_reason = None
        existing.updated_at = now
        session.flush()
        log.info("device.reregistered", device_id=str(existing.id), user_id=str(user_id))
        return existing, False
    device = Device(
        id=body.get("id"),
        user_id=user_id,
        platform=body["platform"],
        token=token,
        token_hash=digest,
        push_p256dh=keys[0],
        push_auth=keys[1],
        created_at=now,
        updated_at=now,
    )
    device, created = create_once(session, device, body=body)
    if created:
        log.info("device.registered", device_id=str(device.id), user_id=str(user_id))
    return device, created


def list_devices(
    session: Session, *, user_id: uuid.UUID, limit: int, cursor: str | None
) -> tuple[list[Device], str | None]:
    return keyset_page(
        session,
        select(Device).where(Device.user_id == user_id),
        order=Device.created_at,
        tiebreak=Device.id,
        limit=limit,
        cursor=cursor,
    )


def delete_device(session: Session, *, user_id: uuid.UUID, device_id: uuid.UUID) -> None:
    """Forget a device and its token. Raises NotFound unless it is the user's."""
    device = session.get(Device, device_id)
    if device is None or device.user_id != user_id:
        raise NotFound("No such device.")
    session.delete(device)
    session.flush()
    log.info("device.deleted", device_id=str(device_id), user_id=str(user_id))
