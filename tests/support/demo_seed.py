"""Writing a demo patient's rows into the database (tests, the benchmark, a demo deployment).

Bulk Core inserts, one statement per table, straight into the features' tables: the rows are
what the features' own services would have stored (scores, offsets, sources), without paying
for their per-row validation when seeding thousands of patients.
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from api.checkins.models import CRAVING_SCALE, Checkin
from api.counseling.models import CounselingSession
from api.cows.models import CowsAssessment
from api.instruments.definitions import COWS, SOWS, SOWS_GOSSOP
from api.medications.models import Dose, Medication
from tests.support.demo import DemoPatient, split_total

_INSTRUMENTS = {"sows": SOWS, "sows-gossop": SOWS_GOSSOP}


def demo_rows(
    demo: DemoPatient, *, patient_id: uuid.UUID, created_at: datetime, fresh_ids: bool = False
) -> dict[type, list[dict[str, Any]]]:
    """The rows of `demo` for `patient_id`; fresh_ids gives new regimen and session ids (for
    seeding one demo many times)."""
    rng = random.Random(patient_id.int)
    ids: dict[uuid.UUID, uuid.UUID] = {}

    def same(old: uuid.UUID) -> uuid.UUID:
        if not fresh_ids:
            return old
        return ids.setdefault(old, uuid.uuid4())

    stamp = {"created_at": created_at, "updated_at": created_at, "create_fingerprint": None}
    checkins = []
    for c in demo.checkins:
        instrument = _INSTRUMENTS.get(c.instrument or "")
        answers = None
        if instrument is not None and c.total is not None:
            top = max(item.max for item in instrument.items)
            values = split_total(c.total, len(instrument.items), top, rng)
            answers = {item.key: v for item, v in zip(instrument.items, values, strict=True)}
        offset = c.recorded_at.utcoffset()
        assert offset is not None
        checkins.append(
            {
                "id": uuid.uuid4(),
                "user_id": patient_id,
                "recorded_at": c.recorded_at,
                "recorded_offset_minutes": int(offset.total_seconds() // 60),
                "instrument": c.instrument,
                "instrument_version": instrument.version if instrument else None,
                "answers": answers,
                "total": c.total,
                "severity": None,
                "symptoms": dict(c.symptoms) if c.symptoms else None,
                "craving": c.craving,
                "craving_scale": CRAVING_SCALE if c.craving is not None else None,
                "sleep_hours": c.sleep_hours,
                "note": None,
                "deleted_at": None,
                "created_at": created_at,
                "updated_at": created_at,
                "create_fingerprint": None,
            }
        )
    medications = [
        {
            "id": same(m.row.id),
            "user_id": patient_id,
            "name": m.row.name,
            "dose": m.row.dose,
            "unit": m.row.unit,
            "times": list(m.times),
            "days_of_week": None,
            "start_date": m.start_date,
            "end_date": m.end_date,
            "as_needed": m.row.as_needed,
            "rxnorm_code": None,
            "schedule_timezone": demo.timezone,
            "schedule_from": None,
            "archived_at": None,
            **stamp,
        }
        for m in demo.medications
    ]
    doses = [
        {
            "id": uuid.uuid4(),
            "user_id": patient_id,
            "medication_id": same(d.medication_id),
            "status": d.status,
            "source": "user",
            "scheduled_for": d.scheduled_for,
            "taken_at": d.taken_at,
            "dose_at": d.scheduled_for or d.taken_at,
            "note": None,
            **stamp,
        }
        for d in demo.dose_logs
    ]
    sessions = [
        {
            "id": same(s.row.id),
            "user_id": patient_id,
            "kind": s.row.kind,
            "title": s.row.title,
            "starts_at": s.row.starts_at,
            "duration_minutes": s.duration_minutes,
            "provider_name": None,
            "location": None,
            "attendance": s.row.attendance,
            "note": None,
            **stamp,
        }
        for s in demo.sessions
    ]
    cows = [
        {
            "id": uuid.uuid4(),
            "patient_id": patient_id,
            "clinician_id": None,
            "consent_id": None,
            "assessed_at": c.assessed_at,
            "instrument_version": COWS.version,
            "answers": cows_answers(c.total),
            "total": c.total,
            "severity": c.severity,
            "created_at": created_at,
            "create_fingerprint": None,
        }
        for c in demo.cows
    ]
    return {
        Checkin: checkins,
        Medication: medications,
        Dose: doses,
        CounselingSession: sessions,
        CowsAssessment: cows,
    }


def cows_answers(total: int) -> dict[str, int]:
    """COWS answers (each an allowed value of its item) that add up to `total`."""
    answers, left = {}, total
    for item in COWS.items:
        allowed = item.allowed or tuple(range(item.min, item.max + 1))
        answers[item.key] = max(v for v in allowed if v <= left)
        left -= answers[item.key]
    assert left == 0, "total not reachable"
    return answers


def insert_rows(session: Session, rows: dict[type, list[dict[str, Any]]]) -> None:
    """One multi-row INSERT per table, parents first."""
    for model in (Checkin, Medication, Dose, CounselingSession, CowsAssessment):
        if rows.get(model):
            session.execute(insert(model), rows[model])


def seed_demo(
    session: Session,
    demo: DemoPatient,
    *,
    patient_id: uuid.UUID,
    created_at: datetime,
    fresh_ids: bool = False,
) -> None:
    rows = demo_rows(demo, patient_id=patient_id, created_at=created_at, fresh_ids=fresh_ids)
    insert_rows(session, rows)
