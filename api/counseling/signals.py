"""What the counseling feature tells the features above it (reminders aim at the next session).

Counseling sits below reminders in the feature order (docs/architecture.md): it never imports
reminders; it sends this signal inside the caller's transaction. Receivers add and flush, never
commit.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from blinker import Namespace
from sqlalchemy.orm import Session

_signals = Namespace()

# send(session, user_id=..., now=...): a session was added, moved, cancelled or removed.
sessions_changed = _signals.signal("counseling.sessions_changed")


def send_sessions_changed(session: Session, *, user_id: uuid.UUID, now: datetime) -> None:
    """Tell the followers; a change nobody follows is a wiring error, not a no-op."""
    if not sessions_changed.receivers:
        raise RuntimeError("no receiver for counseling.sessions_changed (api.reminders not loaded)")
    sessions_changed.send(session, user_id=user_id, now=now)
