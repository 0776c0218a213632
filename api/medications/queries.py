"""Reads over regimens and doses: the dose list (logged and missed) and adherence.

Set-based: the regimens are read once, their schedules expanded in Python (cheap), and the logs
of the whole period fetched in one query, so the query count does not grow with the period.
A read gives the same answer whether or not the missed-dose job has stored its rows.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from api.errors import NotFound, ValidationError
from api.localtime import local_day_start
from api.medications import rules
from api.medications.models import Dose, Medication
from api.medications.rules import live_during, missed_cutoff
from api.medications.schedule import regimen_doses, regimen_doses_by_day
from api.medications.services import DEFAULT_ON_TIME_WINDOW_MINUTES, missed_dose
from api.pagination import aware_utc, decode_cursor, encode_cursor

_TICK = timedelta(microseconds=1)
_FIRST_CHUNK = timedelta(days=7)
DEFAULT_ADHERENCE_PERIOD = timedelta(days=30)
MAX_ADHERENCE_PERIOD = timedelta(days=732)
# The dose list computes unlogged doses as missed at most this far back (docs/medications.md).
MAX_MISSED_HISTORY = MAX_ADHERENCE_PERIOD


def _sort_key(dose: Dose) -> tuple[datetime, uuid.UUID]:
    return (dose.dose_at, dose.id)


def list_doses(
    session: Session,
    *,
    user_id: uuid.UUID,
    now: datetime,
    start: datetime | None = None,
    end: datetime | None = None,
    medication_id: uuid.UUID | None = None,
    limit: int = 50,
    cursor: str | None = None,
    window_minutes: int = DEFAULT_ON_TIME_WINDOW_MINUTES,
) -> tuple[list[Dose], str | None]:
    """Logged doses, and scheduled doses with no log whose window has passed (status missed),
    newest first by the instant they count at (scheduled_for, or taken_at when as-needed).

    Raises NotFound if `medication_id` is not one of the user's regimens.
    """
    medications = select(Medication).where(Medication.user_id == user_id)
    logged = select(Dose).where(Dose.user_id == user_id)
    if medication_id is not None:
        medications = medications.where(Medication.id == medication_id)
        logged = logged.where(Dose.medication_id == medication_id)
    regimens = list(session.scalars(medications))
    if medication_id is not None and not regimens:
        raise NotFound("No such medication.")

    upper = missed_cutoff(now, window_minutes)
    if end is not None:
        logged = logged.where(Dose.dose_at < end)
        upper = min(upper, end)
    if start is not None:
        logged = logged.where(Dose.dose_at >= start)
    after: tuple[datetime, uuid.UUID] | None = None
    if cursor:
        at, last_id = decode_cursor(cursor, [aware_utc, uuid.UUID])
        after = (at, last_id)
        logged = logged.where(or_(Dose.dose_at < at, and_(Dose.dose_at == at, Dose.id < last_id)))
        upper = min(upper, at + _TICK)
    rows = list(
        session.scalars(logged.order_by(Dose.dose_at.desc(), Dose.id.desc()).limit(limit + 1))
    )
    # Missed doses older than the oldest log that could make this page cannot make it.
    lower = start
    if len(rows) > limit:
        lower = rows[-1].dose_at if lower is None else max(lower, rows[-1].dose_at)
    missed = _recent_missed(
        session,
        regimens=[m for m in regimens if not m.as_needed],
        lower=lower,
        upper=upper,
        need=limit + 1,
        now=now,
        window_minutes=window_minutes,
    )
    if after is not None:
        missed = [d for d in missed if _sort_key(d) < after]
    entries = sorted(rows + missed, key=_sort_key, reverse=True)
    page = entries[:limit]
    next_cursor = None
    if len(entries) > limit:
        next_cursor = encode_cursor([page[-1].dose_at, page[-1].id])
    return page, next_cursor


def _recent_missed(
    session: Session,
    *,
    regimens: list[Medication],
    lower: datetime | None,
    upper: datetime,
    need: int,
    now: datetime,
    window_minutes: int,
) -> list[Dose]:
    """The newest `need` (or more) unlogged, passed scheduled doses in [lower, upper), expanding
    backwards in growing chunks so an open-ended list does not expand years of schedule."""
    if not regimens:
        return []
    floor = min(local_day_start(m.start_date, m.zone) for m in regimens)
    # However old the regimens' start dates: the expansion on a request stays bounded.
    floor = max(floor, upper - MAX_MISSED_HISTORY)
    if lower is not None:
        floor = max(floor, lower)
    found: list[Dose] = []
    chunk = _FIRST_CHUNK
    hi = upper
    while hi > floor and len(found) < need:
        lo = max(floor, hi - chunk)
        slots = [(m, s) for m in regimens for s in regimen_doses(m, lo, hi)]
        if slots:
            answered = set(
                session.execute(
                    select(Dose.medication_id, Dose.scheduled_for).where(
                        Dose.medication_id.in_([m.id for m in regimens]),
                        Dose.scheduled_for >= lo,
                        Dose.scheduled_for < hi,
                    )
                )
            )
            found.extend(
                missed_dose(m, s, window_minutes=window_minutes, now=now)
                for m, s in slots
                if (m.id, s) not in answered
            )
        hi = lo
        chunk *= 4
    return found


@dataclass
class _Tally:
    scheduled: int = 0
    taken: int = 0
    taken_on_time: int = 0
    skipped: int = 0
    missed: int = 0
    days: set[date] = field(default_factory=set)
    covered: set[date] = field(default_factory=set)

    def add(self, status: str, day: date, *, on_time: bool) -> None:
        self.scheduled += 1
        self.days.add(day)
        if status == "taken":
            self.taken += 1
            self.taken_on_time += on_time
            self.covered.add(day)
        elif status == "skipped":
            self.skipped += 1
        else:
            self.missed += 1

    def report(self, *, scored: bool = True) -> dict[str, Any]:
        return _counts(
            scheduled=self.scheduled,
            taken=self.taken,
            taken_on_time=self.taken_on_time,
            skipped=self.skipped,
            missed=self.missed,
            days_scheduled=len(self.days),
            days_covered=len(self.covered),
            scored=scored,
        )


def _ratio(part: int, whole: int) -> float | None:
    return round(min(part / whole, 1.0), 4) if whole else None


def _counts(
    *,
    scheduled: int,
    taken: int,
    taken_on_time: int,
    skipped: int,
    missed: int,
    days_scheduled: int,
    days_covered: int,
    scored: bool = True,
) -> dict[str, Any]:
    return {
        "scheduled": scheduled,
        "taken": taken,
        "taken_on_time": taken_on_time,
        "skipped": skipped,
        "missed": missed,
        "dose_adherence": _ratio(taken, scheduled) if scored else None,
        "pdc": _ratio(days_covered, days_scheduled) if scored else None,
        "days_scheduled": days_scheduled,
        "days_covered": days_covered,
    }


def adherence_period(
    start: datetime | None, end: datetime | None, *, now: datetime
) -> tuple[datetime, datetime]:
    """[start, end) with the defaults (end = now, start = end - 30 days); raises
    ValidationError unless start < end and the period is at most MAX_ADHERENCE_PERIOD."""
    end = end or now
    start = start or end - DEFAULT_ADHERENCE_PERIOD
    if start >= end:
        raise ValidationError({"to": ["to must be after from."]})
    if end - start > MAX_ADHERENCE_PERIOD:
        raise ValidationError({"to": [f"The period is at most {MAX_ADHERENCE_PERIOD.days} days."]})
    return start, end


def adherence_report(
    session: Session,
    *,
    user_id: uuid.UUID,
    now: datetime,
    start: datetime | None = None,
    end: datetime | None = None,
    window_minutes: int = DEFAULT_ON_TIME_WINDOW_MINUTES,
) -> dict[str, Any]:
    """Adherence per regimen and overall for scheduled doses in [start, end) (two queries).

    Raises ValidationError for a bad period (see adherence_period).

    A scheduled dose counts once it has a log or its window has passed (then it is missed);
    taken_on_time: taken within `window_minutes` either side of the scheduled time;
    dose_adherence = taken / scheduled; pdc = days with a dose taken / days with a dose
    scheduled (local days, capped at 1). As-needed regimens are listed with their taken count,
    not scored, and left out of `overall`.
    """
    start, end = adherence_period(start, end, now=now)
    window = timedelta(minutes=window_minutes)
    regimens = list(
        session.scalars(
            select(Medication)
            .where(Medication.user_id == user_id)
            .order_by(Medication.created_at, Medication.id)
        )
    )
    logs: dict[uuid.UUID, list[tuple[str, datetime | None, datetime | None]]] = defaultdict(list)
    for medication_id, status, scheduled_for, taken_at in session.execute(
        select(Dose.medication_id, Dose.status, Dose.scheduled_for, Dose.taken_at).where(
            Dose.user_id == user_id, Dose.dose_at >= start, Dose.dose_at < end
        )
    ):
        logs[medication_id].append((status, scheduled_for, taken_at))

    due_before = min(end, missed_cutoff(now, window_minutes))
    items: list[dict[str, Any]] = []
    overall = _Tally()
    overall_days = overall_covered = 0
    for medication in regimens:
        entries = logs.get(medication.id, [])
        if not entries and not live_during(medication, start, end):
            continue
        item = {"medication_id": medication.id, "name": medication.name}
        if medication.as_needed:
            taken = sum(1 for status, _, _ in entries if status == "taken")
            item.update(
                _counts(
                    scheduled=0,
                    taken=taken,
                    taken_on_time=0,
                    skipped=0,
                    missed=0,
                    days_scheduled=0,
                    days_covered=0,
                    scored=False,
                )
            )
            item["as_needed"] = True
            items.append(item)
            continue
        zone = medication.zone
        tally = _Tally()
        slots = regimen_doses_by_day(medication, start, end)
        answered: set[datetime] = set()
        for status, scheduled_for, taken_at in entries:
            if scheduled_for is None:
                continue  # an as-needed log from before the regimen got a schedule
            answered.add(scheduled_for)
            on_time = rules.on_time(scheduled_for, taken_at, window=window)
            day = slots.get(scheduled_for) or scheduled_for.astimezone(zone).date()
            tally.add(status, day, on_time=on_time)
        for slot, day in slots.items():
            if slot < due_before and slot not in answered:
                tally.add("missed", day, on_time=False)
        item.update(tally.report())
        item["as_needed"] = False
        items.append(item)
        for key in ("scheduled", "taken", "taken_on_time", "skipped", "missed"):
            setattr(overall, key, getattr(overall, key) + getattr(tally, key))
        overall_days += len(tally.days)
        overall_covered += len(tally.covered)

    summary = _counts(
        scheduled=overall.scheduled,
        taken=overall.taken,
        taken_on_time=overall.taken_on_time,
        skipped=overall.skipped,
        missed=overall.missed,
        days_scheduled=overall_days,
        days_covered=overall_covered,
    )
    return {
        "from": start,
        "to": end,
        "on_time_window_minutes": window_minutes,
        "medications": items,
        "overall": summary,
    }
