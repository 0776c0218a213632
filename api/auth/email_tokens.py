"""Single-use tokens sent by email (password reset, address verification). Services flush,
never commit.

Only a hash of a token is stored. The email that carries it is queued in the outbox and sent
after the commit, so the sender must be able to write the token into the message without the
token being stored anywhere: it is derived, HMAC keyed by the server's SECRET_KEY, from the id
of the outbox notification that carries it. The database alone (a leaked backup) yields no
usable token; whoever holds SECRET_KEY can already sign access tokens.
"""

from __future__ import annotations

import base64
import hmac
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from api.auth import signals
from api.auth.models import EMAIL_TOKEN_PURPOSES, EmailToken
from api.errors import AppError
from api.security import hash_token

log = structlog.get_logger("waymark.auth")

PASSWORD_RESET = "password_reset"
VERIFY_EMAIL = "verify_email"
assert (PASSWORD_RESET, VERIFY_EMAIL) == EMAIL_TOKEN_PURPOSES


@dataclass(frozen=True)
class EmailTokenSettings:
    key: bytes  # the app's SECRET_KEY
    password_reset_ttl: int  # seconds (PASSWORD_RESET_TTL)
    verify_email_ttl: int  # seconds (EMAIL_VERIFICATION_TTL)

    def ttl(self, purpose: str) -> int:
        return self.password_reset_ttl if purpose == PASSWORD_RESET else self.verify_email_ttl

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> EmailTokenSettings:
        return cls(
            key=cfg["SECRET_KEY"].encode(),
            password_reset_ttl=cfg["PASSWORD_RESET_TTL"],
            verify_email_ttl=cfg["EMAIL_VERIFICATION_TTL"],
        )


class InvalidToken(AppError):
    """A token that is unknown, used, voided or expired: 400 naming the `token` field (the
    attempt was counted before, in a short transaction of its own: api.auth.recovery)."""

    status = 400
    slug = "invalid-token"
    title = "Invalid or expired token"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, errors={"token": [detail]})


def derive_token(key: bytes, *, purpose: str, notification_id: uuid.UUID) -> str:
    """The token carried by the email `notification_id` (see the module docstring)."""
    if not key:
        raise ValueError("email tokens need a key (SECRET_KEY)")
    message = f"email-token:{purpose}:{notification_id}".encode()
    mac = hmac.new(key, message, "sha256").digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def issue(
    session: Session,
    *,
    user_id: uuid.UUID,
    purpose: str,
    now: datetime,
    settings: EmailTokenSettings,
) -> EmailToken:
    """Queue an email carrying a new token and store the token's hash. Older unused tokens of
    the same purpose for the user are voided: only the newest link works."""
    assert purpose in EMAIL_TOKEN_PURPOSES, purpose
    void(session, user_id=user_id, purpose=purpose, now=now)
    notification_id = signals.send_email_token(session, user_id=user_id, purpose=purpose, now=now)
    token = derive_token(settings.key, purpose=purpose, notification_id=notification_id)
    row = EmailToken(
        user_id=user_id,
        purpose=purpose,
        token_hash=hash_token(token),
        created_at=now,
        expires_at=now + timedelta(seconds=settings.ttl(purpose)),
    )
    session.add(row)
    session.flush()
    log.info("auth.email_token_issued", user_id=str(user_id), purpose=purpose, token_id=str(row.id))
    return row


def void(session: Session, *, user_id: uuid.UUID, purpose: str, now: datetime) -> None:
    """Make every unused token of `purpose` for the user unusable."""
    session.execute(
        update(EmailToken)
        .where(
            EmailToken.user_id == user_id,
            EmailToken.purpose == purpose,
            EmailToken.used_at.is_(None),
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )


def consume(session: Session, *, token: str, purpose: str, now: datetime) -> EmailToken:
    """Use a token once. Raises InvalidToken if it is unknown (or of another purpose), already
    used or voided, or expired. Of two concurrent uses only one succeeds."""
    row = session.scalar(
        select(EmailToken)
        .where(EmailToken.token_hash == hash_token(token), EmailToken.purpose == purpose)
        .with_for_update()
    )
    if row is None:
        raise InvalidToken("This link is not valid. Ask for a new one.")
    if row.used_at is not None:
        raise InvalidToken("This link was already used or replaced by a newer one.")
    if row.expires_at <= now:
        raise InvalidToken("This link has expired. Ask for a new one.")
    # Conditional: a second request racing with the same token finds it used.
    won = session.execute(
        update(EmailToken)
        .where(EmailToken.id == row.id, EmailToken.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(won, "rowcount", 0) != 1:
        raise InvalidToken("This link was already used or replaced by a newer one.")
    session.refresh(row)
    log.info("auth.email_token_used", user_id=str(row.user_id), purpose=purpose)
    return row
