"""GET /v1/agenda over HTTP: the default day, sessions, the check-in reminder, bad input."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import time_machine
from flask.testing import FlaskClient

from api.auth.models import User

# 2026-03-08 03:30 UTC is still Saturday 7 March in New York (22:30 EST).
NOW = datetime(2026, 3, 8, 3, 30, tzinfo=UTC)


def test_default_day_is_today_in_the_users_zone(
    strict_client: FlaskClient,
    make_patient: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
) -> None:
    client = strict_client
    with time_machine.travel(NOW, tick=False):
        user = make_patient(timezone="America/New_York")
        headers = auth_headers(user)
        session = {
            "kind": "individual",
            "title": "Weekly counseling",
            "starts_at": "2026-03-07T15:00:00-05:00",
            "duration_minutes": 50,
        }
        assert (
            client.post("/v1/counseling-sessions", json=session, headers=headers).status_code == 201
        )
        other_day = {**session, "starts_at": "2026-03-08T15:00:00-04:00"}
        assert (
            client.post("/v1/counseling-sessions", json=other_day, headers=headers).status_code
            == 201
        )
        reminder = {"kind": "checkin", "local_time": "21:00", "channels": ["inbox"]}
        assert client.post("/v1/reminders", json=reminder, headers=headers).status_code == 201
        checkin = {"recorded_at": "2026-03-07T21:05:00-05:00", "craving": 3}
        assert client.post("/v1/checkins", json=checkin, headers=headers).status_code == 201

        today = client.get("/v1/agenda", headers=headers)
        spring = client.get("/v1/agenda?date=2026-03-08", headers=headers)

    assert today.status_code == 200
    assert today.json["date"] == "2026-03-07"
    assert today.json["timezone"] == "America/New_York"
    assert [s["title"] for s in today.json["counseling_sessions"]] == ["Weekly counseling"]
    assert today.json["checkin"] == {
        "reminder_local_time": "21:00",
        "reminder_at": "2026-03-08T02:00:00+00:00",
        "checked_in": True,
    }
    # The spring-forward day: 21:00 is EDT, an hour earlier in UTC; nothing recorded yet.
    assert spring.json["checkin"]["reminder_at"] == "2026-03-09T01:00:00+00:00"
    assert spring.json["checkin"]["checked_in"] is False
    assert len(spring.json["counseling_sessions"]) == 1


def test_bad_date_is_422_naming_the_field(
    client: FlaskClient, patient_headers: dict[str, str]
) -> None:
    for value in ("2026-02-30", "tomorrow", "9999-12-31"):
        answer = client.get(f"/v1/agenda?date={value}", headers=patient_headers)
        assert answer.status_code == 422
        assert "date" in answer.json["errors"]


def test_clinicians_have_no_agenda(
    client: FlaskClient,
    make_clinician: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
) -> None:
    answer = client.get("/v1/agenda", headers=auth_headers(make_clinician()))
    assert answer.status_code == 403


def test_unknown_query_parameters_are_refused(
    client: FlaskClient, patient_headers: dict[str, str]
) -> None:
    answer = client.get("/v1/agenda?day=2026-03-08", headers=patient_headers)
    assert answer.status_code == 422
    assert "day" in answer.json["errors"]
