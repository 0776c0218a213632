"""Shapes of the accounting of disclosures (contract: "Consent and disclosures")."""

from __future__ import annotations

from marshmallow import Schema, fields

from api.pagination import page_schema

NOTICE_DESCRIPTION = "The 42 CFR part 2 redisclosure notice that governs the data in this answer."
CONSENT_SCOPES_DESCRIPTION = (
    "The scope of each consent this answer disclosed data under (42 CFR 2.32(b)): recipient, "
    "categories, purpose, data period, expiry and the text signed. Empty when it disclosed none."
)


def disclosed_page_schema(item_schema: type, name: str) -> type:
    """A list envelope that carries disclosed data: items, next_cursor, the notice and the
    scope of the consents it was disclosed under."""
    base = page_schema(item_schema, name + "Base")
    return type(
        name,
        (base,),
        {
            "notice": fields.String(required=True, metadata={"description": NOTICE_DESCRIPTION}),
            "consent_scopes": fields.List(
                fields.Nested(lambda: ConsentScopeSchema()),  # noqa: PLW0108 - defined below
                required=True,
                metadata={"description": CONSENT_SCOPES_DESCRIPTION},
            ),
        },
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
    purpose = fields.String(
        dump_only=True,
        metadata={
            "description": "For what purpose (the consent's; `unrecorded` only for rows older "
            "than the ledger's purpose column whose consent was erased with its patient).",
            "enum": ["treatment", "care_coordination", "patient_request", "unrecorded"],
        },
    )
    client_name = fields.String(
        dump_only=True,
        allow_none=True,
        metadata={"description": "The system (e.g. an EHR) that received it for the recipient."},
    )
    categories = fields.List(fields.String(), dump_only=True)
    data_from = fields.AwareDateTime(
        dump_only=True, metadata={"description": "Start of the period of data disclosed."}
    )
    data_to = fields.AwareDateTime(
        dump_only=True, metadata={"description": "End of the period of data disclosed."}
    )


DisclosurePageSchema = page_schema(DisclosureSchema, "DisclosurePage")


class ConsentScopeSchema(Schema):
    """A consent's scope, carried by every disclosure (42 CFR 2.32(b), 2024 text)."""

    consent_id = fields.UUID(dump_only=True)
    discloser = fields.String(dump_only=True)
    recipient = fields.Nested(RecipientSchema, dump_only=True)
    categories = fields.List(fields.String(), dump_only=True)
    purpose = fields.String(dump_only=True)
    data_from = fields.AwareDateTime(
        dump_only=True, metadata={"description": "The consent covers data recorded from here on."}
    )
    expires_at = fields.AwareDateTime(dump_only=True, allow_none=True)
    signed_at = fields.AwareDateTime(dump_only=True)
    share_weekly_summary = fields.Boolean(dump_only=True)
    consent_text_version = fields.String(dump_only=True)
    consent_text_url = fields.String(
        dump_only=True, metadata={"description": "Where the full text the patient signed is."}
    )
