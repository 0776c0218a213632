"""Shapes of the export endpoints (contract: "Export")."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.fields import StrictSchema
from api.openapi import MAY_BE_ABSENT


class ExportArgs(StrictSchema):
    format = fields.String(
        load_default="json",
        validate=validate.OneOf(["json", "csv", "fhir"]),
        metadata={"description": "json (one document), csv (a zip of CSVs), fhir (R4 Bundle)."},
    )


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
    # Both left out when empty (only with _since; only with a notice or consent scopes).
    deleted = fields.List(fields.Nested(OutputFileSchema), metadata={MAY_BE_ABSENT: True})
    error = fields.List(fields.Dict(), required=True)
    extension = fields.Dict(metadata={MAY_BE_ABSENT: True})
