"""Loading a period's rows for one or many patients, in a fixed number of queries.

One query per kind of row (check-ins, COWS, regimens, doses, sessions), whatever
the period's length and however many patients: the weekly job loads a batch of patients at once,
and the on-demand summary of a year costs the same number of round trips as a week's.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from api.auth.models import User
from api.checkins.models import Checkin
from api.counseling.models import CounselingSession
from api.cows.models import CowsAssessment
from api.dml import one_of
from api.localtime import local_day_start
from api.medications.models import Dose, Medication
from api.medications.rules import live_during
from api.medications.schedule import expand_doses, regimen_doses
from api.readmodel.rows import (
    CheckinRow,
    CowsRow,
    DoseLog,
    MedicationRow,
    ScheduledDose,
    SessionRow,
    SummaryData,
)


@dataclass(frozen=True)
class PatientRow:
    id: uuid.UUID
    display_name: str
    timezone: str
    email: str


def load_users(session: Session, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, PatientRow]:
    wanted = list(set(ids))
    if not wanted:
        return {}
    rows = session.execute(
        select(User.id, User.display_name, User.timezone, User.email).where(
            one_of(session, User.id, wanted)
        )
    )
    return {r.id: PatientRow(r.id, r.display_name, r.timezone, r.email) for r in rows}


def _cows_rows(
    session: Session, ids: list[uuid.UUID], start: datetime, end: datetime
) -> dict[uuid.UUID, list[CowsRow]]:
    """COWS assessments clinicians recorded (api.clinician), for the symptoms category."""
    out: dict[uuid.UUID, list[CowsRow]] = defaultdict(list)
    rows = session.execute(
        select(
            CowsAssessment.patient_id,
            CowsAssessment.assessed_at,
            CowsAssessment.total,
            CowsAssessment.severity,
        ).where(
            one_of(session, CowsAssessment.patient_id, ids),
            CowsAssessment.assessed_at >= start,
            CowsAssessment.assessed_at < end,
        )
    )
    for patient_id, assessed_at, total, severity in rows:
        out[patient_id].append(CowsRow(assessed_at, total, severity))
    return out


def _first_dose(medication: Any) -> datetime | None:
    """The first scheduled instant a regimen ever had (for the alert rules' run starts)."""
    if medication.as_needed or not medication.times:
        return None
    start = local_day_start(medication.start_date, medication.zone)
    found = expand_doses(
        medication.times,
        medication.days_of_week,
        medication.start_date,
        medication.end_date,
        medication.zone,
        start,
        start + timedelta(days=8),
    )
    return found[0] if found else None


@dataclass
class Loaded:
    data: dict[uuid.UUID, SummaryData]
    schedule_starts: dict[uuid.UUID, datetime]


def load_rows(
    session: Session,
    *,
    patient_ids: Collection[uuid.UUID],
    start: datetime,
    end: datetime,
    now: datetime,
    categories: Collection[str],
    schedule_starts: bool = False,
) -> Loaded:
    """Each patient's rows in [start, end) for the given categories, as compute's plain rows."""
    ids = list(patient_ids)
    cats = set(categories)
    checkins: dict[uuid.UUID, list[CheckinRow]] = defaultdict(list)
    cows: Mapping[uuid.UUID, list[CowsRow]] = {}
    meds: dict[uuid.UUID, list[MedicationRow]] = defaultdict(list)
    slots: dict[uuid.UUID, list[ScheduledDose]] = defaultdict(list)
    logs: dict[uuid.UUID, list[DoseLog]] = defaultdict(list)
    sessions: dict[uuid.UUID, list[SessionRow]] = defaultdict(list)
    starts: dict[uuid.UUID, datetime] = {}
    if ids and "symptoms" in cats:
        checkin_rows = session.execute(
            select(
                Checkin.user_id,
                Checkin.recorded_at,
                Checkin.instrument,
                Checkin.total,
                Checkin.symptoms,
                Checkin.craving,
                Checkin.sleep_hours,
            ).where(
                one_of(session, Checkin.user_id, ids),
                Checkin.recorded_at >= start,
                Checkin.recorded_at < end,
                Checkin.deleted_at.is_(None),
            )
        )
        for user_id, recorded_at, instrument, total, symptoms, craving, sleep in checkin_rows:
            checkins[user_id].append(
                CheckinRow(recorded_at, instrument, total, symptoms, craving, sleep)
            )
        cows = _cows_rows(session, ids, start, end)
    if ids and "medications" in cats:
        _load_medications(
            session,
            ids=ids,
            start=start,
            end=end,
            now=now,
            out=(meds, slots, logs, starts if schedule_starts else None),
        )
    if ids and "counseling" in cats:
        session_rows = session.execute(
            select(
                CounselingSession.user_id,
                CounselingSession.id,
                CounselingSession.kind,
                CounselingSession.title,
                CounselingSession.starts_at,
                CounselingSession.attendance,
            ).where(
                one_of(session, CounselingSession.user_id, ids),
                CounselingSession.starts_at >= start,
                CounselingSession.starts_at < end,
            )
        )
        for user_id, sid, kind, title, starts_at, attendance in session_rows:
            sessions[user_id].append(SessionRow(sid, kind, title, starts_at, attendance))
    data = {
        pid: SummaryData(
            checkins=tuple(checkins.get(pid, ())),
            cows=tuple(cows.get(pid, ())),
            medications=tuple(meds.get(pid, ())),
            scheduled_doses=tuple(slots.get(pid, ())),
            dose_logs=tuple(logs.get(pid, ())),
            sessions=tuple(sessions.get(pid, ())),
        )
        for pid in ids
    }
    return Loaded(data=data, schedule_starts=starts)


_REGIMEN_FIELDS = (
    "id",
    "user_id",
    "name",
    "dose",
    "unit",
    "times",
    "days_of_week",
    "start_date",
    "end_date",
    "as_needed",
    "schedule_timezone",
    "schedule_from",
    "archived_at",
)


@dataclass
class _Regimen:
    """The columns of a Medication the schedule needs, without an ORM object per row (the
    weekly job reads thousands); medications.schedule reads it like a Medication."""

    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    dose: float
    unit: str
    times: list[str]
    days_of_week: list[int] | None
    start_date: date
    end_date: date | None
    as_needed: bool
    schedule_timezone: str
    schedule_from: datetime | None
    archived_at: datetime | None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.schedule_timezone)


