"""Shapes of clinician alerts (contract: "Clinician API")."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.alerts.models import NOTE_MAX
from api.disclosures.schemas import disclosed_page_schema
from api.pagination import PageArgs


class AlertListArgs(PageArgs):
    state = fields.String(
        load_default="open", validate=validate.OneOf(["open", "acknowledged", "all"])
    )


class AlertSchema(Schema):
    id = fields.UUID(dump_only=True)
    patient_id = fields.UUID(dump_only=True)
    kind = fields.String(dump_only=True)
    category = fields.String(dump_only=True)
    episode_key = fields.String(dump_only=True)
    created_at = fields.AwareDateTime(dump_only=True)
    triggered_at = fields.AwareDateTime(dump_only=True, allow_none=True)
    events_from = fields.AwareDateTime(
        dump_only=True,
        metadata={"description": "Start of the period of the events the alert describes."},
    )
    events_to = fields.AwareDateTime(
        dump_only=True,
        metadata={"description": "End of the period of the events the alert describes."},
    )
    detail = fields.String(dump_only=True, allow_none=True)
    acknowledged_at = fields.AwareDateTime(
        dump_only=True,
        allow_none=True,
        metadata={"description": "When you acknowledged it (acknowledging is per clinician)."},
    )
    acknowledged_by = fields.UUID(
        dump_only=True,
        allow_none=True,
        metadata={"description": "Your own id once you acknowledged it; never anyone else's."},
    )
    acknowledgement_note = fields.String(
        dump_only=True,
        allow_none=True,
        metadata={"description": "Your own note with your acknowledgement; never anyone else's."},
    )


class AlertAcknowledgeSchema(Schema):
    note = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=NOTE_MAX),
        metadata={
            "description": "An optional note for your own record (only you see it); "
            "a second acknowledgement keeps the first note."
        },
    )


AlertPageSchema = disclosed_page_schema(AlertSchema, "AlertPage")
