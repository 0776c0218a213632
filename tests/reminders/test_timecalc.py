"""Local-time schedules across DST: known transitions, and properties over every zone 2020-2035.

The oracle is brute force and shares no code with timecalc: the reminder for local day D at wall
time T fires at the first UTC minute whose wall-clock reading is at or after D T. That one rule is
the whole policy: a time in a spring-forward gap fires when the gap ends; a time that a fall-back
repeats fires at its first occurrence.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.reminders import timecalc

MINUTE = timedelta(minutes=1)
ZONES = sorted(available_timezones())


def wall(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def oracle(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The first whole UTC minute whose local reading is at or after `day at`."""
    target = datetime.combine(day, at)
    as_utc = target.replace(tzinfo=UTC)
    offsets = [(as_utc + k * timedelta(hours=12)).astimezone(zone).utcoffset() for k in (-2, 0, 2)]
    u = as_utc - max(offsets) - timedelta(hours=3)  # type: ignore[type-var,operator]
    end = as_utc - min(offsets) + timedelta(hours=3)  # type: ignore[type-var,operator]
    assert wall(u, zone) < target
    while u <= end:
        if wall(u, zone) >= target:
            return u
        u += MINUTE
    raise AssertionError("no instant found")  # pragma: no cover


@cache
def transitions(name: str) -> tuple[datetime, ...]:
    """Every UTC offset change of the zone in 2020-2035 (found daily, then to the second)."""
    zone = ZoneInfo(name)
    found = []
    t, end = datetime(2020, 1, 1, tzinfo=UTC), datetime(2036, 1, 1, tzinfo=UTC)
    before = t.astimezone(zone).utcoffset()
    while t < end:
        nxt = t + timedelta(days=1)
        after = nxt.astimezone(zone).utcoffset()
        if after != before:
            lo, hi = t, nxt
            while hi - lo > timedelta(seconds=1):
                mid = lo + timedelta(seconds=(hi - lo).total_seconds() // 2)
                if mid.astimezone(zone).utcoffset() == before:
                    lo = mid
                else:
                    hi = mid
            found.append(hi)
            before = after
        t = nxt
    return tuple(found)


@st.composite
def zone_and_moment(draw: st.DrawFn) -> tuple[ZoneInfo, datetime, time]:
    """A zone, an instant near one of its 2020-2035 transitions (or any day), and a wall time
    often right inside the jump."""
    name = draw(st.sampled_from(ZONES))
    zone = ZoneInfo(name)
    moments = transitions(name)
    if moments and draw(st.booleans() | st.just(True)):
        moment = draw(st.sampled_from(moments))
    else:
        moment = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(days=draw(st.integers(0, 5843)))
    near = wall(moment, zone) + timedelta(minutes=draw(st.integers(-90, 90)))
    uniform = time(draw(st.integers(0, 23)), draw(st.integers(0, 59)))
    at = draw(st.sampled_from([near.time().replace(second=0, microsecond=0), uniform]))
    return zone, moment, at


def run_schedule(
    at: time,
    zone: ZoneInfo,
    start: datetime,
    end: datetime,
    days: frozenset[int] | None = None,
) -> list[tuple[date, datetime]]:
    """What a dispatcher does: fire, then ask for the next one strictly after the fired instant."""
    fired = []
    after = start
    while True:
        found = timecalc.next_fire(at=at, zone=zone, after=after, days_of_week=days)
        assert found is not None
        day, instant = found
        if instant > end:
            return fired
        fired.append((day, instant))
        after = instant


@settings(max_examples=300, deadline=None)
@given(zone_and_moment())
def test_exactly_one_reminder_per_local_day_at_the_right_instant(
    case: tuple[ZoneInfo, datetime, time],
) -> None:
    zone, moment, at = case
    start, end = moment - timedelta(days=3), moment + timedelta(days=3)
    fired = run_schedule(at, zone, start, end)
    days = [d for d, _ in fired]
    # one per local day, no day skipped, none twice
    assert days == [days[0] + timedelta(days=i) for i in range(len(days))]
    assert len(days) >= 5
    instants = [i for _, i in fired]
    assert instants == sorted(set(instants))
    for day, instant in fired:
        assert instant == oracle(day, at, zone), (zone.key, day, at)
    # nothing was owed before the first fire or between the last one and the end
    assert oracle(days[0] - timedelta(days=1), at, zone) <= start
    assert oracle(days[-1] + timedelta(days=1), at, zone) > end


@settings(max_examples=100, deadline=None)
@given(zone_and_moment(), st.frozensets(st.integers(1, 7), min_size=1))
def test_days_of_week_fire_on_those_days_only(
    case: tuple[ZoneInfo, datetime, time], weekdays: frozenset[int]
) -> None:
    zone, moment, at = case
    start, end = moment - timedelta(days=8), moment + timedelta(days=8)
    fired = run_schedule(at, zone, start, end, days=weekdays)
    expected = [
        d
        for d in (wall(start, zone).date() + timedelta(days=i) for i in range(-1, 19))
        if d.isoweekday() in weekdays and start < oracle(d, at, zone) <= end
    ]
    assert [d for d, _ in fired] == expected
    for day, instant in fired:
        assert instant == oracle(day, at, zone)


def _quiet_oracle(instant: datetime, zone: ZoneInfo, start: time, end: time) -> datetime:
    """Minute by minute: a held reminder goes at the first minute that is not quiet, whose
    previous minute was quiet and whose wall clock moved forward: quiet hours end when the clock
    reaches their end, not when a fall-back turns it back out of them for a while."""

    def quiet(u: datetime) -> bool:
        t = wall(u, zone).time()
        return start <= t < end if start < end else (t >= start or t < end)

    if not quiet(instant):
        return instant
    u = instant
    while True:
        nxt = (u + MINUTE).replace(second=0)
        if quiet(u) and not quiet(nxt) and wall(nxt, zone) > wall(u, zone):
            return nxt
        u = nxt


@settings(max_examples=200, deadline=None)
@given(
    zone_and_moment(),
    st.integers(-600, 600),
    st.times().map(lambda t: t.replace(second=0, microsecond=0)),
    st.times().map(lambda t: t.replace(second=0, microsecond=0)),
)
def test_quiet_hours_hold_until_they_end(
    case: tuple[ZoneInfo, datetime, time], shift: int, start: time, end: time
) -> None:
    zone, moment, _ = case
    if start == end:
        return
    instant = (moment + timedelta(minutes=shift)).replace(second=0, microsecond=0)
    held = timecalc.hold_for_quiet_hours(instant, zone, start, end)
    assert held == _quiet_oracle(instant, zone, start, end)


@pytest.mark.parametrize(
    ("zone", "at", "start", "end", "expected"),
    [
        # The open minute (03:00-03:01) lies in the skipped hour: quiet all of that day, so the
        # hold runs to 03:00 the next day, not to the gap's end (04:00, itself quiet).
        (
            ZoneInfo("Asia/Nicosia"),
            datetime(2020, 3, 29, 0, 59, tzinfo=UTC),
            time(3, 1),
            time(3, 0),
            datetime(2020, 3, 30, 0, 0, tzinfo=UTC),
        ),
        # An ordinary night (22:00-03:00) whose end is skipped: released when the gap ends.
        (
            ZoneInfo("America/New_York"),
            datetime(2026, 3, 8, 6, 30, tzinfo=UTC),
            time(22, 0),
            time(2, 30),
            datetime(2026, 3, 8, 7, 0, tzinfo=UTC),
        ),
        # Fall back inside quiet hours (NZ, 03:00 NZDT -> 02:00 NZST): the clock turns back out of
        # 02:45-07:59 for 45 minutes, but the hold lasts until it reaches 07:59.
        (
            ZoneInfo("Pacific/Auckland"),
            datetime(2020, 4, 4, 13, 49, tzinfo=UTC),
            time(2, 45),
            time(7, 59),
            datetime(2020, 4, 4, 19, 59, tzinfo=UTC),
        ),
    ],
)
def test_quiet_hours_across_transitions(
    zone: ZoneInfo, at: datetime, start: time, end: time, expected: datetime
) -> None:
    assert _quiet_oracle(at, zone, start, end) == expected
    assert timecalc.hold_for_quiet_hours(at, zone, start, end) == expected


NY = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("zone", "day", "at", "expected_utc"),
    [
        # spring forward: 02:30 does not exist; fires when the gap ends, 03:00 EDT
        (NY, date(2026, 3, 8), time(2, 30), datetime(2026, 3, 8, 7, 0, tzinfo=UTC)),
        # fall back: 01:30 happens twice; fires at the first (EDT)
        (NY, date(2026, 11, 1), time(1, 30), datetime(2026, 11, 1, 5, 30, tzinfo=UTC)),
        (NY, date(2026, 11, 1), time(8, 0), datetime(2026, 11, 1, 13, 0, tzinfo=UTC)),
        # Lord Howe moves by 30 minutes: 02:15 is in the gap, which ends at 02:30
        (
            ZoneInfo("Australia/Lord_Howe"),
            date(2026, 10, 4),
            time(2, 15),
            datetime(2026, 10, 3, 15, 30, tzinfo=UTC),
        ),
        # Nuuk's gap is 23:00-24:00 (-02 -> -01): the 23:30 reminder fires at 00:00 the next day
        (
            ZoneInfo("America/Nuuk"),
            date(2026, 3, 28),
            time(23, 30),
            datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
        ),
        # Dublin's "winter time" is the negative DST: fall back 02:00 -> 01:00 in October
        (
            ZoneInfo("Europe/Dublin"),
            date(2026, 10, 25),
            time(1, 30),
            datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        ),
    ],
)
def test_known_transitions(zone: ZoneInfo, day: date, at: time, expected_utc: datetime) -> None:
    assert timecalc.fire_instant(day, at, zone) == expected_utc
    assert oracle(day, at, zone) == expected_utc


