"""Shapes of a patient's own COWS assessments."""

from __future__ import annotations

from marshmallow import Schema, fields

from api.fields import AwareDateTime, IntegerMap
from api.pagination import RangePageArgs, page_schema


class AssessingClinicianSchema(Schema):
    id = fields.UUID(dump_only=True)
    display_name = fields.String(dump_only=True)
    organization = fields.String(dump_only=True, allow_none=True)


class OwnCowsAssessmentSchema(Schema):
    id = fields.UUID(dump_only=True)
    assessed_at = AwareDateTime(dump_only=True)
    answers = IntegerMap(dump_only=True)
    total = fields.Integer(dump_only=True)
    severity = fields.String(
        dump_only=True,
        allow_none=True,
        metadata={"description": "The COWS band for the total; null below 5."},
    )
    instrument_version = fields.String(dump_only=True)
    clinician = fields.Nested(
        AssessingClinicianSchema,
        dump_only=True,
        allow_none=True,
        metadata={"description": "Who recorded it; null once that account is erased."},
    )
    created_at = AwareDateTime(dump_only=True)


OwnCowsPageSchema = page_schema(OwnCowsAssessmentSchema, "OwnCowsPageSchema")
CowsListArgs = RangePageArgs
