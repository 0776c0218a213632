"""What the medications feature tells the features above it (reminders follow a regimen).

Medications sit below reminders in the feature order (docs/architecture.md): they never import
reminders; they send this signal inside the caller's transaction and whoever follows a regimen
connects to it. Receivers add and flush, never commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from blinker import Namespace
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from api.medications.models import Medication

_signals = Namespace()

# send(session, medication=..., now=..., previous_times=...): created, rescheduled, archived.
regimen_changed = _signals.signal("medication.regimen_changed")


def send_regimen_changed(
    session: Session,
    *,
    medication: Medication,
    now: datetime,
    previous_times: Sequence[str] | None = None,
) -> None:
    """Tell the followers; a regimen change nobody follows is a wiring error, not a no-op."""
    if not regimen_changed.receivers:
        raise RuntimeError("no receiver for medication.regimen_changed (api.reminders not loaded)")
    regimen_changed.send(session, medication=medication, now=now, previous_times=previous_times)
