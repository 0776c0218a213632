"""Shapes of push device registrations. The token is accepted, never returned."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

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


class DeviceCreateSchema(StrictSchema):
    id = fields.UUID(load_default=None)
    platform = fields.String(required=True, validate=validate.OneOf(PLATFORMS))
    token = fields.String(
        required=True,
        load_only=True,
        validate=validate.Length(min=8, max=4096),
        metadata={"description": "The push token (FCM registration token or Web Push endpoint)."},
    )
