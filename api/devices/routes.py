"""Push devices: /v1/devices."""

from __future__ import annotations

import uuid
from typing import Any

from flask import current_app
from flask_smorest import Blueprint

from api.db import get_session, utcnow
from api.devices import services
from api.devices.schemas import DeviceCreateSchema, DeviceSchema
from api.pagination import PageArgs, page_schema
from api.security import auth_required, current_user

blp = Blueprint("devices", __name__, url_prefix="/v1/devices", description="Push devices")

DevicePageSchema = page_schema(DeviceSchema, "DevicePage")


@blp.post("")
@auth_required()
@blp.arguments(DeviceCreateSchema)
@blp.response(201, DeviceSchema)
@blp.alt_response(200, schema=DeviceSchema, description="The token was already registered")
@blp.alt_response(409, response="CONFLICT")
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
def register_device(body: dict[str, Any]) -> Any:
    """Register a push token (ios, android) or a Web Push subscription (web) for this user."""
    session = get_session()
    device, created = services.register_device(
        session,
        user_id=current_user().id,
        body=body,
        now=utcnow(),
        webpush_origins=current_app.config["WEBPUSH_ENDPOINT_ORIGINS"],
    )
    session.commit()
    return device, 201 if created else 200


@blp.get("")
@auth_required()
@blp.arguments(PageArgs, location="query")
@blp.response(200, DevicePageSchema)
def list_devices(args: dict[str, Any]) -> Any:
    """The user's registered devices (tokens are never shown)."""
    items, cursor = services.list_devices(
        get_session(), user_id=current_user().id, limit=args["limit"], cursor=args["cursor"]
    )
    return {"items": items, "next_cursor": cursor}


@blp.delete("/<uuid:device_id>")
@auth_required()
@blp.response(204)
@blp.alt_response(404, response="NOT_FOUND")
def delete_device(device_id: uuid.UUID) -> None:
    """Forget a device and its token."""
    session = get_session()
    services.delete_device(session, user_id=current_user().id, device_id=device_id)
    session.commit()
