"""Shapes of counseling sessions and attendance (contract: "Counseling")."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from api.counseling.models import ATTENDANCE, KINDS
from api.fields import AwareDateTime, StrictSchema
from api.pagination import RangePageArgs, page_schema

NOTE_MAX = 2000

_KIND: dict[str, Any] = {"validate": validate.OneOf(KINDS)}
_TITLE: dict[str, Any] = {
    "validate": [validate.Length(min=1, max=200), validate.Regexp(r"\S", error="Give a title.")]
}
_DURATION: dict[str, Any] = {
    "validate": validate.Range(min=1, max=1440),
    "metadata": {"description": "1-1440"},
}
_TEXT: dict[str, Any] = {"allow_none": True, "validate": validate.Length(max=200)}
_ATTENDANCE: dict[str, Any] = {"validate": validate.OneOf(ATTENDANCE)}
_NOTE: dict[str, Any] = {"allow_none": True, "validate": validate.Length(max=NOTE_MAX)}


class CounselingSessionCreateSchema(StrictSchema):
    id = fields.UUID(load_default=None)
    kind = fields.String(required=True, **_KIND)
    title = fields.String(required=True, **_TITLE)
    starts_at = AwareDateTime(required=True)
    duration_minutes = fields.Integer(required=True, strict=True, **_DURATION)
    provider_name = fields.String(load_default=None, **_TEXT)
    location = fields.String(load_default=None, **_TEXT)
    attendance = fields.String(load_default="scheduled", **_ATTENDANCE)
    note = fields.String(load_default=None, **_NOTE)


class CounselingSessionPatchSchema(StrictSchema):
    kind = fields.String(**_KIND)
    title = fields.String(**_TITLE)
    starts_at = AwareDateTime()
    duration_minutes = fields.Integer(strict=True, **_DURATION)
    provider_name = fields.String(**_TEXT)
    location = fields.String(**_TEXT)
    attendance = fields.String(**_ATTENDANCE)
    note = fields.String(**_NOTE)


class CounselingSessionSchema(Schema):
    id = fields.UUID(dump_only=True)
    kind = fields.String(dump_only=True)
    title = fields.String(dump_only=True)
    starts_at = fields.AwareDateTime(dump_only=True)
    duration_minutes = fields.Integer(dump_only=True)
    provider_name = fields.String(dump_only=True, allow_none=True)
    location = fields.String(dump_only=True, allow_none=True)
    attendance = fields.String(dump_only=True)
    note = fields.String(dump_only=True, allow_none=True)
    created_at = fields.AwareDateTime(dump_only=True)
    updated_at = fields.AwareDateTime(dump_only=True)


CounselingSessionPageSchema = page_schema(CounselingSessionSchema, "CounselingSessionPage")


class AttendanceSchema(StrictSchema):
    status = fields.String(required=True, **_ATTENDANCE)


class AttendanceArgs(StrictSchema):
    from_ = AwareDateTime(data_key="from", load_default=None)
    to = AwareDateTime(load_default=None)


class AttendanceCountsSchema(Schema):
    scheduled = fields.Integer()
    attended = fields.Integer()
    missed = fields.Integer()
    cancelled = fields.Integer()
    rescheduled = fields.Integer()


class AttendanceSummarySchema(Schema):
    from_ = fields.AwareDateTime(data_key="from", attribute="from", allow_none=True)
    to = fields.AwareDateTime(allow_none=True)
    counts = fields.Nested(AttendanceCountsSchema)
    total = fields.Integer()
    attendance_rate = fields.Float(
        allow_none=True, metadata={"description": "attended / (attended + missed), or null"}
    )


SessionListArgs = RangePageArgs
