"""Counseling reminders: lead_minutes before each scheduled session, following its changes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth.models import User
from api.notifications.models import Notification
from api.reminders.dispatch import DispatchSettings
from jobs.reminders import dispatch_reminders

NOW = datetime(2026, 6, 10, 16, 0, tzinfo=UTC)  # 12:00 in New York


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


def counseling(client: FlaskClient, headers: dict[str, str], starts_at: str, **body: Any) -> Any:
    answer = client.post(
        "/v1/counseling-sessions",
        json={
            "kind": "individual",
            "title": "Weekly",
            "starts_at": starts_at,
            "duration_minutes": 50,
            **body,
        },
        headers=headers,
    )
    assert answer.status_code == 201, answer.json
    return answer.json


def reminder(client: FlaskClient, headers: dict[str, str], rid: str) -> dict[str, Any]:
    return client.get(f"/v1/reminders/{rid}", headers=headers).json


def test_lead_time_before_the_next_session_and_it_follows_changes(
    client: FlaskClient, patient_headers: dict[str, str]
) -> None:
    created = client.post(
        "/v1/reminders", json={"kind": "counseling", "lead_minutes": 60}, headers=patient_headers
    )
    assert created.status_code == 201
    rid = created.json["id"]
    assert created.json["next_fire_at"] is None  # no session yet

    later = counseling(client, patient_headers, "2026-06-12T15:00:00-04:00")
    soon = counseling(client, patient_headers, "2026-06-11T10:00:00-04:00")
    assert reminder(client, patient_headers, rid)["next_fire_at"] == "2026-06-11T13:00:00+00:00"

    # the session moves
    client.patch(
        f"/v1/counseling-sessions/{soon['id']}",
        json={"starts_at": "2026-06-11T11:30:00-04:00"},
        headers=patient_headers,
    )
    assert reminder(client, patient_headers, rid)["next_fire_at"] == "2026-06-11T14:30:00+00:00"
    # ...is cancelled: the next one counts
    client.put(
        f"/v1/counseling-sessions/{soon['id']}/attendance",
        json={"status": "cancelled"},
        headers=patient_headers,
    )
    assert reminder(client, patient_headers, rid)["next_fire_at"] == "2026-06-12T18:00:00+00:00"
    # ...and when the last one goes, nothing is left to remind of
    client.delete(f"/v1/counseling-sessions/{later['id']}", headers=patient_headers)
    assert reminder(client, patient_headers, rid)["next_fire_at"] is None
    # a new lead time applies at once
    counseling(client, patient_headers, "2026-06-13T09:00:00-04:00")
    client.patch(f"/v1/reminders/{rid}", json={"lead_minutes": 1440}, headers=patient_headers)
    assert reminder(client, patient_headers, rid)["next_fire_at"] == "2026-06-12T13:00:00+00:00"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "lead_minutes"),
        ({"lead_minutes": -5}, "lead_minutes"),
        ({"lead_minutes": 30, "local_time": "09:00"}, "local_time"),
        ({"lead_minutes": 30, "days_of_week": [1]}, "days_of_week"),
    ],
)
def test_counseling_rule_input_is_checked(
    client: FlaskClient, patient_headers: dict[str, str], body: dict[str, Any], field: str
) -> None:
    answer = client.post(
        "/v1/reminders", json={"kind": "counseling", **body}, headers=patient_headers
    )
    assert answer.status_code == 422 and field in answer.json["errors"]


def test_each_session_is_reminded_once_and_quiet_hours_yield_to_the_session(
    client: FlaskClient, patient_headers: dict[str, str], session: Session, patient: User
) -> None:
    client.patch(
        "/v1/me", json={"quiet_hours": {"start": "22:00", "end": "08:00"}}, headers=patient_headers
    )
    client.post(
        "/v1/reminders", json={"kind": "counseling", "lead_minutes": 30}, headers=patient_headers
    )
    counseling(client, patient_headers, "2026-06-11T07:30:00-04:00")  # 07:00 is quiet: not held
    counseling(client, patient_headers, "2026-06-11T17:00:00-04:00")
    counseling(client, patient_headers, "2026-06-11T17:00:00-04:00", title="Same time")
    now = NOW
    settings = DispatchSettings(grace=timedelta(minutes=30))
    while now <= NOW + timedelta(days=2):
        dispatch_reminders(session, now=now, settings=settings)
        now += timedelta(minutes=5)
    fired = session.execute(
        select(Notification.scheduled_for, Notification.due_at)
        .where(Notification.user_id == patient.id)
        .order_by(Notification.scheduled_for)
    ).all()
    assert [(s.isoformat(), d.isoformat()) for s, d in fired] == [
        ("2026-06-11T11:00:00+00:00", "2026-06-11T11:00:00+00:00"),
        ("2026-06-11T20:30:00+00:00", "2026-06-11T20:30:00+00:00"),
    ]
