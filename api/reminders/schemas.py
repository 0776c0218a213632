"""Shapes of reminder rules (contract: "Reminders, devices, inbox")."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from api.fields import LocalTime, StrictSchema
from api.reminders.models import CHANNELS, KINDS

_CHANNELS = fields.List(
    fields.String(validate=validate.OneOf(CHANNELS)),
    validate=validate.Length(max=len(CHANNELS)),
    metadata={"description": "Subset of push, email, inbox; inbox is always on."},
)
_WEEKDAYS = fields.List(
    fields.Integer(validate=validate.Range(min=1, max=7)),
    allow_none=True,
    validate=validate.Length(min=1, max=7),
    metadata={"description": "ISO weekdays (1 = Monday ... 7); null or omitted: every day."},
)
_LEAD = fields.Integer(
    validate=validate.Range(min=0, max=7 * 24 * 60),
    metadata={"description": "Counseling: minutes before each session's start."},
)


def _unique(values: list[Any] | None, name: str) -> None:
    if values is not None and len(set(values)) != len(values):
        raise ValidationError("Each value at most once.", name)


class ReminderSchema(Schema):
    id = fields.UUID(dump_only=True)
    kind = fields.String(dump_only=True)
    medication_id = fields.UUID(dump_only=True, allow_none=True)
    local_time = fields.String(dump_only=True, allow_none=True)
    lead_minutes = fields.Integer(dump_only=True, allow_none=True)
    days_of_week = fields.List(
        fields.Integer(), dump_only=True, allow_none=True, attribute="weekdays"
    )
    channels = fields.List(fields.String(), dump_only=True)
    enabled = fields.Boolean(dump_only=True)
    timezone = fields.String(
        dump_only=True, metadata={"description": "The IANA zone it fires in: the user's."}
    )
    next_fire_at = fields.AwareDateTime(
        dump_only=True,
        allow_none=True,
        metadata={"description": "UTC; after quiet hours. Null when off or nothing is left."},
    )
    snoozed_until = fields.AwareDateTime(dump_only=True, allow_none=True)
    created_at = fields.AwareDateTime(dump_only=True)
    updated_at = fields.AwareDateTime(dump_only=True)


class ReminderCreateSchema(StrictSchema):
    id = fields.UUID(load_default=None)
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    medication_id = fields.UUID(
        metadata={"description": "Medication: the regimen (its rules are made with it)."}
    )
    local_time = LocalTime(
        metadata={"description": "Check-in: the local time; medication: one of the dose times."}
    )
    lead_minutes = _LEAD
    days_of_week = _WEEKDAYS
    channels = _CHANNELS
    enabled = fields.Boolean(load_default=True)

    @validates_schema
    def _no_repeats(self, data: dict[str, Any], **_kw: Any) -> None:
        _unique(data.get("channels"), "channels")
        _unique(data.get("days_of_week"), "days_of_week")


class ReminderPatchSchema(StrictSchema):
    local_time = LocalTime()
    lead_minutes = _LEAD
    days_of_week = _WEEKDAYS
    channels = _CHANNELS
    enabled = fields.Boolean()

    @validates_schema
    def _no_repeats(self, data: dict[str, Any], **_kw: Any) -> None:
        _unique(data.get("channels"), "channels")
        _unique(data.get("days_of_week"), "days_of_week")


class SnoozeSchema(StrictSchema):
    minutes = fields.Integer(required=True, validate=validate.Range(min=5, max=240))
