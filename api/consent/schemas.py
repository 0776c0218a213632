"""Shapes of consents and clinician lookups (contract: "Consent and disclosures")."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from api.consent.models import CATEGORIES, PURPOSES, STATUSES
from api.fields import AwareDateTime, StrictSchema, instant
from api.pagination import PageArgs, page_schema


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("Must not be blank.")


class ClinicianLookupArgs(StrictSchema):
    invite_code = fields.String(required=True, validate=validate.Length(min=1, max=32))


class ClinicianCardSchema(Schema):
    """What a patient learns from an invite code: enough to recognise the clinician, no more."""

    id = fields.UUID(dump_only=True)
    display_name = fields.String(dump_only=True)
    organization = fields.String(dump_only=True, allow_none=True)


class ConsentCreateSchema(StrictSchema):
    id = fields.UUID(metadata={"description": "Optional client-generated id (offline-safe)."})
    recipient_id = fields.UUID(required=True, metadata={"description": "A clinician's id."})
    categories = fields.List(
        fields.String(validate=validate.OneOf(CATEGORIES)),
        required=True,
        validate=validate.Length(min=1, max=len(CATEGORIES)),
    )
    purpose = fields.String(required=True, validate=validate.OneOf(PURPOSES))
    share_weekly_summary = fields.Boolean(load_default=False)
    expires_at = AwareDateTime(
        load_default=None,
        allow_none=True,
        metadata={"description": "When the consent ends; null only for purpose treatment."},
    )
    data_from = AwareDateTime(
        load_default=None,
        allow_none=True,
        metadata={"description": "Share data recorded since this time (default: from signing on)."},
    )
    signature = fields.String(
        required=True,
        validate=[validate.Length(min=1, max=200), _not_blank],
        metadata={"description": "The patient's typed full name."},
    )
    consent_text_version = fields.String(
        required=True, validate=[validate.Length(min=1, max=40), _not_blank]
    )

    @validates_schema
    def _rules(self, data: dict[str, Any], **_kw: Any) -> None:
        cats = data.get("categories") or []
        if len(set(cats)) != len(cats):
            raise ValidationError("Each category at most once.", "categories")
        if data.get("expires_at") is None and data.get("purpose") not in (None, "treatment"):
            raise ValidationError("Required unless the purpose is treatment.", "expires_at")


class ConsentListArgs(PageArgs):
    status = fields.String(load_default=None, validate=validate.OneOf(STATUSES))


class ConsentSchema(Schema):
    id = fields.UUID(dump_only=True)
    status = fields.Method("_status", dump_only=True, metadata={"enum": list(STATUSES)})
    patient_id = fields.UUID(dump_only=True)
    discloser = fields.String(dump_only=True)
    recipient_id = fields.UUID(dump_only=True)
    recipient_name = fields.String(dump_only=True)
    recipient_organization = fields.String(dump_only=True, allow_none=True)
    categories = fields.List(fields.String(), dump_only=True)
    purpose = fields.String(dump_only=True)
    share_weekly_summary = fields.Boolean(dump_only=True)
    expires_at = fields.AwareDateTime(dump_only=True, allow_none=True)
    data_from = fields.AwareDateTime(dump_only=True, allow_none=True)
    revocation_statement = fields.String(dump_only=True)
    signature = fields.String(dump_only=True)
    patient_name = fields.String(
        dump_only=True, metadata={"description": "The patient's name as it stood at signing."}
    )
    consent_text_version = fields.String(dump_only=True)
    signed_at = fields.AwareDateTime(dump_only=True)
    replaces_id = fields.UUID(dump_only=True, allow_none=True)
    revoked_at = fields.AwareDateTime(dump_only=True, allow_none=True)

    def _status(self, consent: Any) -> str:
        # At the instant the route passed in (fields.judged_at), never a clock read of its own.
        return str(consent.status_at(instant()))


ConsentPageSchema = page_schema(ConsentSchema, "ConsentPage")


class ConsentTextSchema(Schema):
    """A consent text version, in full; immutable once published."""

    version = fields.String(dump_only=True)
    published = fields.Date(dump_only=True)
    sha256 = fields.String(dump_only=True, metadata={"description": "SHA-256 of `text`."})
    text = fields.String(dump_only=True, metadata={"description": "Markdown."})
