"""What the auth feature tells the features above it (the outbox emails an account's owner).

Auth sits below notifications in the feature order (docs/architecture.md): it never imports
them; it sends this signal inside the caller's transaction. Receivers add and flush, never commit.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from blinker import Namespace
from sqlalchemy.orm import Session

_signals = Namespace()

# send(session, user_id=..., now=...): someone tried to register with this user's address.
address_taken = _signals.signal("auth.address_taken")


def send_address_taken(session: Session, *, user_id: uuid.UUID, now: datetime) -> None:
    """Tell the owner's mailer; nobody listening is a wiring error: the owner must be told."""
    if not address_taken.receivers:
        raise RuntimeError("no receiver for auth.address_taken (api.notifications not loaded)")
    address_taken.send(session, user_id=user_id, now=now)


# send(session, user_id=..., now=..., reason=...): the password was replaced (by a reset link, or
# changed by its owner); the API's sign-ins have ended. Features above auth with sign-ins of their
# own (the dashboard) end theirs. Receivers flush only; nobody listening is fine (no other
# sign-ins to end).
password_replaced = _signals.signal("auth.password_replaced")


# send(session, user_id=..., purpose=..., now=...): queue the email that carries a single-use
# token (purpose "password_reset" or "verify_email"); the receiver answers the id of the outbox
# notification, from which the token is derived (api.auth.verification).
email_token_requested = _signals.signal("auth.email_token_requested")


def send_email_token(
    session: Session, *, user_id: uuid.UUID, purpose: str, now: datetime
) -> uuid.UUID:
    """Queue the token email through the one receiver; its notification id comes back."""
    answers = email_token_requested.send(session, user_id=user_id, purpose=purpose, now=now)
    if len(answers) != 1:
        raise RuntimeError(
            "auth.email_token_requested needs exactly one receiver (api.notifications)"
        )
    notification_id: uuid.UUID = answers[0][1]
    return notification_id