def test_spring_forward_day_fires_once_then_back_to_normal() -> None:
    start = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)
    fired = run_schedule(time(2, 30), NY, start, start + timedelta(days=4))
    assert [i.isoformat() for _, i in fired] == [
        "2026-03-07T07:30:00+00:00",  # 02:30 EST
        "2026-03-08T07:00:00+00:00",  # gap: 03:00 EDT
        "2026-03-09T06:30:00+00:00",  # 02:30 EDT
        "2026-03-10T06:30:00+00:00",
    ]


def test_bounds_and_min_date() -> None:
    after = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    at = time(9, 0)
    assert timecalc.next_fire(at=at, zone=NY, after=after, end_date=date(2026, 4, 30)) is None
    assert timecalc.next_fire(at=at, zone=NY, after=after, days_of_week=()) is None
    day, _ = timecalc.next_fire(at=at, zone=NY, after=after, start_date=date(2026, 6, 1)) or (
        None,
        None,
    )
    assert day == date(2026, 6, 1)
    # 09:00 on May 1 already passed at 12:00 UTC (08:00 EDT)? No: 08:00 EDT is before 09:00.
    assert timecalc.next_fire(at=at, zone=NY, after=after) == (
        date(2026, 5, 1),
        datetime(2026, 5, 1, 13, 0, tzinfo=UTC),
    )
    # ...unless that local day was already served
    assert timecalc.next_fire(at=at, zone=NY, after=after, min_date=date(2026, 5, 2)) == (
        date(2026, 5, 2),
        datetime(2026, 5, 2, 13, 0, tzinfo=UTC),
    )


