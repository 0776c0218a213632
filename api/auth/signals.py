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
