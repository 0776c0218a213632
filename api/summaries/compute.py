"""The clinician summary as pure functions over plain rows: no database, no Flask, no clock.

Everything here takes the rows of one patient for one period (the read model, api/readmodel)
and returns plain dicts ready for JSON. Days are the patient's local calendar days (IANA zone),
so a summary reads the way the patient lived the week, DST included.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from api.readmodel.rows import (
    AlertRow,
    CheckinRow,
    CowsRow,
    MedicationRow,
    Period,
    SessionRow,
    SummaryData,
    resolve_doses,
)

CATEGORIES = ("symptoms", "medications", "counseling")
INSTRUMENT_SCALES = {"sows": (0, 64), "sows-gossop": (0, 30)}
SYMPTOM_NAMES = (
    "nausea",
    "vomiting",
    "diarrhea",
    "muscle_aches",
    "restlessness",
    "anxiety",
    "insomnia",
    "low_mood",
)
SESSION_STATUSES = ("scheduled", "attended", "missed", "cancelled", "rescheduled")
# Which consent category a section (and an alert rule) belongs to.
SECTION_CATEGORY = {
    "checkins": "symptoms",
    "withdrawal": "symptoms",
    "symptoms": "symptoms",
    "craving": "symptoms",
    "sleep": "symptoms",
    "cows": "symptoms",
    "medications": "medications",
    "counseling": "counseling",
}
WITHHELD_REASON = "Withheld: the consent this summary was made under does not cover '{category}'."
OUTSIDE_WINDOW_REASON = (
    "Withheld: the consent covers '{category}' only for data recorded after this period."
)


@dataclass(frozen=True)
class SummarySettings:
    on_time_window_minutes: int = 60
    top_symptoms: int = 5


# --- figures --------------------------------------------------------------------------------

DEFINITIONS: dict[str, str] = {
    "period": "The half-open interval [from, to); days are the patient's local calendar days "
    "in their time zone.",
    "completeness": "Local days with at least one check-in divided by local days in the period.",
    "daily_trend": "Per local day with data: the number of values and their minimum, mean and "
    "maximum.",
    "week_change": "Mean of the values recorded in the last 7 local days of the period minus the "
    "mean of those in the first 7; given only when the period spans at least 14 local days.",
    "instrument_totals": "SOWS (Handelsman, 16 items, 0-64) and SOWS-Gossop (10 items, 0-30) are "
    "different scales; their totals are reported separately and never combined.",
    "top_symptoms": "Named symptoms (0-10) ranked by their mean rating over the check-ins that "
    "rated them; ties by name.",
    "craving": "Craving rated 0-10 (0 none, 10 worst imaginable), per check-in.",
    "sleep": "Hours slept as reported at a check-in (0-24).",
    "cows": "Clinical Opiate Withdrawal Scale assessments recorded by a clinician (0-48; bands "
    "5-12 mild, 13-24 moderate, 25-36 moderately severe, more than 36 severe).",
    "settled_dose": "A scheduled dose is settled once it is logged or its on-time window has "
    "closed; doses whose window is still open are counted as pending, outside every ratio.",
    "on_time": "A taken dose is on time when taken within on_time_window_minutes of its "
    "scheduled time, before or after.",
    "missed_dose": "A scheduled dose with no log (taken or skipped) once its on-time window has "
    "closed. A skipped dose is reported by the patient and is not missed.",
    "dose_adherence": "Scheduled doses taken divided by settled scheduled doses; null when none "
    "was scheduled.",
    "pdc": "Proportion of days covered: local days on which the schedule called for the "
    "medication and at least one of that day's scheduled doses was taken, divided by the local "
    "days on which it called for the medication (days with only pending doses left out); "
    "capped at 1; null when none was scheduled. Overall: the same sums over all medications.",
    "longest_missed_run": "The longest run of consecutive scheduled doses of one medication, in "
    "time order, that were all missed; a taken or skipped dose ends a run.",
    "attendance_rate": "Sessions attended divided by sessions attended or missed; null when "
    "none was. Cancelled and rescheduled sessions are not counted against it.",
    "open_alerts": "Flags for the clinician raised by the alert rules and not yet acknowledged; "
    "never advice to the patient.",
}

SECTION_DEFINITIONS: dict[str, tuple[str, ...]] = {
    "checkins": ("completeness",),
    "withdrawal": ("daily_trend", "week_change", "instrument_totals"),
    "symptoms": ("top_symptoms",),
    "craving": ("craving", "daily_trend", "week_change"),
    "sleep": ("sleep", "daily_trend", "week_change"),
    "cows": ("cows",),
    "medications": (
        "settled_dose",
        "on_time",
        "missed_dose",
        "dose_adherence",
        "pdc",
        "longest_missed_run",
    ),
    "counseling": ("attendance_rate",),
    "alerts": ("open_alerts",),
}


def _mean(values: Iterable[float]) -> float | None:
    items = list(values)
    return _mean_of(items) if items else None


def _mean_of(items: Sequence[float]) -> float:
    """The mean of at least one value, to 2 places."""
    return round(sum(items) / len(items), 2)


def _ratio(num: int, den: int) -> float | None:
    return round(min(num / den, 1.0), 4) if den else None


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(float(value), 2)


def trend(points: Iterable[tuple[datetime, float]], period: Period) -> dict[str, Any]:
    """Daily min/mean/max of (time, value) points inside the period, and first vs last week."""
    by_day: dict[date, list[float]] = defaultdict(list)
    values: list[float] = []
    for when, value in points:
        if period.contains(when):
            by_day[period.local_date(when)].append(value)
            values.append(value)
    daily = [
        {
            "date": day.isoformat(),
            "n": len(by_day[day]),
            "min": _number(min(by_day[day])),
            "mean": _mean(by_day[day]),
            "max": _number(max(by_day[day])),
        }
        for day in sorted(by_day)
    ]
    first_week_mean = last_week_mean = change = None
    if len(period.days) >= 14:
        first = set(period.days[:7])
        last = set(period.days[-7:])
        first_week_mean = _mean(v for d in sorted(by_day) if d in first for v in by_day[d])
        last_week_mean = _mean(v for d in sorted(by_day) if d in last for v in by_day[d])
        if first_week_mean is not None and last_week_mean is not None:
            change = round(last_week_mean - first_week_mean, 2)
    return {
        "n": len(values),
        "days_with_data": len(by_day),
        "min": _number(min(values)) if values else None,
        "mean": _mean(values),
        "max": _number(max(values)) if values else None,
        "daily": daily,
        "first_week_mean": first_week_mean,
        "last_week_mean": last_week_mean,
        "change": change,
    }


def checkins_section(checkins: Sequence[CheckinRow], period: Period) -> dict[str, Any]:
    inside = [c for c in checkins if period.contains(c.recorded_at)]
    days = {period.local_date(c.recorded_at) for c in inside}
    return {
        "count": len(inside),
        "days_with_data": len(days),
        "days_in_period": len(period.days),
        "completeness": _ratio(len(days), len(period.days)),
    }


def withdrawal_section(checkins: Sequence[CheckinRow], period: Period) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for instrument, (low, high) in INSTRUMENT_SCALES.items():
        points = [
            (c.recorded_at, float(c.total))
            for c in checkins
            if c.instrument == instrument and c.total is not None
        ]
        out[instrument] = {"scale_min": low, "scale_max": high, **trend(points, period)}
    return out


def symptoms_section(checkins: Sequence[CheckinRow], period: Period, *, top: int) -> dict[str, Any]:
    ratings: dict[str, list[int]] = defaultdict(list)
    for c in checkins:
        if period.contains(c.recorded_at) and c.symptoms:
            for name, value in c.symptoms.items():
                ratings[name].append(value)
    # Each name has at least one rating: its mean is a number.
    means = {name: _mean_of(values) for name, values in ratings.items()}
    ranked = [
        {"name": name, "mean": means[name], "max": max(ratings[name]), "n": len(ratings[name])}
        for name in sorted(means, key=lambda name: (-means[name], name))
    ]
    return {"rated_symptoms": len(ranked), "top": ranked[:top]}


def cows_section(cows: Sequence[CowsRow], period: Period) -> dict[str, Any]:
    inside = sorted(
        (c for c in cows if period.contains(c.assessed_at)), key=lambda c: c.assessed_at
    )
    return {
        "count": len(inside),
        "max_total": max((c.total for c in inside), default=None),
        "assessments": [
            {
                "assessed_at": period.local_iso(c.assessed_at),
                "total": c.total,
                "severity": c.severity,
            }
            for c in inside
        ],
    }


def _longest_run(statuses: Iterable[str], target: str = "missed") -> int:
    best = run = 0
    for status in statuses:
        run = run + 1 if status == target else 0
        best = max(best, run)
    return best


def medications_section(
    data: SummaryData, period: Period, *, now: datetime, settings: SummarySettings
) -> dict[str, Any]:
    window = timedelta(minutes=settings.on_time_window_minutes)
    resolved = resolve_doses(data, period, window=window, now=now)
    slot_keys = {(s.medication_id, s.scheduled_for) for s in data.scheduled_doses}
    # Taken doses that answer no scheduled time: as-needed, or logged against another time.
    unscheduled: dict[uuid.UUID, int] = defaultdict(int)
    for log in data.dose_logs:
        if (
            log.status == "taken"
            and log.taken_at is not None
            and period.contains(log.taken_at)
            and (
                log.scheduled_for is None or (log.medication_id, log.scheduled_for) not in slot_keys
            )
        ):
            unscheduled[log.medication_id] += 1
    medications: list[dict[str, Any]] = []
    totals: dict[str, int] = defaultdict(int)
    longest_missed_run = 0

    def order(med: MedicationRow) -> tuple[str, datetime, str]:
        slots = resolved.get(med.id)
        return (med.name.lower(), slots[0][0].scheduled_for if slots else period.end, med.id.hex)

    for med in sorted(data.medications, key=order):
        slots = resolved.get(med.id, [])
        settled = [(slot, status) for slot, status in slots if status != "pending"]
        tally = dict.fromkeys(("taken_on_time", "taken_late", "skipped", "missed"), 0)
        days_scheduled: set[date] = set()
        days_covered: set[date] = set()
        for slot, status in settled:  # one pass: a year of doses is thousands of them
            tally[status] += 1
            day = period.local_date(slot.scheduled_for)
            days_scheduled.add(day)
            if status[0] == "t":  # taken_on_time, taken_late
                days_covered.add(day)
        counts = {
            "scheduled": len(settled),
            "taken": tally["taken_on_time"] + tally["taken_late"],
            "taken_on_time": tally["taken_on_time"],
            "skipped": tally["skipped"],
            "missed": tally["missed"],
            "pending": len(slots) - len(settled),
        }
        counts["taken_unscheduled"] = unscheduled.get(med.id, 0)
        counts["days_scheduled"] = len(days_scheduled)
        counts["days_covered"] = len(days_covered)
        for key, value in counts.items():
            totals[key] += value
        missed_run = _longest_run(s for _, s in settled)
        longest_missed_run = max(longest_missed_run, missed_run)
        medications.append(
            {
                "medication_id": str(med.id),
                "name": med.name,
                "dose": _number(med.dose) if med.dose is not None else None,
                "unit": med.unit,
                "as_needed": med.as_needed,
                **counts,
                "dose_adherence": _ratio(counts["taken"], counts["scheduled"]),
                "pdc": _ratio(len(days_covered), len(days_scheduled)),
                "longest_missed_run": missed_run,
                "missed_doses": [
                    period.local_iso(slot.scheduled_for) for slot, s in settled if s == "missed"
                ],
            }
        )
    overall = {
        **{key: totals.get(key, 0) for key in _COUNT_KEYS},
        "dose_adherence": _ratio(totals["taken"], totals["scheduled"]),
        "pdc": _ratio(totals["days_covered"], totals["days_scheduled"]),
        "longest_missed_run": longest_missed_run,
    }
    return {
        "on_time_window_minutes": settings.on_time_window_minutes,
        "medications": medications,
        "overall": overall,
    }


_COUNT_KEYS = (
    "scheduled",
    "taken",
    "taken_on_time",
    "skipped",
    "missed",
    "pending",
    "taken_unscheduled",
    "days_scheduled",
    "days_covered",
)


def counseling_section(sessions: Sequence[SessionRow], period: Period) -> dict[str, Any]:
    inside = sorted(
        (s for s in sessions if period.contains(s.starts_at)), key=lambda s: s.starts_at
    )
    counts = {
        status: sum(1 for s in inside if s.attendance == status) for status in SESSION_STATUSES
    }
    return {
        "sessions": len(inside),
        "counts": counts,
        "attendance_rate": _ratio(counts["attended"], counts["attended"] + counts["missed"]),
        "missed_sessions": [
            {"starts_at": period.local_iso(s.starts_at), "kind": s.kind, "title": s.title}
            for s in inside
            if s.attendance == "missed"
        ],
    }


def alerts_section(
    alerts: Sequence[AlertRow], period: Period, *, categories: frozenset[str]
) -> dict[str, Any]:
    shown = sorted(
        (a for a in alerts if a.category in categories), key=lambda a: (a.triggered_at, a.id.hex)
    )
    return {
        "count": len(shown),
        "items": [
            {
                "id": str(a.id),
                "rule": a.rule,
                "category": a.category,
                "triggered_at": period.local_iso(a.triggered_at),
                "detail": a.detail,
            }
            for a in shown
        ],
    }


def withheld(category: str) -> dict[str, Any]:
    return {
        "status": "withheld",
        "category": category,
        "reason": WITHHELD_REASON.format(category=category),
    }


def compute_sections(
    data: SummaryData,
    *,
    period: Period,
    categories: Iterable[str],
    now: datetime,
    settings: SummarySettings,
    category_periods: Mapping[str, Period | None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Every section of the summary; a section whose category is not consented is withheld and
    carries none of its figures (its rows are not even read here).

    category_periods: where a consent's data window covers only part of the period, the part
    for that category (None: none of it); its sections then say which window they cover.
    """
    allowed = frozenset(categories)
    unknown = allowed - set(CATEGORIES)
    if unknown:
        raise ValueError(f"unknown categories: {sorted(unknown)}")

    def builders(p: Period) -> dict[str, Any]:
        return {
            "checkins": lambda: checkins_section(data.checkins, p),
            "withdrawal": lambda: withdrawal_section(data.checkins, p),
            "symptoms": lambda: symptoms_section(data.checkins, p, top=settings.top_symptoms),
            "craving": lambda: trend(
                ((c.recorded_at, float(c.craving)) for c in data.checkins if c.craving is not None),
                p,
            ),
            "sleep": lambda: trend(
                (
                    (c.recorded_at, float(c.sleep_hours))
                    for c in data.checkins
                    if c.sleep_hours is not None
                ),
                p,
            ),
            "cows": lambda: cows_section(data.cows, p),
            "medications": lambda: medications_section(data, p, now=now, settings=settings),
            "counseling": lambda: counseling_section(data.sessions, p),
        }

    sections: dict[str, dict[str, Any]] = {}
    for name, category in SECTION_CATEGORY.items():
        if category not in allowed:
            sections[name] = withheld(category)
            continue
        own = category_periods.get(category, period) if category_periods else period
        if own is None:
            sections[name] = {
                "status": "withheld",
                "category": category,
                "reason": OUTSIDE_WINDOW_REASON.format(category=category),
            }
            continue
        section: dict[str, Any] = {"status": "included", "category": category}
        if (own.start, own.end) != (period.start, period.end):
            section["data_window"] = {
                "from": own.local_iso(own.start),
                "to": own.local_iso(own.end),
            }
        section.update(builders(own)[name]())
        sections[name] = section
    shown = frozenset(
        c for c in allowed if not category_periods or category_periods.get(c, period) is not None
    )
    sections["alerts"] = {
        "status": "included",
        "categories": sorted(shown),
        **alerts_section(data.open_alerts, period, categories=shown),
    }
    return sections


