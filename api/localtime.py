"""Local wall-clock time to UTC instants, in IANA zones (zoneinfo only): the one home of the
daylight-saving rules every feature uses (reminders, dose schedules, summary weeks). Pure.

- a wall time that does not exist on a day (spring forward) is taken at the first instant after
  the gap, and belongs to that day even when the gap ends after midnight (America/Nuuk);
- a wall time that occurs twice (fall back) is taken once, at its first occurrence;
- a local day begins at its midnight, or at the end of a gap that swallows it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache

_ONE_SECOND = timedelta(seconds=1)


def parse_hhmm(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def wall(instant: datetime, zone: tzinfo) -> datetime:
    """The naive local wall-clock reading of an instant."""
    return instant.astimezone(zone).replace(tzinfo=None, fold=0)


def occurrences(day: date, at: time, zone: tzinfo) -> list[datetime]:
    """Every UTC instant whose local wall time is `day at`: none (gap), one, or two (fold)."""
    naive = datetime.combine(day, at)
    found = set()
    for fold in (0, 1):
        instant = naive.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if wall(instant, zone) == naive:
            found.add(instant)
    return sorted(found)


def end_of_gap(naive: datetime, zone: tzinfo) -> datetime:
    """The first instant whose wall time is past `naive`, a wall time inside a gap."""
    # PEP 495: for a time in a gap, the two folds use the offsets before and after the jump, so
    # the transition lies between them. Bisect on whole seconds (tzdata transitions are whole).
    a = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    b = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    lo, hi = min(a, b), max(a, b)  # wall(lo) < naive <= wall(hi)
    while hi - lo > _ONE_SECOND:
        mid = lo + timedelta(seconds=int((hi - lo).total_seconds()) // 2)
        if wall(mid, zone) > naive:
            hi = mid
        else:
            lo = mid
    return hi


@lru_cache(maxsize=65536)
def local_to_utc(day: date, at: time, zone: tzinfo) -> datetime:
    """The instant at which wall time `at` on local `day` happens in `zone` (the rules above).

    Pure, so cached: a dispatch batch or a schedule expansion asks for the same few (day, time,
    zone) again and again.
    """
    naive = datetime.combine(day, at)
    # fold=0 is the earlier instant of a repeated wall time (PEP 495).
    instant = naive.replace(tzinfo=zone).astimezone(UTC)
    if wall(instant, zone) == naive:
        return instant
    return end_of_gap(naive, zone)


# Dates are bounded where they come in (api.fields.BoundedDate), but rows stored before that may
# hold 0001-01-01 or 9999-12-31, whose midnight in a zone, or whose next day, does not exist as a
# datetime (OverflowError: a 500 for the account and a crash of every job that read it). Clamped
# to these, a day start is always finite and compares the same with any window near now.
_FIRST_DAY = date(1900, 1, 1)
_LAST_DAY = date(9000, 1, 1)


def local_day_start(day: date, zone: tzinfo) -> datetime:
    """The first instant of local `day` (midnight, or the end of a gap that swallows it)."""
    return local_to_utc(min(max(day, _FIRST_DAY), _LAST_DAY), time(0, 0), zone)


def local_day_end(day: date, zone: tzinfo) -> datetime:
    """The first instant after local `day` (the start of the next day)."""
    return local_day_start(min(day, _LAST_DAY) + timedelta(days=1), zone)
