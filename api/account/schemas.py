"""Account inputs: profile changes, a password change, an erasure's proof."""

from __future__ import annotations

from marshmallow import fields, validate

from api.auth.schemas import QuietHoursSchema
from api.fields import StrictSchema, TimeZoneName


class MePatchSchema(StrictSchema):
    display_name = fields.String(validate=validate.Length(min=1, max=100))
    timezone = TimeZoneName()
    quiet_hours = fields.Nested(QuietHoursSchema, allow_none=True)
    discreet_notifications = fields.Boolean()


class PasswordChangeSchema(StrictSchema):
    current_password = fields.String(
        required=True, load_only=True, validate=validate.Length(max=1024)
    )
    new_password = fields.String(
        required=True, load_only=True, validate=validate.Length(min=10, max=1024)
    )


class EraseSchema(StrictSchema):
    password = fields.String(
        required=True, load_only=True, validate=validate.Length(min=1, max=1024)
    )