def _load_medications(
    session: Session,
    *,
    ids: list[uuid.UUID],
    start: datetime,
    end: datetime,
    now: datetime,
    out: tuple[Any, Any, Any, Any],
) -> None:
    """Regimens (one query) and dose rows (one query); the schedule is expanded in Python.

    Like GET /v1/adherence: every stored dose row with a scheduled time is a scheduled dose
    (rows before a regimen's schedule_from were stored when its schedule changed), and the
    current schedule adds the doses nobody answered."""
    meds, slots, logs, starts = out
    # Regimens live at some point of the period (a day's margin each side covers every zone),
    # or with a dose logged in it; the exact overlap is decided below, in the regimen's zone.
    touched_ids = select(Dose.medication_id).where(
        one_of(session, Dose.user_id, ids), Dose.dose_at >= start, Dose.dose_at < end
    )
    live = and_(
        Medication.start_date <= (end + timedelta(days=1)).date(),
        or_(
            Medication.end_date.is_(None), Medication.end_date >= (start - timedelta(days=1)).date()
        ),
        or_(Medication.archived_at.is_(None), Medication.archived_at > start),
    )
    columns = [getattr(Medication, name) for name in _REGIMEN_FIELDS]
    regimens = [
        _Regimen(**row._mapping)
        for row in session.execute(
            select(*columns).where(
                one_of(session, Medication.user_id, ids), or_(live, Medication.id.in_(touched_ids))
            )
        )
    ]
    rows = session.execute(
        select(
            Dose.user_id, Dose.medication_id, Dose.status, Dose.scheduled_for, Dose.taken_at
        ).where(one_of(session, Dose.user_id, ids), Dose.dose_at >= start, Dose.dose_at < end)
    )
    answered: dict[uuid.UUID, set[datetime]] = defaultdict(set)
    touched: set[uuid.UUID] = set()
    for user_id, medication_id, status, scheduled_for, taken_at in rows:
        logs[user_id].append(DoseLog(medication_id, status, scheduled_for, taken_at))
        touched.add(medication_id)
        if scheduled_for is not None:
            answered[medication_id].add(scheduled_for)
            slots[user_id].append(ScheduledDose(medication_id, scheduled_for))
    due_before = min(end, now)
    for med in regimens:
        if med.id not in touched and not live_during(med, start, end):
            continue
        expected = regimen_doses(med, start, due_before) if due_before > start else []  # type: ignore[arg-type]
        meds[med.user_id].append(MedicationRow(med.id, med.name, med.dose, med.unit, med.as_needed))
        slots[med.user_id].extend(
            ScheduledDose(med.id, when) for when in expected if when not in answered[med.id]
        )
        first = _first_dose(med) if starts is not None else None
        if first is not None:
            starts[med.id] = first
