"""Check-in shapes (contract: "Instruments and check-ins"). Validators never touch the database;
instrument answers are checked against the instrument definition by the service."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from api.checkins.models import PATIENT_INSTRUMENTS, SYMPTOM_NAMES
from api.fields import AwareDateTime, IntegerMap, StrictSchema
from api.pagination import RangePageArgs, page_schema

_RATING = validate.Range(min=0, max=10)


def _rating() -> fields.Integer:
    return fields.Integer(strict=True, validate=_RATING)


# One optional 0-10 field per allowed name: an unknown name is refused under "symptoms.<name>".
SymptomsSchema = StrictSchema.from_dict(
    {name: _rating() for name in SYMPTOM_NAMES}, name="SymptomsSchema"
)

_INSTRUMENT = validate.OneOf(
    PATIENT_INSTRUMENTS,
    error="Must be one of: {choices}. COWS is recorded by a clinician.",
)
_ANSWERS_DOC = {
    "description": "{item_key: integer} with every item of the instrument, each in range; "
    "required with `instrument`."
}


class _CheckinFields(StrictSchema):
    instrument = fields.String(allow_none=True, validate=_INSTRUMENT)
    # Checked item by item against the instrument by the service (answers.<item_key> errors).
    answers = fields.Dict(allow_none=True, metadata=_ANSWERS_DOC)
    symptoms = fields.Nested(SymptomsSchema, allow_none=True)
    craving = fields.Integer(strict=True, allow_none=True, validate=_RATING)
    sleep_hours = fields.Float(allow_none=True, validate=validate.Range(min=0, max=24))
    note = fields.String(allow_none=True, validate=validate.Length(max=2000))


class CheckinCreateSchema(_CheckinFields):
    id = fields.UUID(load_default=None, metadata={"description": "Client-generated, optional."})
    recorded_at = AwareDateTime(required=True)

    @validates_schema
    def _instrument_with_answers(self, data: dict[str, Any], **_kw: Any) -> None:
        if data.get("instrument") and data.get("answers") is None:
            raise ValidationError("Required with instrument.", "answers")
        if data.get("answers") is not None and not data.get("instrument"):
            raise ValidationError("Required with answers.", "instrument")


class CheckinPatchSchema(_CheckinFields):
    recorded_at = AwareDateTime()


class CheckinSchema(Schema):
    id = fields.UUID(dump_only=True)
    recorded_at = AwareDateTime(
        attribute="recorded_at_local",
        dump_only=True,
        metadata={"description": "With the offset the client sent."},
    )
    instrument = fields.String(dump_only=True, allow_none=True)
    instrument_version = fields.String(dump_only=True, allow_none=True)
    answers = IntegerMap(dump_only=True, allow_none=True)
    total = fields.Integer(dump_only=True, allow_none=True)
    severity = fields.String(
        dump_only=True,
        allow_none=True,
        metadata={"description": "The instrument's band for the total; null where none applies."},
    )
    symptoms = IntegerMap(dump_only=True, allow_none=True)
    craving = fields.Integer(dump_only=True, allow_none=True)
    craving_scale = fields.String(dump_only=True, allow_none=True)
    sleep_hours = fields.Float(dump_only=True, allow_none=True)
    note = fields.String(dump_only=True, allow_none=True)
    created_at = AwareDateTime(dump_only=True)
    updated_at = AwareDateTime(dump_only=True)


CheckinPageSchema = page_schema(CheckinSchema, "CheckinPageSchema")
CheckinListArgs = RangePageArgs