def definitions_for(sections: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Each figure's definition, once, for the sections that are included."""
    keys = ["period"]
    for name, section in sections.items():
        if section.get("status") == "included":
            keys.extend(k for k in SECTION_DEFINITIONS[name] if k not in keys)
    return {key: DEFINITIONS[key] for key in keys}


def build_summary(
    data: SummaryData,
    *,
    patient: Mapping[str, Any],
    period: Period,
    consent: Mapping[str, Any],
    generated_at: datetime,
    now: datetime,
    notice: str,
    settings: SummarySettings,
    kind: str = "on_demand",
    category_periods: Mapping[str, Period | None] | None = None,
) -> dict[str, Any]:
    """The whole summary document: who, when, under which consent, the sections, definitions
    and the Part 2 redisclosure notice."""
    sections = compute_sections(
        data,
        period=period,
        categories=consent["categories"],
        now=now,
        settings=settings,
        category_periods=category_periods,
    )
    return {
        "kind": kind,
        "patient": {
            "id": str(patient["id"]),
            "display_name": patient["display_name"],
            "timezone": period.timezone,
        },
        "period": {
            "from": period.local_iso(period.start),
            "to": period.local_iso(period.end),
            "first_day": period.days[0].isoformat(),
            "last_day": period.days[-1].isoformat(),
            "days": len(period.days),
        },
        "generated_at": generated_at.astimezone(period.tz).isoformat(),
        "consent": {
            "id": str(consent["id"]),
            "categories": sorted(consent["categories"]),
            "purpose": consent.get("purpose"),
            "signed_at": _iso(consent.get("signed_at")),
            "expires_at": _iso(consent.get("expires_at")),
            **({"by_category": consent["by_category"]} if consent.get("by_category") else {}),
        },
        "sections": sections,
        "definitions": definitions_for(sections),
        "redisclosure_notice": notice,
    }


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, datetime | date) else str(value)
