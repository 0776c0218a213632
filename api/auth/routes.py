"""Accounts and tokens: /v1/auth/*, /v1/me, /v1/admin/clinicians."""

from __future__ import annotations

from typing import Any

from flask import current_app, request
from flask_smorest import Blueprint

from api import idempotency
from api.auth import mfa, recovery, services
from api.auth.email_tokens import EmailTokenSettings
from api.auth.schemas import (
    ClinicianCreateSchema,
    CredentialsSchema,
    EmailSentSchema,
    EmailVerificationSchema,
    PasswordResetRequestSchema,
    PasswordResetSchema,
    RefreshSchema,
    RegisterSchema,
    RegistrationSchema,
    TokenPairSchema,
    UserSchema,
    VerificationResendSchema,
)
from api.db import get_session, in_own_transaction, utcnow
from api.errors import ValidationError
from api.ratelimit import make_counter
from api.security import ROLES, auth_required, authenticate, client_address, password_hasher

blp = Blueprint("auth", __name__, url_prefix="/v1", description="Accounts and tokens")


REGISTERED = (
    "If this email address is new, the account is ready: sign in with it. If it already has an "
    "account, its owner has been sent an email."
)


def token_settings() -> services.TokenSettings:
    cfg = current_app.config
    return services.TokenSettings(
        cfg["ACCESS_TOKEN_TTL"],
        cfg["REFRESH_TOKEN_TTL"],
        reuse_grace=cfg["REFRESH_REUSE_GRACE"],
        successor_key=cfg["SECRET_KEY"].encode(),
    )


def email_token_settings() -> EmailTokenSettings:
    return EmailTokenSettings.from_config(current_app.config)


def email_limits() -> recovery.EmailLimits:
    cfg = current_app.config
    return recovery.EmailLimits(
        max_per_address=cfg["EMAIL_TOKEN_MAX_PER_ADDRESS"],
        max_emails_per_account=cfg["EMAIL_TOKEN_MAX_PER_ACCOUNT"],
        window=cfg["EMAIL_TOKEN_WINDOW"],
    )


def throttle_settings() -> services.ThrottleSettings:
    cfg = current_app.config
    return services.ThrottleSettings(
        cfg["LOGIN_MAX_FAILURES_PER_ACCOUNT"],
        cfg["LOGIN_MAX_FAILURES_PER_ADDRESS"],
        cfg["LOGIN_FAILURE_WINDOW"],
    )


@blp.post("/auth/register")
@blp.arguments(RegisterSchema)
@blp.response(202, RegistrationSchema)
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
def register_user(body: dict[str, Any]) -> Any:
    """Ask for a patient account; the answer is the same whether or not the email has one."""
    session = get_session()
    now = utcnow()
    cfg = current_app.config
    services.register_patient(
        session,
        hasher=password_hasher(),
        address=client_address(),
        counter=make_counter(cfg["REDIS_URL"]),
        limit=cfg["REGISTER_MAX_PER_ADDRESS"],
        window=cfg["REGISTER_WINDOW"],
        now=now,
        **body,
    )
    session.commit()
    return {"email": services.normalize_email(body["email"]), "detail": REGISTERED}


@blp.post("/auth/token")
@idempotency.not_replayable
@blp.arguments(CredentialsSchema)
@blp.response(200, TokenPairSchema)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(
    403,
    response="FORBIDDEN",
    description="A second factor is required first, or (REQUIRE_EMAIL_VERIFICATION) the email "
    "address is not verified yet (type .../email-not-verified)",
)
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
def create_token(body: dict[str, Any]) -> Any:
    """Sign in with email, password and, once enrolled, a TOTP code; answers a token pair."""
    session = get_session()
    pair = services.login(
        session,
        email=body["email"],
        password=body["password"],
        address=client_address(),
        now=utcnow(),
        hasher=password_hasher(),
        counter=make_counter(current_app.config["REDIS_URL"]),
        throttle=throttle_settings(),
        tokens=token_settings(),
        box=mfa.SecretBox.of(current_app.config),
        totp_code=body.get("totp_code"),
        own_transaction=in_own_transaction,  # the counted attempt outlives a 401
        require_verified_email=current_app.config["REQUIRE_EMAIL_VERIFICATION"],
    )
    session.commit()
    return pair


@blp.post("/auth/refresh")
@idempotency.not_replayable
@blp.arguments(RefreshSchema)
@blp.response(200, TokenPairSchema)
@blp.alt_response(401, response="UNAUTHORIZED")
def refresh_token(body: dict[str, Any]) -> Any:
    """Exchange a refresh token for a new pair; the old one is spent."""
    session = get_session()
    pair = services.refresh(
        session,
        refresh_token=body["refresh_token"],
        now=utcnow(),
        tokens=token_settings(),
        own_transaction=in_own_transaction,  # a revoked login outlives the 401
    )
    session.commit()
    return pair


