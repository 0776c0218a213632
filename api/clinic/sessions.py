"""Dashboard sessions: start, look up (idle and absolute limits), promote, end. Flush only."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from api.auth import signals as auth_signals
from api.auth.models import User
from api.clinic.models import ClinicSession
from api.security import hash_token

log = structlog.get_logger("waymark.clinic")


@dataclass(frozen=True)
class Limits:
    idle: int  # seconds without a request before the session ends
    absolute: int  # seconds after sign-in when it ends whatever happens


def start(session: Session, *, user: User, now: datetime) -> tuple[str, ClinicSession]:
    """A session after the password, waiting for the second factor. Returns (cookie token, row)."""
    token = secrets.token_urlsafe(32)
    row = ClinicSession(
        token_hash=hash_token(token),
        user_id=user.id,
        stage="password",
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
    )
    session.add(row)
    session.flush()
    log.info("clinic.session_started", session_id=str(row.id), user_id=str(user.id))
    return token, row


def promote(session: Session, *, row: ClinicSession, now: datetime) -> str:
    """The second factor passed: a new token and CSRF token (no fixation across the step)."""
    token = secrets.token_urlsafe(32)
    row.token_hash = hash_token(token)
    row.csrf_token = secrets.token_urlsafe(32)
    row.stage = "full"
    row.last_seen_at = now
    row.pending_totp_secret = None
    session.flush()
    log.info("clinic.session_promoted", session_id=str(row.id))
    return token


def load(
    session: Session, *, token: str, now: datetime, limits: Limits
) -> tuple[ClinicSession, User] | None:
    """The live session behind a cookie token, its idle clock reset; None if there is none (an
    idle or expired one is ended here, so it cannot come back)."""
    found = session.execute(
        select(ClinicSession, User)
        .join(User, User.id == ClinicSession.user_id)
        .where(ClinicSession.token_hash == hash_token(token), ClinicSession.ended_at.is_(None))
    ).first()
    if found is None:
        return None
    row, user = found
    reason = None
    if user.deactivated_at is not None:
        reason = "deactivated"
    elif now - row.created_at >= timedelta(seconds=limits.absolute):
        reason = "expired"
    elif now - row.last_seen_at >= timedelta(seconds=limits.idle):
        reason = "idle"
    if reason is not None:
        end(session, row=row, now=now, reason=reason)
        return None
    row.last_seen_at = now
    session.flush()
    return row, user


def end(session: Session, *, row: ClinicSession, now: datetime, reason: str) -> None:
    if row.ended_at is None:
        row.ended_at = now
        row.ended_reason = reason
        session.flush()
        log.info("clinic.session_ended", session_id=str(row.id), reason=reason)


def end_all(session: Session, *, user_id: uuid.UUID, now: datetime, reason: str) -> int:
    """End every dashboard session of a user (deactivation, password change)."""
    result = session.execute(
        update(ClinicSession)
        .where(ClinicSession.user_id == user_id, ClinicSession.ended_at.is_(None))
        .values(ended_at=now, ended_reason=reason)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


@auth_signals.password_replaced.connect
def _on_password_replaced(
    session: Session, *, user_id: uuid.UUID, now: datetime, reason: str
) -> None:
    # A password reset by email ends the dashboard's sign-ins too, not only the API's.
    ended = end_all(session, user_id=user_id, now=now, reason=reason)
    log.info("clinic.sessions_ended", user_id=str(user_id), reason=reason, sessions_ended=ended)
