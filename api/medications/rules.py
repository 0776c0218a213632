"""The dose rules, in one place: when a regimen is live, when a scheduled dose is on time, and
when it is missed or still pending. Pure; used by the medications reads and the missed-dose job,
and through the read model by summaries and alerts (docs/medications.md, docs/summaries.md).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from api.localtime import local_day_end, local_day_start

_TICK = timedelta(microseconds=1)


def live_during(regimen: Any, start: datetime, end: datetime) -> bool:
    """Whether the regimen (a Medication, or a row with its zone, archived_at, start_date and
    end_date) was live at some point of [start, end)."""
    zone = regimen.zone
    if regimen.archived_at is not None and regimen.archived_at <= start:
        return False
    if local_day_start(regimen.start_date, zone) >= end:
        return False
    if regimen.end_date is not None:
        return local_day_end(regimen.end_date, zone) > start
    return True


def on_time(scheduled_for: datetime, taken_at: datetime | None, *, window: timedelta) -> bool:
    """A taken dose is on time when taken within `window` of its scheduled time, either side."""
    return taken_at is not None and abs(taken_at - scheduled_for) <= window


def window_closed(scheduled_for: datetime, *, window: timedelta, now: datetime) -> bool:
    """The dose's on-time window has closed by `now`: unanswered, it is missed."""
    return scheduled_for + window <= now


def missed_cutoff(now: datetime, window_minutes: int) -> datetime:
    """Scheduled doses before this instant have had their whole window (window_closed, for a
    query's bound: at microsecond resolution, before it is the same as closed)."""
    return now - timedelta(minutes=window_minutes) + _TICK


def dose_status(
    scheduled_for: datetime,
    logged: str | None,
    taken_at: datetime | None,
    *,
    window: timedelta,
    now: datetime,
) -> str:
    """taken_on_time, taken_late, skipped, missed or pending, for a scheduled dose and the status
    of its log (None: no log). A stored "missed" answers nothing: the window decides."""
    if logged is not None and logged != "missed":
        if logged != "taken":
            return "skipped"
        return "taken_on_time" if on_time(scheduled_for, taken_at, window=window) else "taken_late"
    return "missed" if window_closed(scheduled_for, window=window, now=now) else "pending"
