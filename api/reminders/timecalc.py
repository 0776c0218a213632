"""When reminders fire: the next local occurrence of a rule, and quiet hours. Pure.

Policy (docs/reminders.md); wall times to instants, DST gaps and folds, are api/localtime.py's:
- a wall time that does not exist on a day (spring forward) fires at the first instant after the
  gap, and belongs to that day even when the gap ends after midnight (America/Nuuk's 23:00 gap);
- a wall time that occurs twice (fall back) fires once, at the first occurrence;
- quiet hours (local "HH:MM" start/end, may wrap midnight) hold a reminder until they end.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from api import localtime

_ONE_DAY = timedelta(days=1)

# The reminders' names for the shared rules (api/localtime.py).
parse_hhmm = localtime.parse_hhmm
occurrences = localtime.occurrences
fire_instant = localtime.local_to_utc
_wall = localtime.wall


def next_fire(
    *,
    at: time,
    zone: ZoneInfo,
    after: datetime,
    days_of_week: Collection[int] | None = None,
    start_date: date | None = None,
    end_date: date | None = None,
    min_date: date | None = None,
) -> tuple[date, datetime] | None:
    """The first (local day, instant) with instant strictly after `after`, or None if none is left.

    `days_of_week` holds ISO weekdays (1 = Monday); None means every day. `start_date`/`end_date`
    bound the local days (inclusive); `min_date` skips days already served (one per local day).
    """
    if days_of_week is not None and not days_of_week:
        return None
    # A day's instant can fall on the next local date (gap after midnight), so start a day early.
    day = after.astimezone(zone).date() - _ONE_DAY
    for bound in (start_date, min_date):
        if bound is not None and day < bound:
            day = bound
    for _ in range(8 + 1):
        if end_date is not None and day > end_date:
            return None
        if days_of_week is None or day.isoweekday() in days_of_week:
            instant = fire_instant(day, at, zone)
            if instant > after:
                return day, instant
        day += _ONE_DAY
    return None  # pragma: no cover - a non-empty weekday set always matches within 9 days


def in_quiet_hours(instant: datetime, zone: ZoneInfo, start: time, end: time) -> bool:
    local = _wall(instant, zone).time()
    if start < end:
        return start <= local < end
    return local >= start or local < end  # wraps midnight (22:00-07:00)


def hold_for_quiet_hours(
    instant: datetime, zone: ZoneInfo, start: time | None, end: time | None
) -> datetime:
    """`instant` itself, or, inside quiet hours, the first instant after they end."""
    if start is None or end is None or start == end:
        return instant
    # When the end falls in a spring-forward gap, the gap's end is the first candidate; but if the
    # open window lies wholly inside the gap (quiet 03:01-03:00 on a day whose 03:00-04:00 is
    # skipped), that candidate is still quiet and the hold goes on to the next day's end. Two
    # passes always settle: a zone skips at most one window a day.
    for _ in range(3):
        if not in_quiet_hours(instant, zone, start, end):
            return instant
        instant = _quiet_end(instant, zone, start, end)
    return instant  # pragma: no cover - see above


def _quiet_end(instant: datetime, zone: ZoneInfo, start: time, end: time) -> datetime:
    local = _wall(instant, zone)
    end_day = local.date()
    if start > end and local.time() >= start:
        end_day += _ONE_DAY
    # The end wall time may occur twice (fall back) or not at all (spring forward).
    for candidate in occurrences(end_day, end, zone):
        if candidate > instant:
            return candidate
    return max(fire_instant(end_day, end, zone), instant)
