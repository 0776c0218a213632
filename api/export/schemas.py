"""Shapes of the export endpoints (contract: "Export")."""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields, validate

from api.fields import AwareDateTime, StrictSchema


class ExportArgs(StrictSchema):
    format = fields.String(
        load_default="json",
        validate=validate.OneOf(["json", "csv", "fhir"]),
        metadata={"description": "json (one document), csv (a zip of CSVs), fhir (R4 Bundle)."},
    )


class BulkKickoffArgs(Schema):
    """FHIR Bulk Data kick-off parameters; others (e.g. _typeFilter) are ignored, as the spec
    allows without `Prefer: handling=strict`."""

    class Meta:
        unknown = EXCLUDE

    type_ = fields.String(
        data_key="_type",
        load_default=None,
        metadata={"description": "Comma-separated resource types (default: all offered)."},
    )
    since = AwareDateTime(
        data_key="_since",
        load_default=None,
        metadata={"description": "Only resources changed after this instant."},
    )
    output_format = fields.String(data_key="_outputFormat", load_default=None)


class OutputFileSchema(Schema):
    type = fields.String(required=True)
    url = fields.String(required=True)
    count = fields.Integer(required=True)


class ManifestSchema(Schema):
    transactionTime = fields.String(required=True)  # noqa: N815 - FHIR's field name
    request = fields.String(required=True)
    requiresAccessToken = fields.Boolean(required=True)  # noqa: N815
    output = fields.List(fields.Nested(OutputFileSchema), required=True)
    # Bulk Data v2: with _since, the resources deleted since then (Bundles of DELETE entries).
    deleted = fields.List(fields.Nested(OutputFileSchema))
    error = fields.List(fields.Dict(), required=True)
    extension = fields.Dict()