def test_quiet_hours_wrapping_midnight() -> None:
    start, end = time(22, 0), time(7, 0)
    evening = datetime(2026, 7, 1, 3, 0, tzinfo=UTC)  # 23:00 EDT June 30
    assert timecalc.hold_for_quiet_hours(evening, NY, start, end) == datetime(
        2026, 7, 1, 11, 0, tzinfo=UTC
    )
    morning = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)  # 08:00 EDT: not quiet
    assert timecalc.hold_for_quiet_hours(morning, NY, start, end) == morning
    assert timecalc.hold_for_quiet_hours(morning, NY, None, None) == morning


@settings(max_examples=300, deadline=None)
@given(zone_and_moment(), st.integers(-2, 2))
def test_reminders_and_dose_schedules_agree_to_the_second(
    case: tuple[ZoneInfo, datetime, time], shift: int
) -> None:
    # Medication reminders fire at dose instants: the schedule's expansion (with its fast path
    # for days without a transition) lands on the instants reminders fire at.
    from api.medications.schedule import expand_doses

    zone, moment, at = case
    day = wall(moment, zone).date() + timedelta(days=shift)
    fire = timecalc.fire_instant(day, at, zone)
    window = (fire - timedelta(days=2), fire + timedelta(days=2))
    assert fire in expand_doses([at.strftime("%H:%M")], None, day, day, zone, *window)
