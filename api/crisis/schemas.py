"""Crisis lines as configured for the deployment."""

from __future__ import annotations

from marshmallow import Schema, fields, validate


class CrisisResourceSchema(Schema):
    name = fields.String(
        required=True,
        validate=validate.Length(min=1, max=200),
        metadata={"example": "988 Suicide & Crisis Lifeline"},
    )
    contact = fields.String(
        required=True,
        validate=validate.Length(min=1, max=500),
        metadata={"example": "Call or text 988"},
    )
    url = fields.Url(
        load_default=None,
        allow_none=True,
        schemes={"https", "http"},
        metadata={"example": "https://988lifeline.org/"},
    )


class CrisisResourceListSchema(Schema):
    items = fields.List(fields.Nested(CrisisResourceSchema), required=True)
