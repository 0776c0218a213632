"""Shapes of the audit log (admin)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.audit.models import OUTCOMES
from api.pagination import RangePageArgs, page_schema


class AuditQueryArgs(RangePageArgs):
    actor_id = fields.UUID(load_default=None)
    patient_id = fields.UUID(load_default=None)
    outcome = fields.String(load_default=None, validate=validate.OneOf(OUTCOMES))


class AuditEventSchema(Schema):
    id = fields.UUID(dump_only=True)
    at = fields.AwareDateTime(dump_only=True)
    actor_id = fields.UUID(dump_only=True, allow_none=True)
    actor_role = fields.String(dump_only=True, allow_none=True)
    action = fields.String(dump_only=True)
    patient_id = fields.UUID(dump_only=True, allow_none=True)
    target_id = fields.UUID(dump_only=True, allow_none=True)
    outcome = fields.String(dump_only=True, metadata={"enum": list(OUTCOMES)})
    status = fields.Integer(dump_only=True, allow_none=True)
    request_id = fields.String(dump_only=True, allow_none=True)
    client_address = fields.String(dump_only=True, allow_none=True)


AuditPageSchema = page_schema(AuditEventSchema, "AuditPage")
