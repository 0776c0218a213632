"""Scheduled dose expansion: DST rules by example, and a property over zones and 2020-2035."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.localtime import local_to_utc
from api.medications.schedule import expand_doses

NY = "America/New_York"
DST_ZONES = [
    NY,
    "Europe/London",
    "Europe/Dublin",  # "negative" DST in the tz database
    "Australia/Lord_Howe",  # 30-minute shift
    "America/Santiago",  # transitions at midnight
    "America/Havana",  # transitions at midnight
    "America/St_Johns",
    "Pacific/Chatham",
    "Africa/Casablanca",
    "Asia/Tehran",
    "Asia/Gaza",
    "Australia/Sydney",
    "America/Sao_Paulo",
    "UTC",
]
# Every zone the machine knows, listed once (st.timezone_keys() walks the disk on each draw).
# It includes the "right/" zones, whose offsets count leap seconds: transitions off the minute.
ALL_ZONES = sorted(available_timezones())


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def wide(day: date, before: int = 2, after: int = 3) -> tuple[datetime, datetime]:
    start = datetime.combine(day - timedelta(days=before), time(0), tzinfo=UTC)
    return start, datetime.combine(day + timedelta(days=after), time(0), tzinfo=UTC)


def test_ordinary_day_is_local_wall_time() -> None:
    day = date(2026, 6, 10)
    got = expand_doses(["08:00", "20:00"], None, day, day, NY, *wide(day))
    assert got == [utc(2026, 6, 10, 12, 0), utc(2026, 6, 11, 0, 0)]
    assert all(g.tzinfo is UTC for g in got)


def test_spring_forward_gap_maps_to_the_first_instant_after_the_gap() -> None:
    # 2026-03-08 in New York: 02:00 EST becomes 03:00 EDT (07:00Z).
    day = date(2026, 3, 8)
    got = expand_doses(["02:30", "08:00"], None, day, day, NY, *wide(day))
    assert got == [utc(2026, 3, 8, 7, 0), utc(2026, 3, 8, 12, 0)]


def test_two_times_in_one_gap_are_one_dose() -> None:
    day = date(2026, 3, 8)
    got = expand_doses(["02:15", "02:45", "03:00"], None, day, day, NY, *wide(day))
    assert got == [utc(2026, 3, 8, 7, 0)]


def test_fall_back_repeated_time_occurs_once_at_its_first_occurrence() -> None:
    # 2026-11-01 in New York: 01:30 happens at 05:30Z (EDT) and again at 06:30Z (EST).
    day = date(2026, 11, 1)
    got = expand_doses(["01:30", "09:00"], None, day, day, NY, *wide(day))
    assert got == [utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 14, 0)]


def test_half_hour_shift_lord_howe() -> None:
    # 2026-10-04: 02:00 (+10:30) becomes 02:30 (+11:00), i.e. at 2026-10-03T15:30Z.
    zone = "Australia/Lord_Howe"
    day = date(2026, 10, 4)
    got = expand_doses(["02:10", "02:30", "08:00"], None, day, day, zone, *wide(day))
    assert got == [utc(2026, 10, 3, 15, 30), utc(2026, 10, 3, 21, 0)]


def test_london_gap_and_fold() -> None:
    zone = "Europe/London"
    spring, autumn = date(2026, 3, 29), date(2026, 10, 25)
    assert expand_doses(["01:30"], None, spring, spring, zone, *wide(spring)) == [
        utc(2026, 3, 29, 1, 0)
    ]
    assert expand_doses(["01:30"], None, autumn, autumn, zone, *wide(autumn)) == [
        utc(2026, 10, 25, 0, 30)
    ]


def test_gap_at_midnight_santiago() -> None:
    # 2026-09-06 in Santiago: 00:00 (-04:00) becomes 01:00 (-03:00), at 04:00Z. A 00:30 dose
    # that day is at 04:00Z; the day before and after keep their own offsets.
    zone = "America/Santiago"
    first, last = date(2026, 9, 5), date(2026, 9, 6)
    got = expand_doses(["00:30", "23:30"], None, first, last, zone, *wide(first))
    assert got == [
        utc(2026, 9, 5, 4, 30),  # 09-05 00:30 -04:00
        utc(2026, 9, 6, 3, 30),  # 09-05 23:30 -04:00
        utc(2026, 9, 6, 4, 0),  # 09-06 00:30 does not exist: 01:00 -03:00
        utc(2026, 9, 7, 2, 30),  # 09-06 23:30 -03:00
    ]


def test_days_of_week_dates_and_half_open_window() -> None:
    # 2026-06-01 is a Monday.
    start, end = utc(2026, 6, 1, 12, 0), utc(2026, 6, 15, 12, 0)
    got = expand_doses(["08:00"], [1, 3], date(2026, 6, 2), date(2026, 6, 10), NY, start, end)
    assert got == [utc(2026, 6, 3, 12, 0), utc(2026, 6, 8, 12, 0), utc(2026, 6, 10, 12, 0)]
    # [start, end): a dose exactly at `end` is out, one exactly at `start` is in.
    assert expand_doses(["08:00"], None, date(2026, 6, 1), None, NY, start, end)[0] == start
    assert utc(2026, 6, 15, 12, 0) not in expand_doses(
        ["08:00"], None, date(2026, 6, 1), None, NY, start, end
    )


def test_empty_and_refused_inputs() -> None:
    day = date(2026, 6, 1)
    assert expand_doses([], None, day, None, NY, *wide(day)) == []
    start, end = wide(day)
    assert expand_doses(["08:00"], None, day, None, NY, end, start) == []
    with pytest.raises(ValueError, match="aware"):
        expand_doses(["08:00"], None, day, None, NY, start.replace(tzinfo=None), end)


# The property ------------------------------------------------------------------------------


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def oracle(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """Brute force, independent of the code under test: every instant whose wall clock reads
    `day wall` is one of naive - offset for the offsets the zone uses around then; the earliest
    wins; if there is none (a gap), the first second at which the clock reads later."""
    naive = datetime.combine(day, wall)
    base = naive.replace(tzinfo=UTC)
    offsets = {
        (base + timedelta(minutes=30 * k)).astimezone(zone).utcoffset() for k in range(-60, 61)
    }
    candidates = sorted(base - off for off in offsets if off is not None)
    exact = [c for c in candidates if _wall(c, zone) == naive]
    if exact:
        return exact[0]
    instant = candidates[0]
    while _wall(instant, zone) <= naive:
        instant += timedelta(minutes=1)
        assert instant <= candidates[-1] + timedelta(minutes=1), "no instant found"
    second = timedelta(seconds=1)
    while _wall(instant - second, zone) > naive:
        instant -= second
    return instant


@lru_cache(maxsize=512)
def transition_days(key: str, year: int) -> tuple[date, ...]:
    zone = ZoneInfo(key)
    day, found = date(year, 1, 1), []
    previous = datetime.combine(day, time(12), tzinfo=UTC).astimezone(zone).utcoffset()
    while day.year == year:
        day += timedelta(days=1)
        offset = datetime.combine(day, time(12), tzinfo=UTC).astimezone(zone).utcoffset()
        if offset != previous:
            found.append(day - timedelta(days=1))
        previous = offset
    return tuple(found)


INTERESTING_MINUTES = [0, 15, 30, 45, 60, 90, 120, 135, 150, 165, 180, 210, 1380, 1410, 1425, 1439]


@st.composite
def schedules(draw: st.DrawFn) -> tuple[str, date, int, list[str], list[int] | None]:
    key = draw(st.one_of(st.sampled_from(DST_ZONES), st.sampled_from(ALL_ZONES)))
    year = draw(st.integers(2020, 2035))
    transitions = transition_days(key, year)
    if transitions and draw(st.booleans()):
        first = draw(st.sampled_from(transitions)) - timedelta(days=draw(st.integers(0, 1)))
    else:
        first = date(year, 1, 1) + timedelta(days=draw(st.integers(0, 364)))
    n_days = draw(st.integers(1, 4))
    minutes = draw(
        st.lists(
            st.one_of(st.sampled_from(INTERESTING_MINUTES), st.integers(0, 1439)),
            min_size=1,
            max_size=5,
            unique=True,
        )
    )
    times = [f"{m // 60:02d}:{m % 60:02d}" for m in minutes]
    days = draw(st.none() | st.sets(st.integers(1, 7), min_size=1).map(sorted))
    return key, first, n_days, times, days


@settings(max_examples=300, deadline=None)
@given(schedules())
def test_one_dose_per_time_per_local_day_at_the_right_instant(
    case: tuple[str, date, int, list[str], list[int] | None],
) -> None:
    key, first, n_days, times, days = case
    zone = ZoneInfo(key)
    last = first + timedelta(days=n_days - 1)
    start, end = wide(first, before=2, after=n_days + 2)
    got = expand_doses(times, days, first, last, key, start, end)

    local_days = [first + timedelta(days=i) for i in range(n_days)]
    walls = [time.fromisoformat(t) for t in times]
    expected = {
        (day, wall): oracle(day, wall, zone)
        for day in local_days
        if days is None or day.isoweekday() in days
        for wall in walls
    }
    assert got == sorted(set(expected.values()))
    assert all(g.tzinfo is UTC for g in got)
    for (day, wall), instant in expected.items():
        naive = datetime.combine(day, wall)
        if _wall(instant, zone) == naive:
            # The wall time exists: the dose is at it, once, at its first occurrence.
            assert [g for g in got if _wall(g, zone) == naive] == [instant]
        else:
            # A gap: the dose is at the transition (the clock just before read earlier).
            assert _wall(instant - timedelta(seconds=1), zone) < naive < _wall(instant, zone)
        assert local_to_utc(day, wall, zone) == instant


@settings(max_examples=100, deadline=None)
@given(schedules(), st.integers(0, 5 * 24 * 60), st.integers(1, 5 * 24 * 60))
def test_any_window_is_the_matching_slice(
    case: tuple[str, date, int, list[str], list[int] | None], offset: int, length: int
) -> None:
    key, first, n_days, times, days = case
    last = first + timedelta(days=n_days - 1)
    full = expand_doses(times, days, first, last, key, *wide(first, before=2, after=n_days + 2))
    lo = datetime.combine(first - timedelta(days=1), time(0), tzinfo=UTC) + timedelta(
        minutes=offset
    )
    hi = lo + timedelta(minutes=length)
    assert expand_doses(times, days, first, last, key, lo, hi) == [f for f in full if lo <= f < hi]
