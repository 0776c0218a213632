"""Medication reminders: one rule per dose time, in step with the regimen, at the dose instant."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import time_machine
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth.models import User
from api.medications.schedule import expand_doses
from api.notifications.models import Delivery, Notification
from api.reminders.dispatch import DispatchSettings
from jobs.reminders import dispatch_reminders

NOW = datetime(2026, 6, 10, 16, 0, tzinfo=UTC)  # Wednesday, 12:00 in New York
REGIMEN = {
    "name": "buprenorphine/naloxone",
    "dose": 8,
    "unit": "film",
    "times": ["08:00", "20:00"],
    "start_date": "2026-06-08",
}


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


def medication(client: FlaskClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    created = client.post("/v1/medications", json={**REGIMEN, **body}, headers=headers)
    assert created.status_code == 201, created.json
    return created.json


def rules(client: FlaskClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    items = client.get("/v1/reminders", headers=headers).json["items"]
    return sorted(items, key=lambda r: (r["kind"], r["local_time"] or ""))


def test_a_regimen_brings_one_rule_per_dose_time(
    client: FlaskClient, patient_headers: dict[str, str]
) -> None:
    med = medication(client, patient_headers, days_of_week=[1, 3, 5])
    made = rules(client, patient_headers)
    assert [(r["kind"], r["local_time"], r["medication_id"]) for r in made] == [
        ("medication", "08:00", med["id"]),
        ("medication", "20:00", med["id"]),
    ]
    assert all(r["days_of_week"] == [1, 3, 5] and r["enabled"] for r in made)
    assert made[0]["channels"] == ["push", "inbox"]
    # Wednesday 20:00 EDT today; 08:00 already passed: Friday
    assert made[1]["next_fire_at"] == "2026-06-11T00:00:00+00:00"
    assert made[0]["next_fire_at"] == "2026-06-12T12:00:00+00:00"
    # an as-needed regimen has no reminders
    medication(client, patient_headers, name="lofexidine", times=[], as_needed=True)
    assert len(rules(client, patient_headers)) == 2


def test_rules_change_with_the_regimen_and_go_with_it(
    client: FlaskClient, patient_headers: dict[str, str]
) -> None:
    med = medication(client, patient_headers)
    evening = next(r for r in rules(client, patient_headers) if r["local_time"] == "20:00")
    client.patch(
        f"/v1/reminders/{evening['id']}", json={"channels": ["email"]}, headers=patient_headers
    )
    morning = next(r for r in rules(client, patient_headers) if r["local_time"] == "08:00")
    assert (
        client.delete(f"/v1/reminders/{morning['id']}", headers=patient_headers).status_code == 204
    )

    # 08:00 (deleted by the user) stays away; 20:00 moves days; 13:00 is new and copies a sibling
    changed = client.patch(
        f"/v1/medications/{med['id']}",
        json={"times": ["08:00", "13:00", "20:00"], "days_of_week": [6, 7]},
        headers=patient_headers,
    )
    assert changed.status_code == 200, changed.json
    now_rules = rules(client, patient_headers)
    assert [r["local_time"] for r in now_rules] == ["13:00", "20:00"]
    assert all(r["days_of_week"] == [6, 7] for r in now_rules)
    assert now_rules[0]["channels"] == ["email", "inbox"]  # like its sibling
    assert now_rules[1]["id"] == evening["id"]
    assert now_rules[1]["next_fire_at"] == "2026-06-14T00:00:00+00:00"  # Saturday 20:00 EDT

    # a time removed from the regimen takes its rule along
    client.patch(f"/v1/medications/{med['id']}", json={"times": ["13:00"]}, headers=patient_headers)
    assert [r["local_time"] for r in rules(client, patient_headers)] == ["13:00"]
    # archiving the regimen removes the rest
    assert client.delete(f"/v1/medications/{med['id']}", headers=patient_headers).status_code == 204
    assert rules(client, patient_headers) == []


def test_a_deleted_dose_time_rule_can_be_made_again(
    client: FlaskClient, patient_headers: dict[str, str]
) -> None:
    med = medication(client, patient_headers)
    morning = next(r for r in rules(client, patient_headers) if r["local_time"] == "08:00")
    client.delete(f"/v1/reminders/{morning['id']}", headers=patient_headers)
    body = {"kind": "medication", "medication_id": med["id"], "local_time": "08:00"}
    again = client.post("/v1/reminders", json=body, headers=patient_headers)
    assert again.status_code == 201
    assert again.json["days_of_week"] is None and again.json["medication_id"] == med["id"]
    assert again.json["next_fire_at"] == "2026-06-11T12:00:00+00:00"
    twice = client.post("/v1/reminders", json=body, headers=patient_headers)
    assert twice.status_code == 409


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"local_time": "09:00"}, "local_time"),  # not a dose time
        ({"medication_id": str(uuid.uuid4())}, "medication_id"),
        ({"local_time": None}, "local_time"),
        ({"lead_minutes": 10}, "lead_minutes"),
        ({"days_of_week": [1]}, "days_of_week"),
    ],
)
def test_medication_rule_input_is_checked(
    client: FlaskClient, patient_headers: dict[str, str], body: dict[str, Any], field: str
) -> None:
    med = medication(client, patient_headers)
    sent = {"kind": "medication", "medication_id": med["id"], "local_time": "08:00", **body}
    if sent["local_time"] is None:
        del sent["local_time"]
    answer = client.post("/v1/reminders", json=sent, headers=patient_headers)
    assert answer.status_code == 422 and field in answer.json["errors"], answer.json


def test_another_users_medication_cannot_be_named(
    client: FlaskClient,
    patient_headers: dict[str, str],
    make_patient: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
) -> None:
    med = medication(client, patient_headers)
    other = auth_headers(make_patient())
    body = {"kind": "medication", "medication_id": med["id"], "local_time": "08:00"}
    answer = client.post("/v1/reminders", json=body, headers=other)
    assert answer.status_code == 422 and "medication_id" in answer.json["errors"]


def test_time_and_days_follow_the_regimen(
    client: FlaskClient, patient_headers: dict[str, str]
) -> None:
    medication(client, patient_headers)
    rule = rules(client, patient_headers)[0]
    for change in ({"local_time": "09:00"}, {"days_of_week": [1]}):
        answer = client.patch(f"/v1/reminders/{rule['id']}", json=change, headers=patient_headers)
        assert answer.status_code == 422


def test_reminders_fire_at_the_dose_instants_through_dst(
    session: Session, client: FlaskClient, patient_headers: dict[str, str], patient: User
) -> None:
    # 02:15 and 02:45 both fall in New York's 2027-03-14 spring-forward gap: one dose at 03:00
    # that night, and so one reminder.
    medication(
        client,
        patient_headers,
        times=["02:15", "02:45", "09:00"],
        start_date="2027-03-12",
        end_date="2027-03-16",
    )
    start, end = datetime(2027, 3, 11, tzinfo=UTC), datetime(2027, 3, 18, tzinfo=UTC)
    now = start
    settings = DispatchSettings(grace=timedelta(minutes=30))
    while now <= end:
        dispatch_reminders(session, now=now, settings=settings)
        now += timedelta(minutes=15)
    fired = sorted(
        session.scalars(
            select(Notification.scheduled_for).where(Notification.user_id == patient.id)
        )
    )
    doses = expand_doses(
        ["02:15", "02:45", "09:00"],
        None,
        date(2027, 3, 12),
        date(2027, 3, 16),
        "America/New_York",
        start,
        end,
    )
    assert fired == doses
    assert datetime(2027, 3, 14, 7, 0, tzinfo=UTC) in fired  # 03:00 EDT, once
    statuses = set(session.scalars(select(Delivery.status)))
    assert statuses == {"queued"}
