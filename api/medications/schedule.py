"""Scheduled dose instants from a regimen's local wall-clock times.

Pure functions (no database, no clock): the medications feature, the missed-dose job and the
reminders feature all expand schedules through `expand_doses`, so they agree to the second.

Daylight-saving rules, in the regimen's IANA zone (wall times to instants: api/localtime.py):
- a wall time that does not exist that day (the spring-forward gap) is taken at the first
  instant after the gap (02:30 on a 02:00->03:00 night is taken at 03:00 new time);
- a wall time that occurs twice (fall back) is taken once, at its first occurrence;
- two dose times that land on the same instant that way (02:15 and 02:45 in one gap, or 02:30 in
  the gap and 03:00) are one dose that day, never two at the same instant.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from api.localtime import local_to_utc

if TYPE_CHECKING:
    from api.medications.models import Medication

_ONE_DAY = timedelta(days=1)


def parse_times(times: Sequence[str]) -> list[time]:
    """ "HH:MM" strings to sorted, distinct wall-clock times."""
    return sorted({time.fromisoformat(value) for value in times})


# Positional on purpose: the agreed signature, shared with the reminders feature.
def expand_doses(  # noqa: PLR0917
    times: Sequence[str],
    days_of_week: Collection[int] | None,
    start_date: date,
    end_date: date | None,
    tz: str | tzinfo,
    start: datetime,
    end: datetime,
) -> list[datetime]:
    """Every scheduled dose instant in [start, end), sorted, as aware UTC datetimes.

    `times` are local "HH:MM"; `days_of_week` are ISO weekdays (1 = Monday ... 7), None or empty
    for every day; `start_date`/`end_date` (inclusive, None = open-ended) are local dates in `tz`
    (an IANA name or a tzinfo). `start` and `end` must be aware. Raises ValueError otherwise.
    """
    return sorted(expand_doses_by_day(times, days_of_week, start_date, end_date, tz, start, end))


def expand_doses_by_day(  # noqa: PLR0917
    times: Sequence[str],
    days_of_week: Collection[int] | None,
    start_date: date,
    end_date: date | None,
    tz: str | tzinfo,
    start: datetime,
    end: datetime,
) -> dict[datetime, date]:
    """As expand_doses, as {instant: the local date of the dose} (unsorted)."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be aware datetimes")
    if end <= start or not times:
        return {}
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    walls = parse_times(times)
    days = set(days_of_week) if days_of_week else None
    # One spare local day each side: an instant's local date can sit a day off the UTC window
    # edges, and a wall time in a gap at midnight lands on the next local day.
    day = max(start_date, start.astimezone(zone).date() - _ONE_DAY)
    last = end.astimezone(zone).date() + _ONE_DAY
    if end_date is not None:
        last = min(last, end_date)
    found: dict[datetime, date] = {}
    opening = _midnight_offset(day, zone)
    while day <= last:
        following = _midnight_offset(day + _ONE_DAY, zone)
        if days is None or day.isoweekday() in days:
            # Zones change offset at most once a day: the same offset at this midnight and the
            # next (read with fold=0) is the offset of every wall time of the day; a DST day
            # takes the exact, slower path.
            offset = opening if opening == following else None
            for wall in walls:
                if offset is None:
                    instant = local_to_utc(day, wall, zone)
                else:
                    instant = datetime.combine(day, wall, tzinfo=UTC) - offset
                if start <= instant < end and instant not in found:
                    found[instant] = day
        opening = following
        day += _ONE_DAY
    return found


_MIDNIGHT = time(0, 0)


def _midnight_offset(day: date, zone: tzinfo) -> timedelta | None:
    return datetime.combine(day, _MIDNIGHT, tzinfo=zone).utcoffset()


def regimen_doses(medication: Medication, start: datetime, end: datetime) -> list[datetime]:
    """The scheduled instants of a regimen's current schedule in [start, end), sorted.

    None for an as-needed regimen; only from `schedule_from` (earlier doses were stored when the
    schedule or zone changed) and before `archived_at`; in the regimen's `schedule_timezone`.
    """
    return sorted(regimen_doses_by_day(medication, start, end))


def regimen_doses_by_day(
    medication: Medication, start: datetime, end: datetime
) -> dict[datetime, date]:
    """As regimen_doses, as {instant: local date} (unsorted)."""
    if medication.as_needed:
        return {}
    if medication.schedule_from is not None:
        start = max(start, medication.schedule_from)
    if medication.archived_at is not None:
        end = min(end, medication.archived_at)
    return expand_doses_by_day(
        medication.times,
        medication.days_of_week,
        medication.start_date,
        medication.end_date,
        medication.zone,
        start,
        end,
    )
