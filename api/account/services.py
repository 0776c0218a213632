"""The signed-in person's account: profile, password (erasure: erasure.py). Services flush,
never commit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from argon2 import PasswordHasher
from sqlalchemy.orm import Session

from api.auth import signals as auth_signals
from api.auth.models import User
from api.auth.services import PASSWORD_FAILURE_WINDOW, PASSWORD_MAX_FAILURES, end_all_sessions
from api.db import OwnTransaction
from api.errors import Unauthorized
from api.medications import services as medication_services
from api.ratelimit import DatabaseCounter, take_attempt
from api.reminders import services as reminder_services
from api.security import hash_password, verify_password

log = structlog.get_logger("waymark.auth")

# The named short transaction (db.in_own_transaction) of a password change's counted attempt.
PASSWORD_ATTEMPT = "account.password_attempt"


def update_profile(session: Session, *, user: User, changes: dict[str, Any], now: datetime) -> User:
    """Change profile fields. A new time zone re-anchors the user's dose schedules at `now`,
    and reminder rules follow a new zone or new quiet hours at once: the account sits above
    medications and reminders in the feature order, so it calls them, never the other way."""
    moved = "timezone" in changes and changes["timezone"] != user.timezone
    requiet = "quiet_hours" in changes
    if moved:
        # Past doses keep the zone they were due in; only doses from now on move.
        medication_services.rebase_timezone(
            session, user_id=user.id, timezone=changes["timezone"], now=now
        )
    if "quiet_hours" in changes:
        quiet = changes.pop("quiet_hours")
        user.quiet_hours_start = quiet["start"] if quiet else None
        user.quiet_hours_end = quiet["end"] if quiet else None
    for key in ("display_name", "timezone", "discreet_notifications"):
        if key in changes:
            setattr(user, key, changes[key])
    session.flush()
    if moved or requiet:
        reminder_services.follow_user(session, user=user, now=now, moved=moved)
    log.info("user.updated", user_id=str(user.id), fields=sorted(changes))
    return user


def change_password(
    session: Session,
    *,
    user: User,
    current_password: str,
    new_password: str,
    now: datetime,
    hasher: PasswordHasher,
    own_transaction: OwnTransaction,
) -> None:
    """Raises TooManyRequests after PASSWORD_MAX_FAILURES wrong current passwords in a window,
    Unauthorized if the current password is wrong (the attempt was counted first, in a short
    transaction of its own, PASSWORD_ATTEMPT, so it stays); ends every login on success."""
    # Like erasure: a stolen access token must not guess the password (then end every other
    # login with it). Counted in the database: the row goes with the account.
    counter = DatabaseCounter()
    key = f"password:{user.id}"
    own_transaction(
        PASSWORD_ATTEMPT,
        lambda own: take_attempt(
            own,
            counter,
            key,
            limit=PASSWORD_MAX_FAILURES,
            window=PASSWORD_FAILURE_WINDOW,
            now=now,
            detail="Too many wrong passwords. Try again later.",
        ),
    )
    if not verify_password(user.password_hash, current_password, hasher):
        log.info("auth.password_change_refused", user_id=str(user.id))
        raise Unauthorized("The current password is not correct.")
    counter.reset(session, key)
    user.password_hash = hash_password(new_password, hasher)
    ended = end_all_sessions(session, user_id=user.id, now=now, reason="password_change")
    # The dashboard's sign-ins end too, as after a reset: a changed password ends every login.
    auth_signals.password_replaced.send(session, user_id=user.id, now=now, reason="password_change")
    session.flush()
    log.info("auth.password_changed", user_id=str(user.id), sessions_ended=ended)
