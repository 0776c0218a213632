"""Shapes of inbox items."""

from __future__ import annotations

from marshmallow import Schema, fields


class InboxItemSchema(Schema):
    id = fields.UUID(dump_only=True)
    kind = fields.String(
        dump_only=True, metadata={"description": "checkin, medication, counseling"}
    )
    reminder_id = fields.UUID(dump_only=True, allow_none=True)
    title = fields.String(dump_only=True)
    body = fields.String(dump_only=True)
    scheduled_for = fields.AwareDateTime(dump_only=True)
    delivered_at = fields.AwareDateTime(dump_only=True)
    read_at = fields.AwareDateTime(dump_only=True, allow_none=True)
    snoozed = fields.Boolean(dump_only=True, metadata={"description": "A snoozed re-fire."})
