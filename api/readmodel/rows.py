"""The read model: the plain rows summaries and alerts read, one patient's at a time.

Loaded from the features' tables by `queries.py` (or made by tests/support/demo.py); computed
over by api/summaries/compute.py and api/alerts/rules.py. No database, no Flask, no clock here.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from api.medications.rules import dose_status


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@dataclass(frozen=True)
class CheckinRow:
    recorded_at: datetime
    instrument: str | None = None  # "sows" | "sows-gossop" | None
    total: int | None = None
    symptoms: Mapping[str, int] | None = None
    craving: int | None = None
    sleep_hours: float | None = None


@dataclass(frozen=True)
class CowsRow:
    assessed_at: datetime
    total: int
    severity: str | None = None


@dataclass(frozen=True)
class MedicationRow:
    id: uuid.UUID
    name: str
    dose: float | None = None
    unit: str | None = None
    as_needed: bool = False


@dataclass(frozen=True)
class ScheduledDose:
    """One dose the regimen called for (from the medication's schedule, expanded)."""

    medication_id: uuid.UUID
    scheduled_for: datetime


@dataclass(frozen=True)
class DoseLog:
    """One dose the patient logged: taken or skipped, answering a scheduled time or as needed."""

    medication_id: uuid.UUID
    status: str  # "taken" | "skipped" | "missed" (stored by the missed-dose job)
    scheduled_for: datetime | None = None
    taken_at: datetime | None = None


@dataclass(frozen=True)
class SessionRow:
    id: uuid.UUID
    kind: str
    title: str
    starts_at: datetime
    attendance: str  # one of SESSION_STATUSES


@dataclass(frozen=True)
class AlertRow:
    id: uuid.UUID
    rule: str
    category: str
    triggered_at: datetime
    detail: str


@dataclass(frozen=True)
class SummaryData:
    checkins: Sequence[CheckinRow] = ()
    cows: Sequence[CowsRow] = ()
    medications: Sequence[MedicationRow] = ()
    scheduled_doses: Sequence[ScheduledDose] = ()
    dose_logs: Sequence[DoseLog] = ()
    sessions: Sequence[SessionRow] = ()
    open_alerts: Sequence[AlertRow] = ()


@dataclass(frozen=True)
class Period:
    """The half-open interval [start, end), read in the patient's time zone."""

    start: datetime
    end: datetime
    timezone: str = "UTC"
    _days: tuple[date, ...] = field(init=False, repr=False, compare=False)
    _dates: dict[datetime, date] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("period bounds must be aware datetimes")
        if self.end <= self.start:
            raise ValueError("period end must be after its start")
        object.__setattr__(self, "_days", tuple(_local_days(self.start, self.end, self.tz)))
        # A row's local day is asked for by several sections: convert each instant once.
        object.__setattr__(self, "_dates", {})

    @property
    def tz(self) -> ZoneInfo:
        return _zone(self.timezone)

    @property
    def days(self) -> tuple[date, ...]:
        """The local calendar days the period touches (partly or wholly)."""
        return self._days

    def contains(self, when: datetime) -> bool:
        return self.start <= when < self.end

    def local_date(self, when: datetime) -> date:
        day = self._dates.get(when)
        if day is None:
            day = self._dates[when] = when.astimezone(self.tz).date()
        return day

    def local_iso(self, when: datetime) -> str:
        return when.astimezone(self.tz).isoformat()


def _local_days(start: datetime, end: datetime, tz: ZoneInfo) -> list[date]:
    first = start.astimezone(tz).date()
    # end is exclusive: the last instant inside the period is just before it.
    last = (end - timedelta(microseconds=1)).astimezone(tz).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _dose_status(
    slot: ScheduledDose, log: DoseLog | None, *, window: timedelta, now: datetime
) -> str:
    return dose_status(
        slot.scheduled_for,
        None if log is None else log.status,
        None if log is None else log.taken_at,
        window=window,
        now=now,
    )


def resolve_doses(
    data: SummaryData, period: Period, *, window: timedelta, now: datetime
) -> dict[uuid.UUID, list[tuple[ScheduledDose, str]]]:
    """Each scheduled dose in the period with its status, per medication, in time order."""
    logs: dict[tuple[uuid.UUID, datetime], DoseLog] = {}
    for log in data.dose_logs:
        if log.scheduled_for is None or not period.contains(log.scheduled_for):
            continue
        key = (log.medication_id, log.scheduled_for)
        # Two logs for one dose (should not happen): a taken one wins over the rest.
        if key not in logs or log.status == "taken":
            logs[key] = log
    out: dict[uuid.UUID, list[tuple[ScheduledDose, str]]] = defaultdict(list)
    seen: set[tuple[uuid.UUID, datetime]] = set()
    inside = [s for s in data.scheduled_doses if period.contains(s.scheduled_for)]
    for slot in sorted(inside, key=lambda s: (s.scheduled_for, s.medication_id)):
        key = (slot.medication_id, slot.scheduled_for)
        slot_log = logs.get(key)
        # A future dose counts only once logged (taken early); until then it is not yet due.
        if (slot.scheduled_for > now and slot_log is None) or key in seen:
            continue
        seen.add(key)
        status = _dose_status(slot, slot_log, window=window, now=now)
        out[slot.medication_id].append((slot, status))
    return out
