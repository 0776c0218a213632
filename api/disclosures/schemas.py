"""Shapes of the accounting of disclosures (contract: "Consent and disclosures")."""

from __future__ import annotations

from marshmallow import Schema, fields

from api.pagination import page_schema

NOTICE_DESCRIPTION = "The 42 CFR part 2 redisclosure notice that governs the data in this answer."


def disclosed_page_schema(item_schema: type, name: str) -> type:
    """A list envelope that carries disclosed data: items, next_cursor and the notice."""
    base = page_schema(item_schema, name + "Base")
    return type(
        name,
        (base,),
        {"notice": fields.String(required=True, metadata={"description": NOTICE_DESCRIPTION})},
    )


class RecipientSchema(Schema):
    id = fields.UUID(dump_only=True)
    display_name = fields.String(dump_only=True)
    organization = fields.String(dump_only=True, allow_none=True)


class DisclosureSchema(Schema):
    id = fields.UUID(dump_only=True)
    at = fields.AwareDateTime(dump_only=True)
    recipient = fields.Nested(RecipientSchema, dump_only=True)
    consent_id = fields.UUID(dump_only=True)
    kind = fields.String(dump_only=True, metadata={"enum": ["read", "summary", "export"]})
    categories = fields.List(fields.String(), dump_only=True)
    data_from = fields.AwareDateTime(
        dump_only=True, metadata={"description": "Start of the period of data disclosed."}
    )
    data_to = fields.AwareDateTime(
        dump_only=True, metadata={"description": "End of the period of data disclosed."}
    )


DisclosurePageSchema = page_schema(DisclosureSchema, "DisclosurePage")
