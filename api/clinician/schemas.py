"""Shapes of the clinician API (contract: "Clinician API")."""

from __future__ import annotations

from marshmallow import Schema, fields

from api.checkins.schemas import CheckinSchema
from api.counseling.schemas import CounselingSessionSchema
from api.disclosures.schemas import (
    disclosed_page_schema,
)
from api.fields import AwareDateTime, IntegerMap, StrictSchema
from api.medications.schemas import DoseSchema


class RosterConsentSchema(Schema):
    id = fields.UUID(dump_only=True)
    categories = fields.List(fields.String(), dump_only=True)
    purpose = fields.String(dump_only=True)
    expires_at = fields.AwareDateTime(dump_only=True, allow_none=True)
    signed_at = fields.AwareDateTime(dump_only=True)
    share_weekly_summary = fields.Boolean(dump_only=True)


class RosterEntrySchema(Schema):
    patient_id = fields.UUID(dump_only=True)
    display_name = fields.String(dump_only=True)
    consent = fields.Nested(RosterConsentSchema, dump_only=True)
    open_alerts = fields.Integer(dump_only=True)


RosterPageSchema = disclosed_page_schema(RosterEntrySchema, "RosterPage")


class InviteCodeSchema(Schema):
    invite_code = fields.String(dump_only=True)


class ClinicianCounselingSessionSchema(CounselingSessionSchema):
    """A session as the patient sees it, without its note: counseling notes never go under a
    general consent (42 CFR 2.31)."""

    class Meta:
        exclude = ("note",)


ClinicianCheckinPageSchema = disclosed_page_schema(CheckinSchema, "ClinicianCheckinPage")
ClinicianDosePageSchema = disclosed_page_schema(DoseSchema, "ClinicianDosePage")
ClinicianCounselingSessionPageSchema = disclosed_page_schema(
    ClinicianCounselingSessionSchema, "ClinicianCounselingSessionPage"
)


class CowsCreateSchema(StrictSchema):
    id = fields.UUID(load_default=None, metadata={"description": "Client-generated, optional."})
    assessed_at = AwareDateTime(required=True)
    # Checked item by item against the COWS definition (answers.<item_key> errors).
    answers = fields.Dict(
        keys=fields.String(),
        required=True,
        metadata={"description": "Every COWS item key to one of its allowed values."},
    )


class CowsAssessmentSchema(Schema):
    id = fields.UUID(dump_only=True)
    patient_id = fields.UUID(dump_only=True)
    clinician_id = fields.UUID(dump_only=True, allow_none=True)
    instrument = fields.Constant("cows", dump_only=True)
    instrument_version = fields.String(dump_only=True)
    assessed_at = fields.AwareDateTime(dump_only=True)
    answers = IntegerMap(dump_only=True)
    total = fields.Integer(dump_only=True)
    severity = fields.String(dump_only=True, allow_none=True)
    created_at = fields.AwareDateTime(dump_only=True)


ClinicianCowsPageSchema = disclosed_page_schema(CowsAssessmentSchema, "ClinicianCowsPage")
