"""GET /v1/agenda: the user's local day."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.counseling.schemas import CounselingSessionSchema
from api.fields import BoundedDate, StrictSchema


class AgendaArgs(StrictSchema):
    date = BoundedDate(
        load_default=None,
        metadata={"description": "A local date (YYYY-MM-DD) in your time zone; default today."},
    )


class AgendaDoseSchema(Schema):
    medication_id = fields.UUID(required=True)
    name = fields.String(required=True, metadata={"example": "Buprenorphine/naloxone"})
    dose = fields.Float(required=True, metadata={"example": 8})
    unit = fields.String(required=True, metadata={"example": "mg"})
    local_time = fields.String(
        required=True,
        metadata={
            "description": "The dose time as the regimen states it (HH:MM).",
            "example": "08:00",
        },
    )
    scheduled_for = fields.AwareDateTime(
        required=True,
        metadata={
            "description": "The instant of that wall-clock time on this day (UTC); on a "
            "spring-forward day a time in the gap moves to the end of the gap."
        },
    )
    state = fields.String(
        required=True,
        validate=validate.OneOf(["due", "taken", "skipped", "missed"]),
        metadata={
            "description": "taken or skipped: a dose was logged for it; missed: not logged and "
            "the on-time window has passed; due: not yet."
        },
    )
    dose_id = fields.UUID(
        required=True,
        allow_none=True,
        metadata={"description": "The logged dose (taken or skipped); null otherwise."},
    )


class AgendaCheckinSchema(Schema):
    reminder_local_time = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "Your check-in reminder's time that day (HH:MM), or null."},
    )
    reminder_at = fields.AwareDateTime(
        required=True, allow_none=True, metadata={"description": "Its instant, or null."}
    )
    checked_in = fields.Boolean(
        required=True, metadata={"description": "Whether a check-in was recorded that day."}
    )


class AgendaSchema(Schema):
    date = fields.Date(required=True)
    timezone = fields.String(required=True, metadata={"example": "America/New_York"})
    doses = fields.List(fields.Nested(AgendaDoseSchema), required=True)
    counseling_sessions = fields.List(fields.Nested(CounselingSessionSchema), required=True)
    checkin = fields.Nested(AgendaCheckinSchema, required=True)
