"""Bench data: users and, for each feature present, years of daily records (Core bulk inserts)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from alembic import command
from sqlalchemy import Connection, create_engine, insert

from tests.conftest import alembic_config

END = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)  # data runs up to here, `days` back
# A valid argon2id hash of a throwaway password: nobody signs in during the bench.
HASH = (
    "$argon2id$v=19$m=1024,t=1,p=1$IYncvd6Ag1OV59v+l8/AWA"
    "$tKFlXuEyMVbRIk2AU0Gf231PHiwYSXhHwsPRoGXj4qM"
)

# Feature seeders: (user_id, days, rng) -> {table: rows}. Registered as features exist.
Rows = dict[Any, list[dict[str, Any]]]
Seeder = Callable[[uuid.UUID, int, random.Random], Rows]
SEEDERS: dict[str, Seeder] = {}


def migrate(url: str) -> None:
    command.upgrade(alembic_config(url), "head")


def _users(conn: Connection, count: int, role: str = "patient") -> list[uuid.UUID]:
    from api.auth.models import User

    now = datetime.now(UTC)
    ids = [uuid.uuid4() for _ in range(count)]
    rows = [
        {
            "id": uid,
            "email": f"bench-{uid.hex}@example.test",
            "password_hash": HASH,
            "display_name": f"Bench {i}",
            "role": role,
            "timezone": "America/New_York",
            "discreet_notifications": False,
            "created_at": now,
            "updated_at": now,
        }
        for i, uid in enumerate(ids)
    ]
    for start in range(0, len(rows), 5000):
        conn.execute(insert(User), rows[start : start + 5000])
    return ids


def seed_all(url: str, *, patients: int) -> dict[str, Any]:
    """A 1x user (3 years daily), a 10x user (30 years' worth), `patients` bulk patients with a
    week each, and an admin. Returns their ids and a summary of rows per table."""
    engine = create_engine(url)
    rng = random.Random(7)
    summary: dict[str, int] = {}
    pending: Rows = {}

    def add(rows: Rows, label: str) -> None:
        for table, items in rows.items():
            pending.setdefault(table, []).extend(items)
            key = f"{table.name} ({label})"
            summary[key] = summary.get(key, 0) + len(items)

    def flush(conn: Connection, force: bool = False) -> None:
        if not force and sum(len(v) for v in pending.values()) < 50_000:
            return
        for table in _insert_order(pending):
            for start in range(0, len(pending[table]), 10_000):
                conn.execute(insert(table), pending[table][start : start + 10_000])
        pending.clear()

    with engine.begin() as conn:
        small, large = _users(conn, 2)
        (admin,) = _users(conn, 1, role="admin")
        crowd = _users(conn, patients)
        for seeder in SEEDERS.values():
            add(seeder(small, 3 * 365, rng), "1x user")
            flush(conn, force=True)
            add(seeder(large, 30 * 365, rng), "10x user")
            flush(conn, force=True)
            for patient in crowd:
                add(seeder(patient, 7, rng), "bulk patients")
                flush(conn)
            flush(conn, force=True)
    engine.dispose()
    return {
        "small": str(small),
        "large": str(large),
        "admin": str(admin),
        "features": sorted(SEEDERS),
        "summary": summary,
    }


def _insert_order(pending: Rows) -> list[Any]:
    from api.db import Base

    order = {t: i for i, t in enumerate(Base.metadata.sorted_tables)}
    return sorted(pending, key=lambda t: order[t])


def daily(days: int) -> list[datetime]:
    return [END - timedelta(days=days - d) for d in range(days)]


def _stamp(when: datetime) -> dict[str, Any]:
    return {"created_at": when, "updated_at": when, "create_fingerprint": None}


def seed_medications(user_id: uuid.UUID, days: int, rng: random.Random) -> Rows:
    """One regimen, three doses a day: 85% taken, 6% skipped, the rest missed (as the job
    stores them). 3 years: ~3,000 logged doses."""
    from api.medications.models import Dose, Medication

    med_id = uuid.uuid4()
    medication = {
        "id": med_id,
        "user_id": user_id,
        "name": "buprenorphine/naloxone",
        "dose": 8.0,
        "unit": "film",
        "times": ["08:00", "14:00", "20:00"],
        "days_of_week": None,
        "start_date": daily(days)[0].date(),
        "end_date": None,
        "as_needed": False,
        "rxnorm_code": "1010600",
        "schedule_timezone": "UTC",
        "schedule_from": None,
        "archived_at": None,
        **_stamp(daily(days)[0]),
    }
    doses = []
    for day in daily(days):
        for hour in (0, 6, 12):
            scheduled = day + timedelta(hours=hour)
            roll = rng.random()
            status = "taken" if roll < 0.85 else "skipped" if roll < 0.91 else "missed"
            taken_at = (
                scheduled + timedelta(minutes=rng.randint(0, 90)) if status == "taken" else None
            )
            doses.append(
                {
                    "id": uuid.uuid4(),
                    "user_id": user_id,
                    "medication_id": med_id,
                    "status": status,
                    "source": "system" if status == "missed" else "user",
                    "scheduled_for": scheduled,
                    "taken_at": taken_at,
                    "dose_at": scheduled,
                    "note": "with breakfast" if rng.random() < 0.05 else None,
                    **_stamp(taken_at or scheduled),
                }
            )
    return {Medication.__table__: [medication], Dose.__table__: doses}


def seed_counseling(user_id: uuid.UUID, days: int, rng: random.Random) -> Rows:
    """A weekly session: mostly attended."""
    from api.counseling.models import CounselingSession

    sessions = []
    for day in daily(days)[::7]:
        attendance = rng.choice(["attended"] * 8 + ["missed", "cancelled"])
        sessions.append(
            {
                "id": uuid.uuid4(),
                "user_id": user_id,
                "kind": "group",
                "title": "Weekly group",
                "starts_at": day + timedelta(hours=10),
                "duration_minutes": 60,
                "provider_name": "Dr. Example",
                "location": "Room 2",
                "attendance": attendance,
                "note": None,
                **_stamp(day),
            }
        )
    return {CounselingSession.__table__: sessions}


def seed_checkins(user_id: uuid.UUID, days: int, rng: random.Random) -> Rows:
    """A daily check-in: SOWS answers and score, symptoms, craving, sleep, sometimes a note."""
    from api.checkins.models import Checkin
    from api.instruments.definitions import INSTRUMENTS
    from api.instruments.services import severity_for

    sows = INSTRUMENTS["sows"]
    rows = []
    for day in daily(days):
        answers = {item.key: rng.randint(0, 2) for item in sows.items}
        total = sum(answers.values())
        recorded = day + timedelta(hours=13)
        rows.append(
            {
                "id": uuid.uuid4(),
                "user_id": user_id,
                "recorded_at": recorded,
                "recorded_offset_minutes": -300,
                "instrument": "sows",
                "instrument_version": sows.version,
                "answers": answers,
                "total": total,
                "severity": severity_for(sows, total),
                "symptoms": {"nausea": rng.randint(0, 10), "insomnia": rng.randint(0, 10)},
                "craving": rng.randint(0, 10),
                "craving_scale": "0-10",
                "sleep_hours": round(rng.uniform(3, 9), 1),
                "note": "a hard afternoon" if rng.random() < 0.1 else None,
                "deleted_at": None,
                **_stamp(recorded),
            }
        )
    return {Checkin.__table__: rows}


SEEDERS["checkins"] = seed_checkins
SEEDERS["medications"] = seed_medications
SEEDERS["counseling"] = seed_counseling
