"""PDC as the pharmacy-quality measure defines it (schedule.proportion_of_days_covered)."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.medications.schedule import proportion_of_days_covered

D0 = date(2026, 6, 1)


def days(*offsets: int) -> list[date]:
    return [D0 + timedelta(days=o) for o in offsets]


def test_days_after_a_regimen_stopped_are_not_covered() -> None:
    # Daily for 5 days, every dose taken, then stopped; the period runs 10 days from the start.
    covered, period = proportion_of_days_covered(
        dose_days=days(0, 1, 2, 3, 4), taken_days=days(0, 1, 2, 3, 4), last_day=D0 + timedelta(9)
    )
    assert (covered, period) == (5, 10)


def test_the_period_starts_at_the_first_dose_day_not_before() -> None:
    covered, period = proportion_of_days_covered(
        dose_days=days(3, 4, 5), taken_days=days(3, 4, 5), last_day=D0 + timedelta(5)
    )
    assert (covered, period) == (3, 3)


def test_a_dose_covers_until_the_next_dose_day() -> None:
    # Monday and Thursday: Monday's dose covers Mon-Wed, Thursday's (missed) nothing.
    covered, period = proportion_of_days_covered(
        dose_days=days(0, 3), taken_days=days(0), last_day=D0 + timedelta(3)
    )
    assert (covered, period) == (3, 4)


def test_nothing_scheduled_is_no_pdc() -> None:
    assert proportion_of_days_covered(dose_days=[], taken_days=[], last_day=D0) == (0, 0)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sets(st.integers(0, 40), min_size=1),
    st.data(),
    st.integers(0, 60),
)
def test_pdc_is_a_proportion(scheduled: set[int], data: st.DataObject, end: int) -> None:
    taken = data.draw(st.sets(st.sampled_from(sorted(scheduled))))
    covered, period = proportion_of_days_covered(
        dose_days=days(*scheduled), taken_days=days(*taken), last_day=D0 + timedelta(end)
    )
    assert 0 <= covered <= period
    if not taken:
        assert covered == 0
