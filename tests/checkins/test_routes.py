"""/v1/checkins over HTTP: status codes, the problem format, privacy, logs."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient

from api.instruments.definitions import SOWS

Headers = dict[str, str]


def sows(value: int = 1) -> dict[str, int]:
    return {item.key: value for item in SOWS.items}


def recent(minutes_ago: int = 60) -> str:
    # Sent as the phone writes it: local time with its offset.
    when = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return when.astimezone(ZoneInfo("America/Chicago")).isoformat()


def payload(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "recorded_at": recent(),
        "instrument": "sows",
        "answers": sows(2),
        "symptoms": {"nausea": 4, "low_mood": 2},
        "craving": 5,
        "sleep_hours": 6.5,
        "note": "Rough morning.",
    }
    data.update(overrides)
    return data


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/problem+json"
    return response.json


def test_create_read_list_edit_delete(client: FlaskClient, patient_headers: Headers) -> None:
    sent = payload()
    created = client.post("/v1/checkins", json=sent, headers=patient_headers)
    assert created.status_code == 201
    checkin = created.json
    assert checkin["recorded_at"] == sent["recorded_at"]  # the offset the phone sent
    assert (checkin["total"], checkin["severity"], checkin["instrument_version"]) == (32, None, "1")
    assert checkin["symptoms"] == {"nausea": 4, "low_mood": 2}
    assert (checkin["craving"], checkin["craving_scale"], checkin["sleep_hours"]) == (
        5,
        "0-10",
        6.5,
    )
    path = f"/v1/checkins/{checkin['id']}"

    assert client.get(path, headers=patient_headers).json == checkin
    listed = client.get("/v1/checkins", headers=patient_headers).json
    assert listed == {"items": [checkin], "next_cursor": None}

    edited = client.patch(path, json={"answers": sows(4), "note": None}, headers=patient_headers)
    assert edited.status_code == 200
    assert (edited.json["total"], edited.json["note"]) == (64, None)
    assert edited.json["created_at"] == checkin["created_at"]

    assert client.delete(path, headers=patient_headers).status_code == 204
    problem(client.get(path, headers=patient_headers), 404)
    assert client.delete(path, headers=patient_headers).status_code == 204  # a resent delete
    assert client.get("/v1/checkins", headers=patient_headers).json["items"] == []


def test_client_id_resend_answers_200_and_mismatch_409(
    client: FlaskClient, patient_headers: Headers
) -> None:
    sent = payload(id=str(uuid.uuid4()))
    assert client.post("/v1/checkins", json=sent, headers=patient_headers).status_code == 201
    again = client.post("/v1/checkins", json=sent, headers=patient_headers)
    assert again.status_code == 200 and again.json["id"] == sent["id"]
    problem(client.post("/v1/checkins", json={**sent, "craving": 1}, headers=patient_headers), 409)
    assert len(client.get("/v1/checkins", headers=patient_headers).json["items"]) == 1
    client.delete(f"/v1/checkins/{sent['id']}", headers=patient_headers)
    gone = problem(client.post("/v1/checkins", json=sent, headers=patient_headers), 409)
    assert "deleted" in gone["detail"]


def test_list_pages_and_range(client: FlaskClient, patient_headers: Headers) -> None:
    for minutes in range(10, 130, 10):  # 12 check-ins, one every 10 minutes
        body = payload(recorded_at=recent(minutes))
        assert client.post("/v1/checkins", json=body, headers=patient_headers).status_code == 201
    first = client.get("/v1/checkins?limit=5", headers=patient_headers).json
    assert len(first["items"]) == 5 and first["next_cursor"]
    times = [item["recorded_at"] for item in first["items"]]
    assert times == sorted(times, reverse=True)
    rest = client.get(
        f"/v1/checkins?limit=200&cursor={first['next_cursor']}", headers=patient_headers
    ).json
    assert len(rest["items"]) == 7 and rest["next_cursor"] is None
    start = datetime.now(UTC) - timedelta(minutes=65)
    ranged = client.get(
        "/v1/checkins",
        query_string={"from": start.isoformat(), "to": datetime.now(UTC).isoformat()},
        headers=patient_headers,
    ).json
    assert len(ranged["items"]) == 6
    problem(client.get("/v1/checkins?limit=201", headers=patient_headers), 422)
    problem(client.get("/v1/checkins?from=2026-01-01T00:00:00", headers=patient_headers), 422)
    bad_cursor = problem(client.get("/v1/checkins?cursor=nope", headers=patient_headers), 422)
    assert "cursor" in bad_cursor["errors"]
    for edge in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        for name in ("from", "to"):
            response = client.get(
                "/v1/checkins", query_string={name: edge}, headers=patient_headers
            )
            assert name in problem(response, 422)["errors"]
    # Cursors are opaque, but a crafted one is a 422, never a 500.
    for crafted in (
        ["2026-01-01T00:00:00", str(uuid.uuid4())],
        ["0001-01-01T00:00:00+05:00", str(uuid.uuid4())],
    ):
        raw = base64.urlsafe_b64encode(json.dumps(crafted).encode()).decode()
        response = client.get("/v1/checkins", query_string={"cursor": raw}, headers=patient_headers)
        assert "cursor" in problem(response, 422)["errors"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"recorded_at": "2026-03-08T08:00:00"}, "recorded_at"),
        ({"recorded_at": "yesterday"}, "recorded_at"),
        ({"recorded_at": None}, "recorded_at"),
        ({"recorded_at": (datetime.now(UTC) + timedelta(minutes=30)).isoformat()}, "recorded_at"),
        ({"recorded_at": "0001-01-01T00:00:00+01:00"}, "recorded_at"),  # no UTC equivalent
        ({"recorded_at": "1999-12-31T23:59:00+00:00"}, "recorded_at"),
        ({"recorded_at": "9999-12-31T23:59:59-01:00"}, "recorded_at"),
        ({"instrument": "cows"}, "instrument"),
        ({"answers": None}, "answers"),
        ({"instrument": None}, "instrument"),
        ({"answers": {**sows(), "anxious": 5}}, "answers.anxious"),
        ({"answers": {**sows(), "anxious": "4"}}, "answers.anxious"),
        (
            {"answers": {k: v for k, v in sows().items() if k != "craving_use"}},
            "answers.craving_use",
        ),
        ({"answers": {**sows(), "extra": 1}}, "answers.extra"),
        ({"answers": [1, 2]}, "answers"),
        ({"symptoms": {"nausea": 11}}, "symptoms.nausea"),
        ({"symptoms": {"headache": 3}}, "symptoms.headache"),
        ({"symptoms": {"nausea": 2.5}}, "symptoms.nausea"),
        ({"craving": 11}, "craving"),
        ({"craving": True}, "craving"),
        ({"sleep_hours": 24.5}, "sleep_hours"),
        ({"sleep_hours": -1}, "sleep_hours"),
        ({"note": "x" * 2001}, "note"),
        ({"id": "not-a-uuid"}, "id"),
        ({"total": 3}, "total"),
        ({"user_id": str(uuid.uuid4())}, "user_id"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(
    client: FlaskClient, patient_headers: Headers, overrides: dict[str, Any], field: str
) -> None:
    body = problem(
        client.post("/v1/checkins", json=payload(**overrides), headers=patient_headers), 422
    )
    assert field in body["errors"], body["errors"]
    assert client.get("/v1/checkins", headers=patient_headers).json["items"] == []


def test_a_2000_character_note_is_fine(client: FlaskClient, patient_headers: Headers) -> None:
    created = client.post("/v1/checkins", json=payload(note="é" * 2000), headers=patient_headers)
    assert created.status_code == 201 and len(created.json["note"]) == 2000


def test_patch_validation(client: FlaskClient, patient_headers: Headers) -> None:
    checkin = client.post("/v1/checkins", json=payload(), headers=patient_headers).json
    path = f"/v1/checkins/{checkin['id']}"
    cases = [
        ({"instrument": "sows-gossop"}, "answers"),
        ({"answers": {"anxious": 1}}, "answers.yawning"),
        ({"recorded_at": None}, "recorded_at"),
        ({"id": str(uuid.uuid4())}, "id"),
        ({"total": 1}, "total"),
    ]
    for changes, field in cases:
        assert (
            field
            in problem(client.patch(path, json=changes, headers=patient_headers), 422)["errors"]
        )
    assert client.get(path, headers=patient_headers).json == checkin


def test_every_route_hides_another_patients_checkin(
    client: FlaskClient, patient_headers: Headers, make_patient: Any, auth_headers: Any
) -> None:
    checkin = client.post("/v1/checkins", json=payload(), headers=patient_headers).json
    intruder = auth_headers(make_patient())
    path = f"/v1/checkins/{checkin['id']}"
    problem(client.get(path, headers=intruder), 404)
    problem(client.patch(path, json={"note": "mine now"}, headers=intruder), 404)
    problem(client.delete(path, headers=intruder), 404)
    problem(
        client.post("/v1/checkins", json={**payload(), "id": checkin["id"]}, headers=intruder), 409
    )
    assert client.get("/v1/checkins", headers=intruder).json["items"] == []
    assert client.get("/v1/sync", headers=intruder).json["changes"] == []
    assert client.get(path, headers=patient_headers).json == checkin


@pytest.mark.parametrize("role", ["clinician", "admin"])
def test_checkin_routes_are_for_patients_only(
    client: FlaskClient, patient_headers: Headers, make_user: Any, auth_headers: Any, role: str
) -> None:
    checkin = client.post("/v1/checkins", json=payload(), headers=patient_headers).json
    extra = {"organization": "Clinic"} if role == "clinician" else {}
    staff = auth_headers(make_user(role=role, **extra))
    path = f"/v1/checkins/{checkin['id']}"
    calls: list[Callable[[], Any]] = [
        lambda: client.post("/v1/checkins", json=payload(), headers=staff),
        lambda: client.get("/v1/checkins", headers=staff),
        lambda: client.get(path, headers=staff),
        lambda: client.patch(path, json={"note": "x"}, headers=staff),
        lambda: client.delete(path, headers=staff),
        lambda: client.get("/v1/sync", headers=staff),
    ]
    for call in calls:
        problem(call(), 403)
    for anonymous in (
        client.post("/v1/checkins", json=payload()),
        client.get("/v1/checkins"),
        client.get(path),
        client.patch(path, json={"note": "x"}),
        client.delete(path),
    ):
        problem(anonymous, 401)


CANARY = "canary-7f3a9 my husband found my stash"


def test_notes_and_symptom_values_never_reach_the_logs(
    client: FlaskClient, patient_headers: Headers, capfd: pytest.CaptureFixture[str]
) -> None:
    capfd.readouterr()
    created = client.post(
        "/v1/checkins",
        json=payload(note=CANARY, symptoms={"anxiety": 9}),
        headers={**patient_headers, "Idempotency-Key": "log-test-1"},
    )
    assert created.status_code == 201
    path = f"/v1/checkins/{created.json['id']}"
    client.patch(path, json={"note": CANARY + " again", "craving": 9}, headers=patient_headers)
    client.post("/v1/checkins", json=payload(note=CANARY, craving=99), headers=patient_headers)
    client.post("/v1/checkins", json=payload(note=CANARY * 100), headers=patient_headers)
    client.get("/v1/sync", headers=patient_headers)
    client.delete(path, headers=patient_headers)
    out = capfd.readouterr()
    text = out.out + out.err
    assert "checkin.created" in text and "checkin.deleted" in text  # the logs were captured
    assert "canary-7f3a9" not in text
    for line in text.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            assert not {"note", "symptoms", "answers", "craving", "sleep_hours"} & set(event)
