"""The summary's figures: table tests for the definitions, properties for the invariants."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.readmodel.rows import (
    CheckinRow,
    DoseLog,
    MedicationRow,
    Period,
    ScheduledDose,
    SessionRow,
    SummaryData,
)
from api.summaries.compute import (
    CATEGORIES,
    SummarySettings,
    build_summary,
    compute_sections,
    medications_section,
    trend,
)

NY = ZoneInfo("America/New_York")
MED = uuid.UUID(int=1)


def at(y: int, m: int, d: int, h: int = 12, mi: int = 0, *, tz: ZoneInfo = NY) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=tz)


def period(start: date, days: int, tz: str = "America/New_York") -> Period:
    zone = ZoneInfo(tz)
    first = datetime.combine(start, datetime.min.time(), tzinfo=zone)
    last = datetime.combine(start + timedelta(days=days), datetime.min.time(), tzinfo=zone)
    return Period(first, last, tz)


# --- periods and local days ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "days", "expected"),
    [
        (date(2026, 3, 2), 7, 7),  # spring forward inside (a 23-hour Sunday)
        (date(2026, 10, 26), 7, 7),  # fall back inside (a 25-hour Sunday)
        (date(2026, 1, 1), 366, 366),
    ],
)
def test_a_local_week_is_seven_days_across_dst(start: date, days: int, expected: int) -> None:
    assert len(period(start, days).days) == expected


def test_a_period_reads_days_in_the_patients_zone() -> None:
    # 02:00 UTC on the 10th is still the 9th in New York.
    p = Period(
        datetime(2026, 6, 10, 2, tzinfo=UTC),
        datetime(2026, 6, 11, 2, tzinfo=UTC),
        "America/New_York",
    )
    assert [d.isoformat() for d in p.days] == ["2026-06-09", "2026-06-10"]


def test_naive_or_empty_periods_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        Period(datetime(2026, 1, 1), datetime(2026, 1, 2), "UTC")  # noqa: DTZ001
    with pytest.raises(ValueError, match="after"):
        Period(at(2026, 1, 2), at(2026, 1, 1), "UTC")


# --- trends ----------------------------------------------------------------------------------


def test_trend_daily_min_mean_max_and_week_change() -> None:
    p = period(date(2026, 2, 2), 14)
    points = [
        (at(2026, 2, 2, 8), 10.0),
        (at(2026, 2, 2, 20), 4.0),
        (at(2026, 2, 3, 9), 7.0),
        (at(2026, 2, 14, 9), 12.0),
        (at(2026, 2, 16, 9), 99.0),  # after the period: not counted
    ]
    t = trend(points, p)
    assert t["daily"][0] == {"date": "2026-02-02", "n": 2, "min": 4, "mean": 7.0, "max": 10}
    assert (t["n"], t["days_with_data"], t["min"], t["max"]) == (4, 3, 4, 12)
    assert t["first_week_mean"] == 7.0 and t["last_week_mean"] == 12.0 and t["change"] == 5.0


def test_no_week_change_under_two_weeks() -> None:
    t = trend([(at(2026, 2, 2), 3.0)], period(date(2026, 2, 2), 13))
    assert t["change"] is None and t["first_week_mean"] is None


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 14 * 24 * 60 - 1), st.integers(0, 64)), min_size=0, max_size=60
    ),
    st.sampled_from(["UTC", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]),
)
def test_trend_invariants(raw: list[tuple[int, int]], tz: str) -> None:
    p = period(date(2026, 3, 23), 14, tz)
    points = [(p.start + timedelta(minutes=m), float(v)) for m, v in raw]
    t = trend(points, p)
    assert t["n"] == len(points) == sum(d["n"] for d in t["daily"])
    assert t["days_with_data"] == len(t["daily"]) <= len(p.days)
    for d in t["daily"]:
        assert d["min"] <= d["mean"] <= d["max"]
        assert date.fromisoformat(d["date"]) in p.days
    if points:
        assert t["min"] <= t["mean"] <= t["max"]


# --- doses -----------------------------------------------------------------------------------


def meds(slots: list[datetime], logs: list[DoseLog], now: datetime, window: int = 60) -> dict:
    data = SummaryData(
        medications=(MedicationRow(MED, "M", 1, "mg"),),
        scheduled_doses=tuple(ScheduledDose(MED, s) for s in slots),
        dose_logs=tuple(logs),
    )
    p = period(date(2026, 5, 4), 7)
    return medications_section(
        data, p, now=now, settings=SummarySettings(on_time_window_minutes=window)
    )


@pytest.mark.parametrize(
    ("delay", "window", "on_time"),
    [(0, 60, 1), (60, 60, 1), (-60, 60, 1), (61, 60, 0), (-61, 60, 0), (30, 15, 0)],
)
def test_on_time_window_is_inclusive_both_sides(delay: int, window: int, on_time: int) -> None:
    slot = at(2026, 5, 4, 8)
    log = DoseLog(MED, "taken", slot, slot + timedelta(minutes=delay))
    m = meds([slot], [log], now=at(2026, 5, 11), window=window)["medications"][0]
    assert (m["taken"], m["taken_on_time"], m["dose_adherence"]) == (1, on_time, 1.0)


def test_missed_pending_skipped_and_runs() -> None:
    slots = [
        at(2026, 5, d, 8) for d in range(4, 11)
    ]  # 7 daily doses, the last at 08:00 on the 10th
    logs = [
        DoseLog(MED, "taken", slots[0], slots[0]),
        DoseLog(MED, "skipped", slots[3], None),
        DoseLog(MED, "taken", slots[5], slots[5] + timedelta(hours=3)),
    ]
    now = at(2026, 5, 10, 8, 30)  # the last dose's window is still open
    m = meds(slots, logs, now)["medications"][0]
    assert m["scheduled"] == 6 and m["pending"] == 1
    assert (m["taken"], m["taken_on_time"], m["skipped"], m["missed"]) == (2, 1, 1, 3)
    assert m["longest_missed_run"] == 2  # the 5th+6th; the skip on the 7th ends the run
    assert m["dose_adherence"] == round(2 / 6, 4)
    assert m["pdc"] == round(2 / 6, 4)
    assert len(m["missed_doses"]) == 3


def test_pdc_counts_a_day_once_whatever_the_doses_that_day() -> None:
    day1 = [at(2026, 5, 4, h) for h in (8, 14, 20)]
    day2 = [at(2026, 5, 5, h) for h in (8, 14, 20)]
    logs = [DoseLog(MED, "taken", day1[0], day1[0]), DoseLog(MED, "taken", day1[1], day1[1])]
    m = meds(day1 + day2, logs, now=at(2026, 5, 11))["medications"][0]
    assert m["days_scheduled"] == 2 and m["days_covered"] == 1 and m["pdc"] == 0.5
    assert m["dose_adherence"] == round(2 / 6, 4)
    assert m["longest_missed_run"] == 4


def test_as_needed_doses_have_no_ratios() -> None:
    data = SummaryData(
        medications=(MedicationRow(MED, "PRN", 400, "mg", as_needed=True),),
        dose_logs=(DoseLog(MED, "taken", None, at(2026, 5, 5, 13)),),
    )
    section = medications_section(
        data, period(date(2026, 5, 4), 7), now=at(2026, 5, 11), settings=SummarySettings()
    )
    m = section["medications"][0]
    assert (m["scheduled"], m["taken_unscheduled"], m["dose_adherence"], m["pdc"]) == (
        0,
        1,
        None,
        None,
    )
    assert section["overall"]["dose_adherence"] is None


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.sampled_from(["on_time", "late", "skipped", "none"]), min_size=0, max_size=40),
    st.integers(0, 40),
)
def test_dose_counts_add_up(statuses: list[str], now_index: int) -> None:
    start = at(2026, 5, 4, 6)
    slots = [start + timedelta(hours=4 * i) for i in range(len(statuses))]
    logs = []
    for slot, status in zip(slots, statuses, strict=True):
        if status == "skipped":
            logs.append(DoseLog(MED, "skipped", slot, None))
        elif status != "none":
            delay = 10 if status == "on_time" else 180
            logs.append(DoseLog(MED, "taken", slot, slot + timedelta(minutes=delay)))
    now = start + timedelta(hours=4 * now_index, minutes=30)
    o = meds(slots, logs, now)["overall"]
    assert o["taken"] + o["skipped"] + o["missed"] == o["scheduled"]
    assert o["taken_on_time"] <= o["taken"]
    assert o["longest_missed_run"] <= o["missed"]
    assert o["days_covered"] <= o["days_scheduled"]
    for ratio in (o["dose_adherence"], o["pdc"]):
        assert ratio is None or 0 <= ratio <= 1
    assert o["pending"] <= 1  # only a dose whose window is still open


# --- counseling and consent ------------------------------------------------------------------


def test_attendance_rate_ignores_cancelled_and_rescheduled() -> None:
    statuses = ["attended", "attended", "missed", "cancelled", "rescheduled", "scheduled"]
    sessions = tuple(
        SessionRow(uuid.uuid4(), "group", "G", at(2026, 5, 4 + i, 18), s)
        for i, s in enumerate(statuses)
    )
    p = period(date(2026, 5, 4), 7)
    sections = compute_sections(
        SummaryData(sessions=sessions),
        period=p,
        categories=["counseling"],
        now=at(2026, 5, 11),
        settings=SummarySettings(),
    )
    c = sections["counseling"]
    assert c["attendance_rate"] == round(2 / 3, 4)
    assert c["counts"] == {
        "scheduled": 1,
        "attended": 2,
        "missed": 1,
        "cancelled": 1,
        "rescheduled": 1,
    }
    assert len(c["missed_sessions"]) == 1


@settings(max_examples=30, deadline=None)
@given(st.sets(st.sampled_from(CATEGORIES)))
def test_only_consented_categories_appear(categories: set[str]) -> None:
    checkin = CheckinRow(at(2026, 5, 5), "sows", 30, {"nausea": 9}, 7, 4.0)
    data = SummaryData(
        checkins=(checkin,),
        medications=(MedicationRow(MED, "SecretMed", 1, "mg"),),
        scheduled_doses=(ScheduledDose(MED, at(2026, 5, 5, 8)),),
        sessions=(SessionRow(uuid.uuid4(), "group", "SecretGroup", at(2026, 5, 6), "missed"),),
    )
    doc = build_summary(
        data,
        patient={"id": "p", "display_name": "P"},
        period=period(date(2026, 5, 4), 7),
        consent={"id": "c", "categories": sorted(categories)},
        generated_at=at(2026, 5, 11),
        now=at(2026, 5, 11),
        notice="N",
        settings=SummarySettings(),
    )
    for section in doc["sections"].values():
        if section.get("category") in categories or "categories" in section:
            assert section["status"] == "included"
        else:
            assert section == {
                "status": "withheld",
                "category": section["category"],
                "reason": section["reason"],
            }
    text = str(doc)
    assert ("SecretMed" in text) == ("medications" in categories)
    assert ("SecretGroup" in text) == ("counseling" in categories)
    assert ("nausea" in text) == ("symptoms" in categories)


def test_unknown_category_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown"):
        compute_sections(
            SummaryData(),
            period=period(date(2026, 5, 4), 7),
            categories=["notes"],
            now=at(2026, 5, 11),
            settings=SummarySettings(),
        )


def test_a_stored_missed_row_counts_as_missed_not_as_an_answer() -> None:
    slots = [at(2026, 5, 4, 8), at(2026, 5, 5, 8)]
    logs = [DoseLog(MED, "missed", slots[0], None), DoseLog(MED, "taken", slots[1], slots[1])]
    m = meds(slots, logs, now=at(2026, 5, 11))["medications"][0]
    assert (m["scheduled"], m["missed"], m["skipped"], m["taken"]) == (2, 1, 0, 1)


def test_a_category_whose_consent_window_starts_later_reads_only_that_window() -> None:
    p = period(date(2026, 5, 4), 7)
    later = Period(at(2026, 5, 7, 0), p.end, p.timezone)
    checkins = tuple(CheckinRow(at(2026, 5, d), "sows", 10) for d in range(4, 11))
    sessions = (SessionRow(uuid.uuid4(), "group", "G", at(2026, 5, 5), "missed"),)
    sections = compute_sections(
        SummaryData(checkins=checkins, sessions=sessions),
        period=p,
        categories=["symptoms", "counseling"],
        now=at(2026, 5, 11),
        settings=SummarySettings(),
        category_periods={"symptoms": later, "counseling": None},
    )
    assert sections["checkins"]["count"] == 4 and sections["checkins"]["days_in_period"] == 4
    assert sections["checkins"]["data_window"]["from"].startswith("2026-05-07")
    assert sections["counseling"]["status"] == "withheld"
    assert "after this period" in sections["counseling"]["reason"]
    assert sections["alerts"]["categories"] == ["symptoms"]
