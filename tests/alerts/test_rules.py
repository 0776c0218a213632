"""Alert rules: table tests per rule, and the property that a job re-run over a sliding window
raises each episode exactly once (the same keys as one look at the whole history)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.alerts.rules import (
    AlertSettings,
    Window,
    checkin_gaps,
    evaluate,
    missed_doses,
    missed_sessions,
    rising_trends,
    severe_withdrawal,
)
from api.readmodel.rows import (
    CheckinRow,
    CowsRow,
    DoseLog,
    MedicationRow,
    ScheduledDose,
    SessionRow,
    SummaryData,
)

TZ = "Europe/Lisbon"
Z = ZoneInfo(TZ)
MED = uuid.UUID(int=7)
S = AlertSettings()


def at(d: int, h: int = 20, mi: int = 0) -> datetime:
    """Day d of March 2026 (DST starts in Lisbon on the 29th), local time."""
    return datetime(2026, 3, 1, h, mi, tzinfo=Z) + timedelta(days=d - 1)


def window(start_day: int = 1, now: datetime | None = None) -> Window:
    return Window(at(start_day, 0), now or at(40, 23), TZ)


# --- severe withdrawal ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instrument", "total", "fires"),
    [("sows", 20, False), ("sows", 21, True), ("sows-gossop", 30, False)],
)
def test_severe_sows_threshold(instrument: str, total: int, fires: bool) -> None:
    alerts = severe_withdrawal(
        [CheckinRow(at(3), instrument, total)], [], window=window(), settings=S
    )
    assert bool(alerts) is fires


@pytest.mark.parametrize(("total", "fires"), [(24, False), (25, True), (48, True)])
def test_severe_cows_threshold(total: int, fires: bool) -> None:
    assert (
        bool(severe_withdrawal([], [CowsRow(at(3, 10), total)], window=window(), settings=S))
        is fires
    )


def test_severe_is_one_episode_per_instrument_per_local_day() -> None:
    rows = [CheckinRow(at(3, h), "sows", 25) for h in (8, 12, 23)] + [
        CheckinRow(at(4, 1), "sows", 30)
    ]
    alerts = severe_withdrawal(rows, [CowsRow(at(3, 10), 30)], window=window(), settings=S)
    assert [a.episode_key for a in alerts] == [
        "sows:2026-03-03",
        "cows:2026-03-03",
        "sows:2026-03-04",
    ]
    assert alerts[0].triggered_at == at(3, 8)
    assert all(a.category == "symptoms" for a in alerts)


def test_thresholds_are_settings() -> None:
    rows = [CheckinRow(at(3), "sows", 15)]
    assert severe_withdrawal(rows, [], window=window(), settings=AlertSettings(sows_severe=15))


# --- missed doses -----------------------------------------------------------------------------


def doses(pattern: str, start_day: int = 1) -> tuple[list[ScheduledDose], list[DoseLog]]:
    """One 08:00 dose per day: t taken, s skipped, m missed (nothing logged)."""
    slots, logs = [], []
    for i, c in enumerate(pattern):
        when = at(start_day + i, 8)
        slots.append(ScheduledDose(MED, when))
        if c == "t":
            logs.append(DoseLog(MED, "taken", when, when))
        elif c == "s":
            logs.append(DoseLog(MED, "skipped", when, None))
    return slots, logs


def run_missed(pattern: str, w: Window | None = None, first: datetime | None = None) -> list:
    slots, logs = doses(pattern)
    return missed_doses(
        [MedicationRow(MED, "M")],
        slots,
        logs,
        window=w or window(),
        settings=S,
        schedule_starts={MED: first or at(1, 8)},
    )


@pytest.mark.parametrize(
    ("pattern", "keys"),
    [
        ("tmt", 0),
        ("tmmt", 1),
        ("tmmmmt", 1),  # one run, one episode
        ("tmmtmm", 2),
        ("tmsmt", 0),  # a skip ends a run
        ("mmt", 1),  # the medication's first doses: a new run, not a continuing one
    ],
)
def test_missed_dose_runs(pattern: str, keys: int) -> None:
    assert len(run_missed(pattern)) == keys


def test_missed_run_alert_time_and_key() -> None:
    (alert,) = run_missed("tmmm")
    assert alert.triggered_at == at(3, 9)  # the second missed dose's window closed
    assert alert.episode_key.startswith(f"{MED}:") and alert.category == "medications"
    assert "3 consecutive" in alert.detail


def test_run_at_window_start_is_continuing_unless_the_schedule_starts_there() -> None:
    w = Window(at(3, 0), at(40, 23), TZ)
    assert run_missed("tmmmmt", w) == []  # began on day 2, before this window
    assert len(run_missed("tmmmmt", w, first=at(3, 8))) == 1


# --- sessions, gaps, rising -------------------------------------------------------------------


def test_missed_session_is_its_own_episode() -> None:
    sid = uuid.uuid4()
    sessions = [
        SessionRow(sid, "group", "G", at(5, 18), "missed"),
        SessionRow(uuid.uuid4(), "group", "G", at(6, 18), "attended"),
        SessionRow(uuid.uuid4(), "group", "G", at(7, 18), "cancelled"),
    ]
    (alert,) = missed_sessions(sessions, window=window())
    assert alert.episode_key == str(sid) and alert.category == "counseling"


def daily(days: list[int]) -> list[CheckinRow]:
    return [CheckinRow(at(d, 21), "sows", 5) for d in days]


@pytest.mark.parametrize(
    ("days", "now", "keys"),
    [
        (list(range(1, 8)), at(10, 22), ["2026-03-07"]),  # a week daily, then 3 days silent
        (list(range(1, 8)), at(10, 20), []),  # not yet 3 full days
        ([1, 3, 5, 7], at(12), []),  # never daily: no streak to break
        ([*range(1, 8), 12, 13], at(20), ["2026-03-07"]),  # the gap ended; still one episode
        ([*range(1, 8), *range(12, 17)], at(22), ["2026-03-07", "2026-03-16"]),
    ],
)
def test_checkin_gap_after_daily_checkins(days: list[int], now: datetime, keys: list[str]) -> None:
    alerts = checkin_gaps(daily(days), window=Window(at(1, 0), now, TZ), settings=S)
    assert [a.episode_key for a in alerts] == keys


def test_rising_trend_fires_once_per_run_of_rising_days() -> None:
    values = dict.fromkeys(range(1, 21), 5) | {18: 12, 19: 14, 20: 14, 21: 14}
    rows = [CheckinRow(at(d, 21), "sows", v) for d, v in values.items()]
    alerts = rising_trends(rows, window=Window(at(1, 0), at(21, 23), TZ), settings=S)
    assert [a.episode_key for a in alerts] == ["sows:2026-03-19"]  # day 18: (5+5+12)/3 < 1.5 x 5
    assert "mean" in alerts[0].detail


def test_rising_needs_both_ratio_and_delta() -> None:
    # 1 -> 2 is +100% but only one point: below the minimum absolute rise.
    values = dict.fromkeys(range(1, 18), 1) | {18: 2, 19: 2, 20: 2}
    rows = [CheckinRow(at(d, 21), None, None, craving=v) for d, v in values.items()]
    assert rising_trends(rows, window=Window(at(1, 0), at(20, 23), TZ), settings=S) == []
    loose = AlertSettings(rising_min_delta=1)
    assert rising_trends(rows, window=Window(at(1, 0), at(20, 23), TZ), settings=loose)


def test_evaluate_runs_only_the_consented_categories() -> None:
    slots, logs = doses("tmm")
    data = SummaryData(
        checkins=(CheckinRow(at(2), "sows", 40),),
        medications=(MedicationRow(MED, "M"),),
        scheduled_doses=tuple(slots),
        dose_logs=tuple(logs),
        sessions=(SessionRow(uuid.uuid4(), "group", "G", at(2), "missed"),),
    )
    rules = lambda cats: {  # noqa: E731
        a.rule
        for a in evaluate(
            data, window=window(), settings=S, categories=cats, schedule_starts={MED: at(1, 8)}
        )
    }
    assert rules(["counseling"]) == {"missed_session"}
    assert rules(["medications"]) == {"missed_doses"}
    assert rules(["symptoms"]) == {"severe_withdrawal"}
    assert rules([]) == set()


# --- the sliding window: each episode exactly once ---------------------------------------------

LOOKBACK = 28


def sliding_keys(data: SummaryData, days: int, starts: dict) -> set[tuple[str, str]]:
    """The job run every evening at 23:30 over the last LOOKBACK days."""
    keys = set()
    for d in range(1, days + 1):
        now = at(d, 23, 30)
        w = Window(now - timedelta(days=LOOKBACK), now, TZ)
        for a in evaluate(
            data,
            window=w,
            settings=S,
            categories=["symptoms", "medications"],
            schedule_starts=starts,
        ):
            keys.add((a.rule, a.episode_key))
    return keys


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.sampled_from("tttttsmm"), min_size=20, max_size=70),
    st.lists(st.one_of(st.none(), st.integers(0, 40)), min_size=20, max_size=70),
)
def test_sliding_job_raises_each_episode_once(pattern: list[str], sows: list[int | None]) -> None:
    days = min(len(pattern), len(sows))
    slots, logs = doses("".join(pattern[:days]))
    checkins = tuple(
        CheckinRow(at(d + 1, 21), "sows", v) for d, v in enumerate(sows[:days]) if v is not None
    )
    data = SummaryData(
        checkins=checkins,
        medications=(MedicationRow(MED, "M"),),
        scheduled_doses=tuple(slots),
        dose_logs=tuple(logs),
    )
    starts = {MED: at(1, 8)}
    # One look at the whole history, from well before the first row.
    now = at(days, 23, 30)
    whole = {
        (a.rule, a.episode_key)
        for a in evaluate(
            data,
            window=Window(at(1, 0) - timedelta(days=LOOKBACK), now, TZ),
            settings=S,
            categories=["symptoms", "medications"],
            schedule_starts=starts,
        )
    }
    assert sliding_keys(data, days, starts) == whole


def test_same_rows_same_keys() -> None:
    slots, logs = doses("tmmtmmmt")
    data = SummaryData(
        medications=(MedicationRow(MED, "M"),), scheduled_doses=tuple(slots), dose_logs=tuple(logs)
    )
    first = evaluate(
        data,
        window=window(),
        settings=S,
        categories=["medications"],
        schedule_starts={MED: at(1, 8)},
    )
    again = evaluate(
        data,
        window=window(),
        settings=S,
        categories=["medications"],
        schedule_starts={MED: at(1, 8)},
    )
    assert first == again and len(first) == 2


def test_alert_text_is_for_the_clinician_not_advice() -> None:
    data = SummaryData(checkins=tuple(CheckinRow(at(d, 21), "sows", 30) for d in range(1, 8)))
    alerts = evaluate(
        data, window=Window(at(1, 0), at(12), TZ), settings=S, categories=["symptoms"]
    )
    assert alerts
    for a in alerts:
        lowered = a.detail.lower()
        assert not any(w in lowered for w in ("you should", "take ", "increase", "reduce", "stop "))
