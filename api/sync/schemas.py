"""The /v1/sync answer (contract: "Sync")."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.fields import AwareDateTime, StrictSchema


class SyncArgs(StrictSchema):
    since = fields.String(
        load_default=None,
        metadata={"description": "The cursor of the previous answer; omit to get everything."},
    )
    limit = fields.Integer(load_default=500, validate=validate.Range(min=1, max=1000))


class ChangeSchema(Schema):
    type = fields.String(required=True)
    id = fields.UUID(required=True)
    op = fields.String(required=True, metadata={"description": "upsert | delete"})
    data = fields.Dict(
        metadata={"description": "For upserts: the resource as its own endpoint shows it."}
    )
    changed_at = AwareDateTime(required=True)


class SyncPageSchema(Schema):
    changes = fields.List(fields.Nested(ChangeSchema), required=True)
    cursor = fields.String(required=True)
    has_more = fields.Boolean(required=True)
