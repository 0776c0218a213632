"""GET /v1/sync: a phone that was offline catches up with one copy of each record."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from api.instruments.definitions import SOWS

Headers = dict[str, str]


def answers(value: int) -> dict[str, int]:
    return {item.key: value for item in SOWS.items}


def new_checkin(client: FlaskClient, headers: Headers, when: datetime, **extra: Any) -> str:
    body = {"recorded_at": when.isoformat(), "instrument": "sows", "answers": answers(1), **extra}
    response = client.post("/v1/checkins", json={"id": str(uuid.uuid4()), **body}, headers=headers)
    assert response.status_code == 201
    return response.json["id"]


def catch_up(
    client: FlaskClient, headers: Headers, phone: dict[str, Any], cursor: str | None, limit: int
) -> tuple[str, int]:
    """Apply pages to the phone's store until has_more is false; returns (cursor, calls)."""
    calls = 0
    while True:
        query: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            query["since"] = cursor
        page = client.get("/v1/sync", query_string=query, headers=headers)
        assert page.status_code == 200, page.json
        calls += 1
        body = page.json
        ids = [(c["type"], c["id"]) for c in body["changes"]]
        assert len(ids) == len(set(ids))  # one entry per entity in a page
        for change in body["changes"]:
            assert change["type"] == "checkin"
            if change["op"] == "upsert":
                assert change["data"]["id"] == change["id"]
                phone[change["id"]] = change["data"]
            else:
                assert change["op"] == "delete" and change["data"] is None
                phone.pop(change["id"], None)
        cursor = body["cursor"]
        if not body["has_more"]:
            return cursor, calls


def server_state(client: FlaskClient, headers: Headers) -> dict[str, Any]:
    state, cursor = {}, None
    while True:
        query = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/checkins", query_string=query, headers=headers).json
        state.update({item["id"]: item for item in page["items"]})
        cursor = page["next_cursor"]
        if cursor is None:
            return state


def test_an_offline_week_catches_up_in_a_few_calls(
    client: FlaskClient, patient_headers: Headers, make_patient: Any, auth_headers: Any
) -> None:
    now = datetime.now(UTC)
    before = [
        new_checkin(client, patient_headers, now - timedelta(days=10, hours=i)) for i in range(5)
    ]
    phone: dict[str, Any] = {}
    cursor, _ = catch_up(client, patient_headers, phone, None, limit=500)
    assert set(phone) == set(before)

    # Another user's activity interleaves in the same feed table.
    stranger = auth_headers(make_patient())
    strangers = [new_checkin(client, stranger, now - timedelta(hours=i)) for i in range(3)]

    # A week of changes while the phone is offline: creates, edits (some twice), deletes.
    week: list[str] = []
    for day in range(7):
        for slot in range(4):
            week.append(
                new_checkin(client, patient_headers, now - timedelta(days=7 - day, hours=slot))
            )
    for checkin_id in week[::3] + week[::6] + before[:2]:
        edited = client.patch(
            f"/v1/checkins/{checkin_id}",
            json={"answers": answers(3), "note": "edited"},
            headers=patient_headers,
        )
        assert edited.status_code == 200
    deleted = [*week[1::5], before[4]]
    for checkin_id in deleted:
        assert (
            client.delete(f"/v1/checkins/{checkin_id}", headers=patient_headers).status_code == 204
        )

    # Default page size: one call. Small pages: a few calls, same end state.
    small_phone = {k: dict(v) for k, v in phone.items()}
    _, calls = catch_up(client, patient_headers, phone, cursor, limit=500)
    assert calls == 1
    _, small_calls = catch_up(client, patient_headers, small_phone, cursor, limit=10)
    assert small_calls <= 6
    server = server_state(client, patient_headers)
    assert phone == server == small_phone
    assert not set(deleted) & set(phone)
    assert not set(strangers) & set(phone)
    assert phone[week[0]]["note"] == "edited" and phone[week[0]]["total"] == 48


def test_tombstones_and_the_cursor_moves_on(client: FlaskClient, patient_headers: Headers) -> None:
    now = datetime.now(UTC)
    first = client.get("/v1/sync", headers=patient_headers).json
    assert first["changes"] == [] and first["has_more"] is False
    kept = new_checkin(client, patient_headers, now)
    page = client.get("/v1/sync", query_string={"since": first["cursor"]}, headers=patient_headers)
    assert [c["id"] for c in page.json["changes"]] == [kept]
    cursor = page.json["cursor"]
    client.delete(f"/v1/checkins/{kept}", headers=patient_headers)
    tomb = client.get("/v1/sync", query_string={"since": cursor}, headers=patient_headers).json
    assert tomb["changes"] == [
        {
            "type": "checkin",
            "id": kept,
            "op": "delete",
            "data": None,
            "changed_at": tomb["changes"][0]["changed_at"],
        }
    ]
    done = client.get("/v1/sync", query_string={"since": tomb["cursor"]}, headers=patient_headers)
    assert done.json["changes"] == [] and done.json["cursor"] == tomb["cursor"]


def test_a_cursor_from_another_user_gives_nothing_of_theirs(
    client: FlaskClient, patient_headers: Headers, make_patient: Any, auth_headers: Any
) -> None:
    now = datetime.now(UTC)
    other = auth_headers(make_patient())
    theirs = {new_checkin(client, other, now - timedelta(hours=i), note="theirs") for i in range(3)}
    their_cursor = client.get("/v1/sync", query_string={"limit": 1}, headers=other).json["cursor"]
    mine = new_checkin(client, patient_headers, now)
    for cursor in (their_cursor, None):
        query = {"since": cursor} if cursor else {}
        body = client.get("/v1/sync", query_string=query, headers=patient_headers).json
        assert [c["id"] for c in body["changes"]] == [mine]
        assert not theirs & {c["id"] for c in body["changes"]}
        assert "theirs" not in str(body)


@pytest.mark.parametrize(
    "since",
    [
        "garbage!",
        base64.urlsafe_b64encode(b'{"seq": 1}').decode(),
        base64.urlsafe_b64encode(b'["x"]').decode(),
        base64.urlsafe_b64encode(b'["-5"]').decode(),
        base64.urlsafe_b64encode(b'["1", "2"]').decode(),
        base64.urlsafe_b64encode(b'["9223372036854775808"]').decode(),  # past BIGINT
    ],
)
def test_a_bad_cursor_is_422(client: FlaskClient, patient_headers: Headers, since: str) -> None:
    response = client.get("/v1/sync", query_string={"since": since}, headers=patient_headers)
    assert response.status_code == 422
    assert response.headers["Content-Type"] == "application/problem+json"
    assert "since" in response.json["errors"]


@pytest.mark.parametrize("limit", [0, 1001, "many"])
def test_limit_bounds(client: FlaskClient, patient_headers: Headers, limit: Any) -> None:
    response = client.get("/v1/sync", query_string={"limit": limit}, headers=patient_headers)
    assert response.status_code == 422 and "limit" in response.json["errors"]


def test_sync_is_for_patients(client: FlaskClient, make_clinician: Any, auth_headers: Any) -> None:
    assert client.get("/v1/sync").status_code == 401
    assert client.get("/v1/sync", headers=auth_headers(make_clinician())).status_code == 403
