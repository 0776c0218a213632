"""Accounts and tokens: /v1/auth/*, /v1/me, /v1/admin/clinicians."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_smorest import Blueprint

from api import idempotency
from api.auth import mfa, services
from api.auth.schemas import (
    ClinicianCreateSchema,
    CredentialsSchema,
    RefreshSchema,
    RegisterSchema,
    RegistrationSchema,
    TokenPairSchema,
    UserSchema,
)
from api.db import get_session, in_own_transaction, utcnow
from api.ratelimit import make_counter
from api.security import auth_required, client_address, password_hasher

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
@blp.alt_response(403, response="FORBIDDEN", description="A second factor is required first")
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
