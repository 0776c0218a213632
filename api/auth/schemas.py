"""Shapes of accounts and tokens (contract: "Accounts and tokens")."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, post_dump, validate, validates_schema

from api.fields import EmailAddress, LocalTime, StrictSchema, TimeZoneName
from api.openapi import MAY_BE_ABSENT


class QuietHoursSchema(StrictSchema):
    start = LocalTime(required=True)
    end = LocalTime(required=True)

    @validates_schema
    def _distinct(self, data: dict[str, Any], **_kw: Any) -> None:
        if data["start"] == data["end"]:
            raise ValidationError("start and end must differ.", "end")


class UserSchema(Schema):
    id = fields.UUID(dump_only=True)
    email = fields.Email(dump_only=True)
    display_name = fields.String(dump_only=True)
    role = fields.String(dump_only=True)
    timezone = fields.String(dump_only=True)
    quiet_hours = fields.Nested(QuietHoursSchema, allow_none=True, dump_only=True)
    discreet_notifications = fields.Boolean(dump_only=True)
    email_verified = fields.Boolean(
        dump_only=True,
        metadata={
            "description": "Whether the owner proved the address (a verification or password "
            "reset link). Accounts made before verification existed, and by an admin, count as "
            "verified."
        },
    )
    created_at = fields.AwareDateTime(dump_only=True)
    organization = fields.String(
        dump_only=True, metadata={"description": "Clinicians only.", MAY_BE_ABSENT: True}
    )
    invite_code = fields.String(
        dump_only=True, metadata={"description": "Clinicians only.", MAY_BE_ABSENT: True}
    )

    @post_dump(pass_original=True)
    def _clinician_fields(self, data: dict[str, Any], user: Any, **_kw: Any) -> dict[str, Any]:
        if getattr(user, "role", None) != "clinician":
            data.pop("organization", None)
            data.pop("invite_code", None)
        return data


class RegisterSchema(StrictSchema):
    email = EmailAddress(required=True, validate=validate.Length(max=320))
    password = fields.String(
        required=True, load_only=True, validate=validate.Length(min=10, max=1024)
    )
    display_name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    timezone = TimeZoneName(required=True)


class RegistrationSchema(Schema):
    """The answer to a registration: the same whether or not the address had an account."""

    email = fields.String(required=True, metadata={"description": "the address, normalized"})
    detail = fields.String(required=True)


class CredentialsSchema(StrictSchema):
    email = EmailAddress(required=True, validate=validate.Length(max=320))
    password = fields.String(required=True, load_only=True, validate=validate.Length(max=1024))
    totp_code = fields.String(
        load_only=True,
        validate=validate.Length(max=20),
        metadata={
            "description": "The current TOTP code (or an unused recovery code); required once "
            "the account enrolled a second factor in the dashboard (401 with mfa_required "
            "otherwise)."
        },
    )


class RefreshSchema(StrictSchema):
    refresh_token = fields.String(required=True, load_only=True, validate=validate.Length(max=200))


class TokenPairSchema(Schema):
    access_token = fields.String(required=True)
    refresh_token = fields.String(required=True)
    token_type = fields.String(required=True)
    expires_in = fields.Integer(required=True)


class ClinicianCreateSchema(StrictSchema):
    email = EmailAddress(required=True, validate=validate.Length(max=320))
    password = fields.String(
        required=True, load_only=True, validate=validate.Length(min=10, max=1024)
    )
    display_name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    organization = fields.String(required=True, validate=validate.Length(min=1, max=200))
    timezone = TimeZoneName(load_default="UTC")


# Password reset and email verification (docs/contract.md). Tokens are 43 URL-safe characters;
# anything longer than 200 is refused as a shape error before any lookup.
_TOKEN = {"description": "The single-use token from the email (also in its link, after #token=)."}
EXAMPLE_TOKEN = "q2Vx0mJm3m2b8kKc2C2u4B7t0bqQp3o0bQe9Zz8y1Xk"


class PasswordResetRequestSchema(StrictSchema):
    email = EmailAddress(
        required=True,
        validate=validate.Length(max=320),
        metadata={"example": "sam@example.org"},
    )


class PasswordResetSchema(StrictSchema):
    token = fields.String(
        required=True,
        load_only=True,
        validate=validate.Length(min=1, max=200),
        metadata={**_TOKEN, "example": EXAMPLE_TOKEN},
    )
    new_password = fields.String(
        required=True,
        load_only=True,
        validate=validate.Length(min=10, max=1024),
        metadata={
            "description": "The same rules as at registration.",
            "example": "a new passphrase",
        },
    )


class EmailVerificationSchema(StrictSchema):
    token = fields.String(
        required=True,
        load_only=True,
        validate=validate.Length(min=1, max=200),
        metadata={**_TOKEN, "example": EXAMPLE_TOKEN},
    )


class VerificationResendSchema(StrictSchema):
    email = EmailAddress(
        validate=validate.Length(max=320),
        metadata={
            "description": "Required unless signed in (Authorization header); ignored when "
            "signed in.",
            "example": "sam@example.org",
        },
    )


class EmailSentSchema(Schema):
    """The answer to a reset or resend request: the same whether or not the address has an
    account (or needs the email)."""

    detail = fields.String(
        required=True,
        metadata={"example": "If this address has an account, an email is on its way."},
    )
