"""The signed-in person's account: /v1/me (profile, password, erasure)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import current_app
from flask_smorest import Blueprint

from api.account import erasure, services
from api.account.schemas import EraseSchema, MePatchSchema, PasswordChangeSchema
from api.auth.schemas import UserSchema
from api.db import get_session, in_own_transaction, utcnow
from api.security import auth_required, current_user, password_hasher

blp = Blueprint(
    "account", __name__, url_prefix="/v1", description="The account: profile, password, erasure"
)


@blp.get("/me")
@auth_required()
@blp.response(200, UserSchema)
def get_me() -> Any:
    """The signed-in user."""
    return current_user()


@blp.patch("/me")
@auth_required()
@blp.arguments(MePatchSchema)
@blp.response(200, UserSchema)
def update_me(body: dict[str, Any]) -> Any:
    """Change display name, time zone, quiet hours or discreet notifications."""
    session = get_session()
    user = services.update_profile(session, user=current_user(), changes=body, now=utcnow())
    session.commit()
    return user


@blp.post("/me/password")
@auth_required()
@blp.arguments(PasswordChangeSchema)
@blp.response(204)
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
def change_password(body: dict[str, Any]) -> None:
    """Change the password; every sign-in of the account ends."""
    session = get_session()
    services.change_password(
        session,
        user=current_user(),
        now=utcnow(),
        hasher=password_hasher(),
        own_transaction=in_own_transaction,  # the counted attempt outlives a 401
        **body,
    )
    session.commit()


@blp.delete("/me")
@auth_required()
@blp.arguments(EraseSchema)
@blp.response(204)
@blp.alt_response(403, response="FORBIDDEN")
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
def erase_me(body: dict[str, Any]) -> None:
    """Erase the account and its health data; every sign-in ends (needs the password)."""
    session = get_session()
    erasure.erase_account(
        session,
        user=current_user(),
        password=body["password"],
        hasher=password_hasher(),
        export_dir=Path(current_app.config["EXPORT_DIR"]),
        now=utcnow(),
        own_transaction=in_own_transaction,  # the counted attempt outlives a 403
    )
    session.commit()
