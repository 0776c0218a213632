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

START = datetime(2023, 11, 26, 8, 0, tzinfo=UTC)
# A valid argon2id hash of a throwaway password: nobody signs in during the bench.
HASH = (
    "$argon2id$v=19$m=1024,t=1,p=1$IYncvd6Ag1OV59v+l8/AWA"
    "$tKFlXuEyMVbRIk2AU0Gf231PHiwYSXhHwsPRoGXj4qM"
)

# Feature seeders: (conn, user_id, days, rng) -> rows inserted. Registered as features exist.
Seeder = Callable[[Connection, uuid.UUID, int, random.Random], int]
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
    few weeks each, and an admin. Returns their ids and a summary."""
    engine = create_engine(url)
    rng = random.Random(7)
    summary: dict[str, int] = {}
    with engine.begin() as conn:
        small, large = _users(conn, 2)
        (admin,) = _users(conn, 1, role="admin")
        crowd = _users(conn, patients)
        for name, seeder in SEEDERS.items():
            summary[f"{name} (1x user)"] = seeder(conn, small, 3 * 365, rng)
            summary[f"{name} (10x user)"] = seeder(conn, large, 30 * 365, rng)
            summary[f"{name} (bulk patients)"] = sum(seeder(conn, p, 14, rng) for p in crowd)
    engine.dispose()
    return {
        "small": str(small),
        "large": str(large),
        "admin": str(admin),
        "features": sorted(SEEDERS),
        "summary": summary,
    }


def daily(days: int) -> list[datetime]:
    return [START + timedelta(days=d) for d in range(days)]
