"""Factories for regimens and dose logs, a frozen clock and a query counter."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
import time_machine
from sqlalchemy.orm import Session

from api.auth.models import User
from api.medications import services
from api.medications.models import Medication

# Wednesday 2026-06-10, 12:00 in New York (EDT, UTC-4): the make_patient default zone.
NOW = datetime(2026, 6, 10, 16, 0, tzinfo=UTC)


def regimen(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": None,
        "name": "buprenorphine/naloxone",
        "dose": 8.0,
        "unit": "film",
        "times": ["08:00", "20:00"],
        "days_of_week": None,
        "start_date": date(2026, 6, 8),
        "end_date": None,
        "as_needed": False,
        "rxnorm_code": None,
    }
    body.update(overrides)
    return body


@pytest.fixture
def make_medication(session: Session) -> Callable[..., Medication]:
    def factory(user: User, *, now: datetime = NOW, **overrides: Any) -> Medication:
        medication, _ = services.create_medication(
            session, user_id=user.id, timezone=user.timezone, body=regimen(**overrides), now=now
        )
        session.commit()
        return medication

    return factory


@pytest.fixture
def log(session: Session) -> Callable[..., Any]:
    def factory(medication: Medication, *, now: datetime = NOW, **body: Any) -> Any:
        body.setdefault("id", None)
        body.setdefault("taken_at", None)
        body.setdefault("scheduled_for", None)
        body.setdefault("note", None)
        dose, _ = services.log_dose(
            session,
            user_id=medication.user_id,
            medication_id=medication.id,
            body=body,
            now=now,
        )
        session.commit()
        return dose

    return factory


@pytest.fixture
def clock() -> Iterator[time_machine.Coordinates]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller
