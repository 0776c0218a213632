"""Reminder rules over HTTP (contract: "Reminders, devices, inbox")."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.auth.models import User
from api.notifications.models import Delivery, Notification
from api.sync.models import Change

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # 07:00 in New York


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def headers(patient: User, auth_headers: Callable[[User], dict[str, str]]) -> dict[str, str]:
    return auth_headers(patient)


def create(client: FlaskClient, headers: dict[str, str], **body: Any) -> Any:
    return client.post("/v1/reminders", json={"kind": "checkin", **body}, headers=headers)


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/problem+json"
    return response.json


def test_create_a_checkin_reminder_in_the_users_zone(
    client: FlaskClient, headers: dict[str, str], patient: User
) -> None:
    created = create(client, headers, local_time="09:00", channels=["email"])
    assert created.status_code == 201, created.json
    body = created.json
    assert body["kind"] == "checkin"
    assert body["local_time"] == "09:00"
    assert body["channels"] == ["email", "inbox"]  # inbox is always on
    assert body["enabled"] is True
    assert body["timezone"] == patient.timezone == "America/New_York"
    assert body["next_fire_at"] == "2026-12-01T14:00:00+00:00"  # 09:00 EST today
    assert body["days_of_week"] is None
    fetched = client.get(f"/v1/reminders/{body['id']}", headers=headers)
    assert fetched.json == body


def test_a_time_already_past_today_fires_tomorrow_and_weekdays_are_honoured(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    early = create(client, headers, local_time="06:30").json
    assert early["next_fire_at"] == "2026-12-02T11:30:00+00:00"
    # Dec 1 2026 is a Tuesday; only Saturdays (6): Dec 5
    saturday = create(client, headers, local_time="09:00", days_of_week=[6]).json
    assert saturday["next_fire_at"] == "2026-12-05T14:00:00+00:00"
    assert saturday["days_of_week"] == [6]


def test_client_id_replay_and_conflict(client: FlaskClient, headers: dict[str, str]) -> None:
    rid = str(uuid.uuid4())
    first = create(client, headers, id=rid, local_time="09:00")
    assert first.status_code == 201
    again = create(client, headers, id=rid, local_time="09:00")
    assert again.status_code == 200 and again.json["id"] == rid
    problem(create(client, headers, id=rid, local_time="10:00"), 409)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "local_time"),
        ({"local_time": "9am"}, "local_time"),
        ({"local_time": "09:00", "lead_minutes": 30}, "lead_minutes"),
        ({"local_time": "09:00", "channels": ["sms"]}, "channels.0"),
        ({"local_time": "09:00", "channels": ["push", "push"]}, "channels"),
        ({"local_time": "09:00", "days_of_week": [0]}, "days_of_week.0"),
        ({"local_time": "09:00", "days_of_week": []}, "days_of_week"),
        ({"local_time": "09:00", "next_fire_at": "2026-12-01T00:00:00Z"}, "next_fire_at"),
        ({"local_time": "09:00", "kind": "nap"}, "kind"),
        ({"local_time": "09:00", "timezone": "Europe/Paris"}, "timezone"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(
    client: FlaskClient, headers: dict[str, str], body: dict[str, Any], field: str
) -> None:
    assert field in problem(create(client, headers, **body), 422)["errors"]


def test_other_users_rules_are_404_and_clinicians_403(
    client: FlaskClient,
    headers: dict[str, str],
    make_patient: Callable[..., User],
    make_clinician: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
) -> None:
    rid = create(client, headers, local_time="09:00").json["id"]
    stranger = auth_headers(make_patient())
    problem(client.get(f"/v1/reminders/{rid}", headers=stranger), 404)
    problem(client.patch(f"/v1/reminders/{rid}", json={"enabled": False}, headers=stranger), 404)
    problem(client.delete(f"/v1/reminders/{rid}", headers=stranger), 404)
    problem(client.post(f"/v1/reminders/{rid}/snooze", json={"minutes": 5}, headers=stranger), 404)
    assert client.get("/v1/reminders", headers=stranger).json["items"] == []
    problem(client.get("/v1/reminders", headers=auth_headers(make_clinician())), 403)
    problem(client.get("/v1/reminders"), 401)


def test_list_pages(client: FlaskClient, headers: dict[str, str]) -> None:
    ids = {create(client, headers, local_time=f"0{i}:00").json["id"] for i in range(5)}
    first = client.get("/v1/reminders?limit=2", headers=headers).json
    assert len(first["items"]) == 2 and first["next_cursor"]
    seen = {r["id"] for r in first["items"]}
    cursor = first["next_cursor"]
    while cursor:
        page = client.get(f"/v1/reminders?limit=2&cursor={cursor}", headers=headers).json
        seen |= {r["id"] for r in page["items"]}
        cursor = page["next_cursor"]
    assert seen == ids


def test_patch_moves_the_next_fire_and_disabling_clears_it(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    rid = create(client, headers, local_time="09:00").json["id"]
    moved = client.patch(f"/v1/reminders/{rid}", json={"local_time": "20:15"}, headers=headers)
    assert moved.status_code == 200
    assert moved.json["next_fire_at"] == "2026-12-02T01:15:00+00:00"
    off = client.patch(f"/v1/reminders/{rid}", json={"enabled": False}, headers=headers).json
    assert off["enabled"] is False and off["next_fire_at"] is None
    on = client.patch(f"/v1/reminders/{rid}", json={"enabled": True}, headers=headers).json
    assert on["next_fire_at"] == "2026-12-02T01:15:00+00:00"
    channels = client.patch(f"/v1/reminders/{rid}", json={"channels": []}, headers=headers).json
    assert channels["channels"] == ["inbox"]
    problem(client.patch(f"/v1/reminders/{rid}", json={"kind": "medication"}, headers=headers), 422)
    problem(client.patch(f"/v1/reminders/{rid}", json={"lead_minutes": 5}, headers=headers), 422)


def test_delete(client: FlaskClient, headers: dict[str, str]) -> None:
    rid = create(client, headers, local_time="09:00").json["id"]
    assert client.delete(f"/v1/reminders/{rid}", headers=headers).status_code == 204
    problem(client.get(f"/v1/reminders/{rid}", headers=headers), 404)


def test_snooze_fires_once_more_and_a_second_snooze_replaces_the_first(
    client: FlaskClient, headers: dict[str, str], session: Session
) -> None:
    rid = create(client, headers, local_time="09:00").json["id"]
    for minutes in (4, 241, "ten"):
        problem(
            client.post(f"/v1/reminders/{rid}/snooze", json={"minutes": minutes}, headers=headers),
            422,
        )
    snoozed = client.post(f"/v1/reminders/{rid}/snooze", json={"minutes": 10}, headers=headers)
    assert snoozed.status_code == 200
    assert snoozed.json["snoozed_until"] == "2026-12-01T12:10:00+00:00"
    again = client.post(f"/v1/reminders/{rid}/snooze", json={"minutes": 30}, headers=headers)
    assert again.json["snoozed_until"] == "2026-12-01T12:30:00+00:00"
    pending = session.scalars(
        select(Notification.due_at).where(
            Notification.rule_id == uuid.UUID(rid), Notification.source == "snooze"
        )
    ).all()
    assert pending == [datetime(2026, 12, 1, 12, 30, tzinfo=UTC)]
    session.rollback()  # end this read before the requests below open their own savepoints
    # the regular schedule is untouched
    assert again.json["next_fire_at"] == "2026-12-01T14:00:00+00:00"
    client.patch(f"/v1/reminders/{rid}", json={"enabled": False}, headers=headers)
    problem(client.post(f"/v1/reminders/{rid}/snooze", json={"minutes": 5}, headers=headers), 409)
    # turning it off cancelled the pending snooze
    statuses = session.scalars(
        select(Delivery.status).join(Notification).where(Notification.rule_id == uuid.UUID(rid))
    ).all()
    assert statuses == ["cancelled"]


def test_snooze_into_quiet_hours_waits_for_them_to_end(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    client.patch(
        "/v1/me", json={"quiet_hours": {"start": "07:05", "end": "08:00"}}, headers=headers
    )
    rid = create(client, headers, local_time="09:00").json["id"]
    snoozed = client.post(f"/v1/reminders/{rid}/snooze", json={"minutes": 10}, headers=headers)
    assert snoozed.json["snoozed_until"] == "2026-12-01T13:00:00+00:00"  # 08:00 EST


def test_rules_follow_the_user_to_a_new_zone_and_new_quiet_hours(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    rid = create(client, headers, local_time="09:00").json["id"]
    moved = client.patch("/v1/me", json={"timezone": "Asia/Tokyo"}, headers=headers)
    assert moved.status_code == 200
    rule = client.get(f"/v1/reminders/{rid}", headers=headers).json
    assert rule["timezone"] == "Asia/Tokyo"
    assert rule["next_fire_at"] == "2026-12-02T00:00:00+00:00"  # 09:00 JST
    client.patch(
        "/v1/me", json={"quiet_hours": {"start": "22:00", "end": "09:30"}}, headers=headers
    )
    held = client.get(f"/v1/reminders/{rid}", headers=headers).json
    assert held["next_fire_at"] == "2026-12-02T00:30:00+00:00"
    client.patch("/v1/me", json={"quiet_hours": None}, headers=headers)
    assert client.get(f"/v1/reminders/{rid}", headers=headers).json["next_fire_at"] == (
        "2026-12-02T00:00:00+00:00"
    )


def test_every_write_lands_in_the_sync_feed(
    client: FlaskClient, headers: dict[str, str], session: Session, patient: User
) -> None:
    rid = create(client, headers, local_time="09:00").json["id"]
    client.patch(f"/v1/reminders/{rid}", json={"enabled": False}, headers=headers)
    client.delete(f"/v1/reminders/{rid}", headers=headers)
    ops = session.scalars(
        select(Change.op).where(Change.entity_id == uuid.UUID(rid)).order_by(Change.seq)
    ).all()
    assert ops == ["upsert", "upsert", "delete"]
    assert session.scalar(select(func.count()).select_from(Change)) == 3


def test_sync_loader_dumps_the_rule(
    client: FlaskClient, headers: dict[str, str], session: Session, patient: User
) -> None:
    from api.sync.services import LOADERS

    rid = create(client, headers, local_time="09:00").json["id"]
    served = client.get(f"/v1/reminders/{rid}", headers=headers).json
    assert LOADERS["reminder"](session, patient.id, [uuid.UUID(rid)]) == {uuid.UUID(rid): served}
