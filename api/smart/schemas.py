"""Shapes of system-client registration (admin)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.fields import StrictSchema


class SystemClientCreateSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    clinician_id = fields.UUID(
        required=True, metadata={"description": "The clinician on whose consents it acts."}
    )
    jwks = fields.Dict(
        load_default=None,
        allow_none=True,
        metadata={"description": "A JSON Web Key Set of public keys (RS384/ES384)."},
    )
    jwks_url = fields.Url(
        load_default=None,
        allow_none=True,
        schemes={"http", "https"},
        require_tld=False,
        validate=validate.Length(max=2000),
        metadata={"description": "Where the client publishes its JWKS (instead of jwks)."},
    )
    scopes = fields.List(
        fields.String(validate=validate.Length(min=1, max=100)),
        required=True,
        validate=validate.Length(min=1, max=50),
        metadata={"description": "SMART system scopes, e.g. system/*.read or system/Patient.rs."},
    )


class SystemClientSchema(Schema):
    client_id = fields.UUID(attribute="id", dump_only=True)
    name = fields.String(dump_only=True)
    clinician_id = fields.UUID(dump_only=True)
    jwks = fields.Dict(dump_only=True, allow_none=True)
    jwks_url = fields.String(dump_only=True, allow_none=True)
    scopes = fields.List(fields.String(), dump_only=True)
    created_at = fields.AwareDateTime(dump_only=True)
    disabled_at = fields.AwareDateTime(dump_only=True, allow_none=True)