EMAIL_SENT = "If this address has an account that needs it, an email is on its way."


@blp.post("/auth/password-reset")
@blp.arguments(PasswordResetRequestSchema, example={"email": "sam@example.org"})
@blp.response(202, EmailSentSchema, example={"detail": EMAIL_SENT})
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
def request_password_reset(body: dict[str, Any]) -> Any:
    """Email a password-reset link; the same answer whether or not the email has an account."""
    session = get_session()
    recovery.request_password_reset(
        session,
        email=body["email"],
        address=client_address(),
        counter=make_counter(current_app.config["REDIS_URL"]),
        limits=email_limits(),
        now=utcnow(),
    )
    session.commit()
    return {"detail": EMAIL_SENT}


@blp.post("/auth/password-reset/confirm")
@blp.arguments(
    PasswordResetSchema,
    example={
        "token": "q2Vx0mJm3m2b8kKc2C2u4B7t0bqQp3o0bQe9Zz8y1Xk",
        "new_password": "a new passphrase",
    },
)
@blp.response(204)
@blp.alt_response(400, response="BAD_REQUEST", description="The token is unknown, used or expired")
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
def reset_password(body: dict[str, Any]) -> None:
    """Set a new password with the emailed token; every sign-in of the account ends."""
    session = get_session()
    recovery.reset_password(
        session,
        token=body["token"],
        new_password=body["new_password"],
        address=client_address(),
        counter=make_counter(current_app.config["REDIS_URL"]),
        limits=email_limits(),
        hasher=password_hasher(),
        now=utcnow(),
        own_transaction=in_own_transaction,  # the counted attempt outlives a 400
    )
    session.commit()


@blp.post("/auth/verify-email")
@blp.arguments(
    EmailVerificationSchema, example={"token": "q2Vx0mJm3m2b8kKc2C2u4B7t0bqQp3o0bQe9Zz8y1Xk"}
)
@blp.response(204)
@blp.alt_response(400, response="BAD_REQUEST", description="The token is unknown, used or expired")
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
def verify_email(body: dict[str, Any]) -> None:
    """Confirm the account's email address with the emailed token."""
    session = get_session()
    recovery.verify_email(
        session,
        token=body["token"],
        address=client_address(),
        counter=make_counter(current_app.config["REDIS_URL"]),
        limits=email_limits(),
        now=utcnow(),
        own_transaction=in_own_transaction,  # the counted attempt outlives a 400
    )
    session.commit()


@blp.post("/auth/verify-email/resend")
@blp.doc(
    # Signed in or not: with a bearer token the link goes to that account, without one to the
    # account of `email` (if any). Either way the answer is the same.
    security=[{}, {"bearerAuth": []}],
    responses={"401": "UNAUTHORIZED"},
    description="Signed in (the account's own address) or not (`email` required).",
    **{"x-roles": list(ROLES)},
)
@blp.arguments(VerificationResendSchema, example={"email": "sam@example.org"})
@blp.response(202, EmailSentSchema, example={"detail": EMAIL_SENT})
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
def resend_verification_email(body: dict[str, Any]) -> Any:
    """Send a new verification link; the same answer whether or not the email has an account."""
    user_id = authenticate()[0] if "Authorization" in request.headers else None
    if user_id is None and not body.get("email"):
        raise ValidationError({"email": ["Required unless signed in."]})
    session = get_session()
    recovery.resend_verification(
        session,
        user_id=user_id,
        email=body.get("email"),
        address=client_address(),
        counter=make_counter(current_app.config["REDIS_URL"]),
        limits=email_limits(),
        settings=email_token_settings(),
        now=utcnow(),
    )
    session.commit()
    return {"detail": EMAIL_SENT}


@blp.post("/auth/logout")
@blp.arguments(RefreshSchema)
@blp.response(204)
def logout(body: dict[str, Any]) -> None:
    """End the sign-in that the refresh token belongs to."""
    session = get_session()
    services.logout(session, refresh_token=body["refresh_token"], now=utcnow())
    session.commit()


@blp.post("/admin/clinicians")
@auth_required("admin")
@blp.arguments(ClinicianCreateSchema)
@blp.response(201, UserSchema)
@blp.alt_response(409, response="CONFLICT")
def create_clinician(body: dict[str, Any]) -> Any:
    """Create a clinician account (admin only)."""
    session = get_session()
    user = services.create_user(session, hasher=password_hasher(), role="clinician", **body)
    session.commit()
    return user
