"""The shape GET /v1/instruments serves (contract: "Instruments and check-ins")."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, post_dump

from api.openapi import MAY_BE_ABSENT


class OptionSchema(Schema):
    value = fields.Integer(required=True)
    label = fields.String(required=True)


class ItemSchema(Schema):
    key = fields.String(required=True)
    text = fields.String(required=True)
    min = fields.Integer(required=True)
    max = fields.Integer(required=True)
    allowed = fields.List(
        fields.Integer(),
        metadata={
            "description": "Present on sparse items (COWS): the only values accepted.",
            MAY_BE_ABSENT: True,
        },
    )
    options = fields.List(
        fields.Nested(OptionSchema),
        metadata={
            "description": "Present when the item has its own anchors (COWS).",
            MAY_BE_ABSENT: True,
        },
    )

    @post_dump
    def _drop_absent(self, data: dict[str, Any], **_kw: Any) -> dict[str, Any]:
        return {k: v for k, v in data.items() if v is not None}


class BandSchema(Schema):
    min = fields.Integer(required=True)
    max = fields.Integer(required=True)
    severity = fields.String(required=True)


class InstrumentSchema(Schema):
    code = fields.String(required=True)
    version = fields.String(required=True)
    title = fields.String(required=True)
    source = fields.String(required=True)
    items = fields.List(fields.Nested(ItemSchema), required=True)
    options = fields.List(
        fields.Nested(OptionSchema),
        required=True,
        metadata={"description": "Shared answer labels; empty when every item has its own."},
    )
    clinician_only = fields.Boolean(required=True)
    max_total = fields.Integer(required=True)
    bands = fields.List(
        fields.Nested(BandSchema),
        required=True,
        metadata={"description": "Severity bands of the total; empty: severity is always null."},
    )


class InstrumentListSchema(Schema):
    items = fields.List(fields.Nested(InstrumentSchema), required=True)
    next_cursor = fields.String(allow_none=True, required=True)
