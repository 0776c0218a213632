"""Shapes of the clinician summaries (contract: "Clinician API")."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.disclosures.schemas import disclosed_page_schema
from api.fields import AwareDateTime, StrictSchema
from api.pagination import PageArgs

FORMATS = ("json", "html", "pdf")


class PeriodArgs(StrictSchema):
    from_ = AwareDateTime(data_key="from", load_default=None)
    to = AwareDateTime(load_default=None)


class SummaryArgs(PeriodArgs):
    format = fields.String(
        load_default=None,
        validate=validate.OneOf(FORMATS),
        metadata={"description": "json (default), html or pdf; else chosen from Accept."},
    )


class FormatArgs(StrictSchema):
    format = fields.String(load_default=None, validate=validate.OneOf(FORMATS))


class SummaryListArgs(PageArgs):
    patient_id = fields.UUID(load_default=None)


class SummarySchema(Schema):
    """The summary document; sections are described in docs/summaries.md."""

    kind = fields.String(dump_only=True, metadata={"description": "on_demand or weekly"})
    patient = fields.Dict(dump_only=True)
    period = fields.Dict(dump_only=True)
    generated_at = fields.String(dump_only=True)
    consent = fields.Dict(dump_only=True)
    sections = fields.Dict(dump_only=True)
    definitions = fields.Dict(keys=fields.String(), values=fields.String(), dump_only=True)
    redisclosure_notice = fields.String(dump_only=True)


class WeeklySummaryItemSchema(Schema):
    id = fields.UUID(dump_only=True)
    patient_id = fields.UUID(dump_only=True)
    display_name = fields.String(dump_only=True)
    consent_id = fields.UUID(dump_only=True)
    week_start = fields.Date(dump_only=True)
    period_from = fields.AwareDateTime(dump_only=True, data_key="from")
    period_to = fields.AwareDateTime(dump_only=True, data_key="to")
    built_at = fields.AwareDateTime(dump_only=True)
    delivered_at = fields.AwareDateTime(dump_only=True)


class WeeklySummarySchema(WeeklySummaryItemSchema):
    content = fields.Nested(SummarySchema, dump_only=True)


WeeklySummaryPageSchema = disclosed_page_schema(WeeklySummaryItemSchema, "WeeklySummaryPage")
