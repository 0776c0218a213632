"""A seeded demo patient: a realistic 6-week buprenorphine taper, as plain rows.

Deterministic for a seed. It drives the summary's acceptance test (every number recomputed from
these rows by an independent path), the screenshots and the benchmark's data. docs/summaries.md
describes the story the rows tell.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from api.readmodel.rows import (
    CheckinRow,
    CowsRow,
    DoseLog,
    MedicationRow,
    ScheduledDose,
    SessionRow,
    SummaryData,
)

DEMO_START = date(2026, 10, 5)  # a Monday; US daylight saving time ends inside the taper
DEMO_TIMEZONE = "America/Chicago"
DEMO_DAYS = 42
SOWS_ITEMS = 16
GOSSOP_ITEMS = 10


@dataclass(frozen=True)
class DemoMedication:
    row: MedicationRow
    times: tuple[str, ...]  # local "HH:MM"
    start_date: date
    end_date: date | None  # inclusive


@dataclass(frozen=True)
class DemoSession:
    row: SessionRow
    duration_minutes: int


@dataclass
class DemoPatient:
    display_name: str
    timezone: str
    start: datetime  # local midnight of the first day, aware
    end: datetime  # local midnight after the last day, aware
    now: datetime
    medications: list[DemoMedication] = field(default_factory=list)
    checkins: list[CheckinRow] = field(default_factory=list)
    cows: list[CowsRow] = field(default_factory=list)
    scheduled_doses: list[ScheduledDose] = field(default_factory=list)
    dose_logs: list[DoseLog] = field(default_factory=list)
    sessions: list[DemoSession] = field(default_factory=list)

    def data(self) -> SummaryData:
        return SummaryData(
            checkins=tuple(self.checkins),
            cows=tuple(self.cows),
            medications=tuple(m.row for m in self.medications),
            scheduled_doses=tuple(self.scheduled_doses),
            dose_logs=tuple(self.dose_logs),
            sessions=tuple(s.row for s in self.sessions),
        )


def cows_band(total: int) -> str | None:
    if total > 36:
        return "severe"
    if total >= 25:
        return "moderately_severe"
    if total >= 13:
        return "moderate"
    if total >= 5:
        return "mild"
    return None


def split_total(total: int, items: int, top: int, rng: random.Random) -> list[int]:
    """Answers (each 0..top) summing to `total`: how a scored instrument could have been filled."""
    if not 0 <= total <= items * top:
        raise ValueError("total out of range")
    answers = [0] * items
    for _ in range(total):
        i = rng.choice([k for k in range(items) if answers[k] < top])
        answers[i] += 1
    return answers


def _withdrawal_level(day: int) -> float:
    """Expected SOWS total on a taper day: each dose step raises it for a few days, and the
    later (larger relative) steps raise it more; it settles as the body adapts."""
    level = 5.0
    for step_day, peak in ((14, 7.0), (28, 13.0), (35, 17.0)):
        since = day - step_day
        if since >= 0:
            # Rises for 2 days after the step, then decays.
            shape = min(since, 2) / 2 if since < 2 else 0.72 ** (since - 2)
            level += peak * shape
    return level


def _at(day: date, hhmm: str, tz: ZoneInfo) -> datetime:
    hour, minute = (int(x) for x in hhmm.split(":"))
    return datetime.combine(day, time(hour, minute), tzinfo=tz)


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def generate_demo(
    *,
    seed: int = 6,
    start: date = DEMO_START,
    timezone: str = DEMO_TIMEZONE,
    lead_in_weeks: int = 0,
) -> DemoPatient:
    """The taper patient; `lead_in_weeks` of stable 8 mg maintenance come before the taper
    (the benchmark's 90 days of data)."""
    rng = random.Random(seed)
    tz = ZoneInfo(timezone)
    days = [start + timedelta(days=i) for i in range(DEMO_DAYS + 7 * lead_in_weeks)]
    lead = 7 * lead_in_weeks
    patient = DemoPatient(
        display_name="Demo Patient (taper)",
        timezone=timezone,
        start=datetime.combine(days[0], time(0), tzinfo=tz),
        end=datetime.combine(days[-1] + timedelta(days=1), time(0), tzinfo=tz),
        # Generated "the next morning": every dose window of the period has closed.
        now=datetime.combine(days[-1] + timedelta(days=1), time(9, 30), tzinfo=tz),
    )
    _medications(patient, days, lead, tz, rng)
    _checkins(patient, days, lead, tz, rng)
    _cows(patient, days, lead, tz, rng)
    _sessions(patient, days, lead, tz, rng)
    return patient


def _medications(
    patient: DemoPatient, days: list[date], lead: int, tz: ZoneInfo, rng: random.Random
) -> None:
    # The buprenorphine/naloxone taper: 8 mg, 4 mg, 2 mg, 1 mg, each step a new regimen entry
    # (a medication is never edited in place; the history keeps each step).
    steps = [(-lead, 13, 8.0), (14, 27, 4.0), (28, 34, 2.0), (35, 41, 1.0)]
    regimens: list[tuple[DemoMedication, float, float]] = []  # (medication, p_taken, p_skipped)
    for first, last, mg in steps:
        bup = MedicationRow(
            id=_uuid(rng), name="Buprenorphine/naloxone", dose=mg, unit="mg", as_needed=False
        )
        medication = DemoMedication(bup, ("08:00",), days[lead + first], days[lead + last])
        regimens.append((medication, 0.94, 0.02))
    # Lofexidine for withdrawal symptoms over the last two weeks (at most 14 days).
    lofexidine = MedicationRow(
        id=_uuid(rng), name="Lofexidine", dose=0.18, unit="mg", as_needed=False
    )
    regimens.append(
        (
            DemoMedication(
                lofexidine, ("08:00", "13:00", "19:00"), days[lead + 28], days[lead + 41]
            ),
            0.82,
            0.06,
        )
    )
    ibuprofen = MedicationRow(id=_uuid(rng), name="Ibuprofen", dose=400, unit="mg", as_needed=True)
    patient.medications = [m for m, _, _ in regimens] + [
        DemoMedication(ibuprofen, (), days[0], None)
    ]
    # A weekend with two missed doses in a row (an alert episode) on the 4 mg step.
    step = regimens[1][0].row.id
    forced_missed = {(step, days[lead + 19]), (step, days[lead + 20])}
    for med, p_taken, p_skipped in regimens:
        for day in days:
            if not med.start_date <= day <= (med.end_date or day):
                continue
            for hhmm in med.times:
                when = _at(day, hhmm, tz)
                patient.scheduled_doses.append(ScheduledDose(med.row.id, when))
                roll = rng.random()
                if (med.row.id, day) in forced_missed or roll >= p_taken + p_skipped:
                    continue  # missed: nothing logged
                if roll >= p_taken:
                    patient.dose_logs.append(DoseLog(med.row.id, "skipped", when, None))
                    continue
                # Mostly close to the scheduled time; now and then well after it.
                late = rng.random() < 0.12
                delay = rng.randint(70, 240) if late else rng.randint(-25, 45)
                patient.dose_logs.append(
                    DoseLog(med.row.id, "taken", when, when + timedelta(minutes=delay))
                )
    for day in days:
        if _withdrawal_level(days.index(day) - lead) > 12 and rng.random() < 0.5:
            taken = _at(day, "12:30", tz) + timedelta(minutes=rng.randint(0, 300))
            patient.dose_logs.append(DoseLog(ibuprofen.id, "taken", None, taken))


def _checkins(
    patient: DemoPatient, days: list[date], lead: int, tz: ZoneInfo, rng: random.Random
) -> None:
    # Daily evening check-ins, a few days forgotten, and one 4-day silence in week 4 (after a
    # week of daily check-ins: an alert episode).
    silent = {days[lead + i] for i in (23, 24, 25, 26)}
    forgotten = {days[i] for i in rng.sample(range(4, lead + 15), 2 + lead // 14)}
    names = ("anxiety", "insomnia", "muscle_aches", "restlessness", "nausea", "diarrhea")
    for i, day in enumerate(days):
        if day in silent or day in forgotten:
            continue
        level = _withdrawal_level(i - lead)
        when = _at(day, "20:30", tz) + timedelta(minutes=rng.randint(-40, 80))
        total = max(0, min(64, round(rng.gauss(level, 2.2))))
        symptoms = {
            name: max(0, min(10, round(rng.gauss(level / 3.2 + bias, 1.1))))
            for name, bias in zip(names, (1.5, 1.0, 0.6, 0.3, -0.4, -1.2), strict=True)
            if rng.random() < 0.85
        }
        patient.checkins.append(
            CheckinRow(
                recorded_at=when,
                instrument="sows",
                total=total,
                symptoms=symptoms,
                craving=max(0, min(10, round(rng.gauss(2 + level / 4, 1.2)))),
                sleep_hours=round(max(2.5, min(9.5, rng.gauss(7.4 - level / 8, 0.6))) * 2) / 2,
            )
        )
        if day.isoweekday() == 7:  # Sundays, the short scale too, for the trial-style endpoint
            gossop = max(0, min(30, round(rng.gauss(level * 0.45, 1.5))))
            patient.checkins.append(
                CheckinRow(
                    recorded_at=when + timedelta(minutes=5), instrument="sows-gossop", total=gossop
                )
            )
        if rng.random() < 0.15:  # a morning check-in with craving only
            patient.checkins.append(
                CheckinRow(
                    recorded_at=_at(day, "07:45", tz),
                    craving=max(0, min(10, round(rng.gauss(1.5 + level / 4, 1.2)))),
                )
            )


def _cows(
    patient: DemoPatient, days: list[date], lead: int, tz: ZoneInfo, rng: random.Random
) -> None:
    # Clinic visits: intake, each taper step, the peak of the hardest step, and the last day.
    for i, total in ((0, 3), (14, 8), (29, 14), (37, 26), (41, 11)):
        when = _at(days[lead + i], "10:15", tz) + timedelta(minutes=rng.randint(0, 40))
        patient.cows.append(CowsRow(when, total, cows_band(total)))


def _sessions(
    patient: DemoPatient, days: list[date], lead: int, tz: ZoneInfo, rng: random.Random
) -> None:
    attendance = {
        ("individual", 2): "missed",
        ("group", 3): "cancelled",
        ("individual", 4): "rescheduled",
        ("group", 5): "missed",
    }
    for week in range(len(days) // 7):
        for kind, weekday, hhmm, title, minutes in (
            ("individual", 2, "15:00", "Counseling with J. Rivera", 50),
            ("group", 4, "18:00", "Recovery group", 90),
        ):
            day = days[week * 7 + weekday - 1]
            status = attendance.get((kind, week - lead // 7), "attended")
            row = SessionRow(_uuid(rng), kind, title, _at(day, hhmm, tz), status)
            patient.sessions.append(DemoSession(row, minutes))
