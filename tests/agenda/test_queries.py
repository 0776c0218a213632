"""GET /v1/agenda reads one day, whatever the history: the same statements for a week of logged
doses as for a year, and the day's doses through an index range rather than the whole history."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from api.auth.models import User
from api.medications.models import Dose
from tests.support.queries import TEST_TRANSACTION

ZONE = ZoneInfo("America/New_York")
NOW = datetime(2026, 6, 10, 18, 0, tzinfo=UTC)  # 14:00 in New York
YESTERDAY = date(2026, 6, 9)
TIMES = ("08:00", "20:00")


def _with_history(
    client: FlaskClient,
    session: Session,
    make_patient: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
    *,
    days: int,
) -> dict[str, str]:
    """A patient on a twice-daily regimen for `days` days, every dose until today logged."""
    user = make_patient(timezone="America/New_York")
    headers = auth_headers(user)
    first = NOW.astimezone(ZONE).date() - timedelta(days=days)
    medication = client.post(
        "/v1/medications",
        json={"name": "Buprenorphine", "dose": 8, "unit": "mg", "times": list(TIMES),
              "start_date": first.isoformat()},
        headers=headers,
    )  # fmt: skip
    assert medication.status_code == 201, medication.json
    # Straight into the table, as the medications feature stores a logged dose: a year of
    # POSTs would only slow the test down.
    medication_id = uuid.UUID(medication.json["id"])
    for n in range(days):
        for wall in TIMES:
            at = datetime.combine(first + timedelta(days=n), time.fromisoformat(wall), ZONE)
            at = at.astimezone(UTC)
            session.add(
                Dose(id=uuid.uuid4(), user_id=user.id, medication_id=medication_id,
                     status="taken", source="user", scheduled_for=at, taken_at=at, dose_at=at,
                     created_at=NOW, updated_at=NOW)
            )  # fmt: skip
    session.commit()
    return headers


def _agenda(
    client: FlaskClient, headers: dict[str, str], count_queries: Any, session: Session
) -> tuple[list[str], dict[str, Any]]:
    with count_queries(session, skip=TEST_TRANSACTION) as statements:
        answer = client.get(f"/v1/agenda?date={YESTERDAY.isoformat()}", headers=headers)
    assert answer.status_code == 200, answer.json
    return statements, answer.json


def test_statements_per_request_do_not_grow_with_the_history(
    client: FlaskClient,
    session: Session,
    make_patient: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
    count_queries: Any,
) -> None:
    with time_machine.travel(NOW, tick=False):
        week = _with_history(client, session, make_patient, auth_headers, days=7)
        year = _with_history(client, session, make_patient, auth_headers, days=365)
        few, short = _agenda(client, week, count_queries, session)
        many, long = _agenda(client, year, count_queries, session)
    assert [d["state"] for d in short["doses"]] == ["taken", "taken"]
    assert [d["state"] for d in long["doses"]] == ["taken", "taken"]
    assert len(few) == len(many), many


@pytest.mark.sqlite_only
def test_the_days_doses_are_an_index_range_not_the_whole_history(
    client: FlaskClient,
    session: Session,
    make_patient: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
    count_queries: Any,
    backend: str,
) -> None:
    # SQLite's plan does not depend on the data or the values, so the request's own statement
    # can be explained as sent; PostgreSQL's plan for it is in docs/benchmarks.md (bench.agenda).
    if backend != "sqlite":
        pytest.skip("EXPLAIN QUERY PLAN is SQLite's")
    with time_machine.travel(NOW, tick=False):
        headers = _with_history(client, session, make_patient, auth_headers, days=30)
        statements, _ = _agenda(client, headers, count_queries, session)
    (read,) = [s for s in statements if "FROM doses" in s]
    plan = " ".join(
        str(row[-1])
        for row in session.connection().exec_driver_sql(
            f"EXPLAIN QUERY PLAN {read}", (None,) * read.count("?")
        )
    )
    # Not "(user_id=?)": that reads every dose the user ever logged and filters them.
    assert "ix_doses_user_dose_at (user_id=? AND dose_at>? AND dose_at<?)" in plan, plan
