"""Shapes of push device registrations. The token is accepted, never returned."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from api.devices.models import PLATFORMS
from api.fields import StrictSchema


class DeviceSchema(Schema):
    id = fields.UUID(dump_only=True)
    platform = fields.String(dump_only=True)
    enabled = fields.Boolean(
        dump_only=True, metadata={"description": "False once the provider rejected the token."}
    )
    created_at = fields.AwareDateTime(dump_only=True)
    updated_at = fields.AwareDateTime(dump_only=True)


def _b64url(length: int, first: int | None = None) -> Any:
    def check(value: str) -> None:
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        except (binascii.Error, ValueError):
            raise ValidationError("Not base64url.") from None
        if len(raw) != length or (first is not None and raw[0] != first):
            raise ValidationError(f"Must decode to {length} bytes.")

    return check


class WebPushKeysSchema(StrictSchema):
    p256dh = fields.String(
        required=True,
        validate=[validate.Length(max=100), _b64url(65, first=0x04)],
        metadata={"description": "The browser's P-256 public key, uncompressed, base64url."},
    )
    auth = fields.String(
        required=True,
        validate=[validate.Length(max=40), _b64url(16)],
        metadata={"description": "The 16-byte authentication secret, base64url."},
    )


class WebPushSubscriptionSchema(StrictSchema):
    """`PushSubscription.toJSON()` as a browser gives it."""

    endpoint = fields.Url(
        required=True,
        schemes={"https", "http"},
        require_tld=False,
        validate=validate.Length(max=2048),
        metadata={"description": "The push service URL (one of the deployment's push services)."},
    )
    expiration_time = fields.Float(
        data_key="expirationTime",
        allow_none=True,
        load_default=None,
        validate=validate.Range(min=0, max=1e15),
        metadata={"description": "Ignored; browsers send it (usually null)."},
    )
    keys = fields.Nested(WebPushKeysSchema, required=True)


class DeviceCreateSchema(StrictSchema):
    id = fields.UUID(load_default=None)
    platform = fields.String(required=True, validate=validate.OneOf(PLATFORMS))
    token = fields.String(
        load_only=True,
        validate=validate.Length(min=8, max=4096),
        metadata={
            "description": "ios and android: the FCM registration token (or, where the deployment "
            "sends to APNs directly, the APNs device token in hex). Not for web."
        },
    )
    subscription = fields.Nested(
        WebPushSubscriptionSchema,
        load_only=True,
        metadata={"description": "web only: the browser's push subscription (endpoint and keys)."},
    )

    @validates_schema
    def _one_kind_of_target(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("platform") == "web":
            if "subscription" not in data:
                raise ValidationError("Required for platform web.", "subscription")
            if "token" in data:
                raise ValidationError("Not for platform web: send subscription.", "token")
        elif data.get("platform") in PLATFORMS:
            if "token" not in data:
                raise ValidationError("Required for platforms ios and android.", "token")
            if "subscription" in data:
                raise ValidationError("Only for platform web.", "subscription")
