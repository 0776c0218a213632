"""Counseling over HTTP (contract: "Counseling")."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from api.auth.models import User

BODY = {
    "kind": "group",
    "title": "Tuesday group",
    "starts_at": "2026-06-09T18:00:00-04:00",
    "duration_minutes": 90,
    "provider_name": "Dr. Example",
    "location": "Room 2",
}


def create(client: FlaskClient, headers: dict[str, str], **overrides: Any) -> Any:
    return client.post("/v1/counseling-sessions", json={**BODY, **overrides}, headers=headers)


def test_session_lifecycle(client: FlaskClient, patient_headers: dict[str, str]) -> None:
    created = create(client, patient_headers)
    assert created.status_code == 201
    item = created.json
    assert item["attendance"] == "scheduled"
    assert item["starts_at"] == "2026-06-09T22:00:00+00:00"
    url = f"/v1/counseling-sessions/{item['id']}"
    assert client.get(url, headers=patient_headers).json == item

    patched = client.patch(
        url, json={"location": None, "duration_minutes": 60}, headers=patient_headers
    )
    assert patched.status_code == 200
    assert (patched.json["location"], patched.json["duration_minutes"]) == (None, 60)

    marked = client.put(f"{url}/attendance", json={"status": "attended"}, headers=patient_headers)
    assert marked.status_code == 200 and marked.json["attendance"] == "attended"
    summary = client.get("/v1/counseling/attendance", headers=patient_headers).json
    assert summary["counts"]["attended"] == 1 and summary["attendance_rate"] == 1.0

    assert client.delete(url, headers=patient_headers).status_code == 204
    assert client.get(url, headers=patient_headers).status_code == 404


def test_list_range_and_pages(client: FlaskClient, patient_headers: dict[str, str]) -> None:
    days = ["2026-06-01", "2026-06-02", "2026-06-03", "2026-06-04"]
    ids = [create(client, patient_headers, starts_at=f"{d}T10:00:00Z").json["id"] for d in days]
    page = client.get("/v1/counseling-sessions?limit=3", headers=patient_headers).json
    rest = client.get(
        f"/v1/counseling-sessions?limit=3&cursor={page['next_cursor']}", headers=patient_headers
    ).json
    assert [i["id"] for i in page["items"] + rest["items"]] == ids[::-1]
    assert rest["next_cursor"] is None
    ranged = client.get(
        "/v1/counseling-sessions?from=2026-06-02T00:00:00Z&to=2026-06-04T00:00:00Z",
        headers=patient_headers,
    ).json
    assert [i["id"] for i in ranged["items"]] == [ids[2], ids[1]]
    counted = client.get(
        "/v1/counseling/attendance?from=2026-06-02T00:00:00Z&to=2026-06-04T00:00:00Z",
        headers=patient_headers,
    ).json
    assert counted["total"] == 2 and counted["attendance_rate"] is None
    assert counted["from"] == "2026-06-02T00:00:00+00:00"


def test_client_id_makes_create_idempotent(
    client: FlaskClient, patient_headers: dict[str, str]
) -> None:
    session_id = str(uuid.uuid4())
    first = create(client, patient_headers, id=session_id)
    again = create(client, patient_headers, id=session_id)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json == first.json
    assert create(client, patient_headers, id=session_id, title="Other").status_code == 409


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"kind": "therapy"}, "kind"),
        ({"title": ""}, "title"),
        ({"title": " "}, "title"),
        ({"starts_at": "2026-06-09T18:00:00"}, "starts_at"),
        ({"starts_at": "tomorrow"}, "starts_at"),
        ({"duration_minutes": 0}, "duration_minutes"),
        ({"duration_minutes": 1441}, "duration_minutes"),
        ({"duration_minutes": 1.5}, "duration_minutes"),
        ({"attendance": "late"}, "attendance"),
        ({"provider_name": "x" * 201}, "provider_name"),
        ({"note": "x" * 2001}, "note"),
        ({"user_id": str(uuid.uuid4())}, "user_id"),
    ],
)
def test_validation_names_the_field(
    client: FlaskClient, patient_headers: dict[str, str], overrides: dict[str, Any], field: str
) -> None:
    response = create(client, patient_headers, **overrides)
    assert response.status_code == 422
    assert field in response.json["errors"]


def test_patch_and_attendance_validation(
    client: FlaskClient, patient_headers: dict[str, str]
) -> None:
    url = f"/v1/counseling-sessions/{create(client, patient_headers).json['id']}"
    for body, field in [({"title": None}, "title"), ({"duration_minutes": 0}, "duration_minutes")]:
        response = client.patch(url, json=body, headers=patient_headers)
        assert response.status_code == 422 and field in response.json["errors"]
    for body, field in [({"status": "late"}, "status"), ({}, "status")]:
        response = client.put(f"{url}/attendance", json=body, headers=patient_headers)
        assert response.status_code == 422 and field in response.json["errors"]


def test_another_patients_ids_are_not_found(
    client: FlaskClient,
    make_patient: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
) -> None:
    mine, theirs = auth_headers(make_patient()), auth_headers(make_patient())
    item = create(client, theirs).json
    url = f"/v1/counseling-sessions/{item['id']}"
    for method, path, body in [
        ("get", url, None),
        ("patch", url, {"title": "mine now"}),
        ("delete", url, None),
        ("put", f"{url}/attendance", {"status": "missed"}),
    ]:
        assert getattr(client, method)(path, json=body, headers=mine).status_code == 404
    assert client.get("/v1/counseling-sessions", headers=mine).json["items"] == []
    assert client.get("/v1/counseling/attendance", headers=mine).json["total"] == 0
    assert client.get(url, headers=theirs).json == item


@pytest.mark.parametrize("role", ["clinician", "admin"])
def test_other_roles_are_forbidden(
    client: FlaskClient,
    make_user: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
    role: str,
) -> None:
    extra = {"organization": "Clinic"} if role == "clinician" else {}
    headers = auth_headers(make_user(role=role, **extra))
    url = f"/v1/counseling-sessions/{uuid.uuid4()}"
    for method, path, body in [
        ("post", "/v1/counseling-sessions", BODY),
        ("get", "/v1/counseling-sessions", None),
        ("get", url, None),
        ("patch", url, {"title": "x"}),
        ("delete", url, None),
        ("put", f"{url}/attendance", {"status": "missed"}),
        ("get", "/v1/counseling/attendance", None),
    ]:
        assert getattr(client, method)(path, json=body, headers=headers).status_code == 403


CANARIES = ("CANARY-TITLE-3e1", "CANARY-PROVIDER-8a2", "CANARY-PLACE-0c9", "CANARY-NOTE-d41")


def test_logs_carry_no_titles_names_places_or_notes(
    client: FlaskClient, patient_headers: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    title, provider, place, note = CANARIES
    item = create(
        client, patient_headers, title=title, provider_name=provider, location=place, note=note
    ).json
    url = f"/v1/counseling-sessions/{item['id']}"
    client.patch(url, json={"note": note + "!", "title": title + "!"}, headers=patient_headers)
    client.put(f"{url}/attendance", json={"status": "attended"}, headers=patient_headers)
    create(client, patient_headers, title=title * 20, note=note)
    client.get("/v1/counseling-sessions", headers=patient_headers)
    client.delete(url, headers=patient_headers)
    out = capsys.readouterr()
    logged = out.out + out.err
    assert "counseling_session.created" in logged
    for canary in CANARIES:
        assert canary not in logged
