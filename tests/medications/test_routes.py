"""Medications, doses and adherence over HTTP (contract: "Medications and doses")."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from api.auth.models import User
from tests.medications.conftest import NOW

BODY = {
    "name": "buprenorphine/naloxone",
    "dose": 8,
    "unit": "film",
    "times": ["20:00", "08:00"],
    "start_date": "2026-06-08",
}


@pytest.fixture
def headers(clock: Any, patient: User, auth_headers: Callable[[User], dict[str, str]]):
    # The clock is frozen first, so the token is issued at the frozen time.
    return auth_headers(patient)


def create(client: FlaskClient, headers: dict[str, str], **overrides: Any) -> Any:
    return client.post("/v1/medications", json={**BODY, **overrides}, headers=headers)


def log_dose(client: FlaskClient, headers: dict[str, str], medication_id: str, **body: Any) -> Any:
    return client.post(f"/v1/medications/{medication_id}/doses", json=body, headers=headers)


def test_regimen_lifecycle(client: FlaskClient, headers: dict[str, str]) -> None:
    created = create(client, headers, rxnorm_code="1010600", days_of_week=[5, 1, 3])
    assert created.status_code == 201
    med = created.json
    assert med["times"] == ["08:00", "20:00"]
    assert med["days_of_week"] == [1, 3, 5]
    assert med["active"] is True and med["archived_at"] is None
    assert med["dose"] == 8.0 and med["unit"] == "film" and med["end_date"] is None

    fetched = client.get(f"/v1/medications/{med['id']}", headers=headers)
    assert fetched.status_code == 200 and fetched.json == med

    patched = client.patch(
        f"/v1/medications/{med['id']}",
        json={"dose": 12, "end_date": "2026-06-30", "days_of_week": None},
        headers=headers,
    )
    assert patched.status_code == 200
    assert (patched.json["dose"], patched.json["end_date"]) == (12.0, "2026-06-30")
    assert patched.json["days_of_week"] is None

    listed = client.get("/v1/medications", headers=headers)
    assert [m["id"] for m in listed.json["items"]] == [med["id"]]
    assert listed.json["next_cursor"] is None

    assert client.delete(f"/v1/medications/{med['id']}", headers=headers).status_code == 204
    assert client.delete(f"/v1/medications/{med['id']}", headers=headers).status_code == 204
    archived = client.get(f"/v1/medications/{med['id']}", headers=headers).json
    assert archived["active"] is False and archived["archived_at"] is not None
    assert client.get("/v1/medications", headers=headers).json["items"] == []
    everything = client.get("/v1/medications?include_archived=true", headers=headers).json
    assert [m["id"] for m in everything["items"]] == [med["id"]]
    refused = client.patch(f"/v1/medications/{med['id']}", json={"dose": 4}, headers=headers)
    assert refused.status_code == 409


def test_list_pages(client: FlaskClient, headers: dict[str, str]) -> None:
    ids = {create(client, headers, name=f"med {i}").json["id"] for i in range(3)}
    first = client.get("/v1/medications?limit=2", headers=headers).json
    second = client.get(
        f"/v1/medications?limit=2&cursor={first['next_cursor']}", headers=headers
    ).json
    assert second["next_cursor"] is None
    assert {m["id"] for m in first["items"] + second["items"]} == ids


def test_as_needed_regimen(client: FlaskClient, headers: dict[str, str]) -> None:
    created = create(client, headers, name="kratom", dose=2, unit="g", times=[], as_needed=True)
    assert created.status_code == 201
    assert created.json["as_needed"] is True and created.json["times"] == []


def test_client_id_makes_create_idempotent(client: FlaskClient, headers: dict[str, str]) -> None:
    med_id = str(uuid.uuid4())
    first = create(client, headers, id=med_id)
    again = create(client, headers, id=med_id)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json == first.json
    assert create(client, headers, id=med_id, dose=16).status_code == 409
    assert len(client.get("/v1/medications", headers=headers).json["items"]) == 1


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"dose": 0}, "dose"),
        ({"dose": -2}, "dose"),
        ({"dose": "eight"}, "dose"),
        ({"unit": "bottle"}, "unit"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"times": ["25:00"]}, "times.0"),
        ({"times": ["8:00"]}, "times.0"),
        ({"times": ["08:00", "08:00"]}, "times"),
        ({"times": []}, "times"),
        ({"times": ["08:00"], "as_needed": True}, "times"),
        ({"days_of_week": [0]}, "days_of_week.0"),
        ({"days_of_week": [8]}, "days_of_week.0"),
        ({"days_of_week": []}, "days_of_week"),
        ({"days_of_week": [1, 1]}, "days_of_week"),
        ({"start_date": "2026-13-01"}, "start_date"),
        ({"start_date": None}, "start_date"),
        ({"end_date": "2026-06-01"}, "end_date"),
        ({"rxnorm_code": "abc"}, "rxnorm_code"),
        ({"active": True}, "active"),
        ({"user_id": str(uuid.uuid4())}, "user_id"),
    ],
)
def test_create_validation_names_the_field(
    client: FlaskClient, headers: dict[str, str], overrides: dict[str, Any], field: str
) -> None:
    response = create(client, headers, **overrides)
    assert response.status_code == 422
    assert response.headers["Content-Type"] == "application/problem+json"
    assert field in response.json["errors"]


def test_patch_checks_the_merged_regimen(client: FlaskClient, headers: dict[str, str]) -> None:
    med = create(client, headers).json
    for body, field in [
        ({"end_date": "2026-06-01"}, "end_date"),
        ({"start_date": "2026-07-01", "end_date": "2026-06-30"}, "end_date"),
        ({"as_needed": True}, "times"),
        ({"times": []}, "times"),
        ({"name": None}, "name"),
        ({"unit": "bottle"}, "unit"),
        ({"archived_at": None}, "archived_at"),
    ]:
        response = client.patch(f"/v1/medications/{med['id']}", json=body, headers=headers)
        assert response.status_code == 422, body
        assert field in response.json["errors"], body
    switched = client.patch(
        f"/v1/medications/{med['id']}", json={"as_needed": True, "times": []}, headers=headers
    )
    assert switched.status_code == 200 and switched.json["as_needed"] is True


def test_dose_logging(client: FlaskClient, headers: dict[str, str]) -> None:
    med = create(client, headers).json
    dose_id = str(uuid.uuid4())
    body = {
        "id": dose_id,
        "status": "taken",
        "scheduled_for": "2026-06-09T08:00:00-04:00",
        "taken_at": "2026-06-09T08:20:00-04:00",
        "note": "with breakfast",
    }
    first = log_dose(client, headers, med["id"], **body)
    assert first.status_code == 201
    assert first.json["scheduled_for"] == "2026-06-09T12:00:00+00:00"
    assert first.json["taken_at"] == "2026-06-09T12:20:00+00:00"
    assert (first.json["status"], first.json["source"], first.json["medication_id"]) == (
        "taken",
        "user",
        med["id"],
    )
    assert log_dose(client, headers, med["id"], **body).status_code == 200
    assert log_dose(client, headers, med["id"], **{**body, "note": "other"}).status_code == 409
    second = log_dose(
        client, headers, med["id"], status="skipped", scheduled_for="2026-06-09T12:00:00Z"
    )
    assert second.status_code == 409
    assert second.json["dose_id"] == dose_id

    fixed = client.patch(
        f"/v1/doses/{dose_id}", json={"status": "skipped", "taken_at": None}, headers=headers
    )
    assert fixed.status_code == 200
    assert (fixed.json["status"], fixed.json["taken_at"]) == ("skipped", None)
    assert client.delete(f"/v1/doses/{dose_id}", headers=headers).status_code == 204
    assert client.delete(f"/v1/doses/{dose_id}", headers=headers).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "taken", "scheduled_for": "2026-06-09T12:00:00Z"}, "taken_at"),
        (
            {
                "status": "skipped",
                "scheduled_for": "2026-06-09T12:00:00Z",
                "taken_at": "2026-06-09T12:00:00Z",
            },
            "taken_at",
        ),
        (
            {
                "status": "taken",
                "scheduled_for": "2026-06-10T12:00:00Z",
                "taken_at": "2026-06-10T16:30:00Z",  # 30 minutes after the frozen now
            },
            "taken_at",
        ),
        ({"status": "skipped", "scheduled_for": "2026-06-09T12:30:00Z"}, "scheduled_for"),
        ({"status": "skipped", "scheduled_for": "2026-06-09T12:00:00"}, "scheduled_for"),
        ({"status": "skipped"}, "scheduled_for"),
        ({"status": "missed", "scheduled_for": "2026-06-09T12:00:00Z"}, "status"),
        (
            {"status": "skipped", "scheduled_for": "2026-06-09T12:00:00Z", "note": "x" * 2001},
            "note",
        ),
        (
            {"status": "skipped", "scheduled_for": "2026-06-09T12:00:00Z", "source": "system"},
            "source",
        ),
    ],
)
def test_dose_validation_names_the_field(
    client: FlaskClient, headers: dict[str, str], body: dict[str, Any], field: str
) -> None:
    med = create(client, headers).json
    response = log_dose(client, headers, med["id"], **body)
    assert response.status_code == 422
    assert field in response.json["errors"]


def test_dose_list_with_missed_doses_and_pages(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    med = create(client, headers).json
    other = create(client, headers, name="naltrexone", dose=50, unit="mg", times=["09:00"]).json
    log_dose(
        client,
        headers,
        med["id"],
        status="taken",
        scheduled_for="2026-06-08T12:00:00Z",
        taken_at="2026-06-08T12:05:00Z",
    )
    log_dose(client, headers, med["id"], status="skipped", scheduled_for="2026-06-09T00:00:00Z")

    listed = client.get(f"/v1/doses?medication_id={med['id']}", headers=headers).json
    assert [(d["scheduled_for"][:16], d["status"]) for d in listed["items"]] == [
        ("2026-06-10T12:00", "missed"),
        ("2026-06-10T00:00", "missed"),
        ("2026-06-09T12:00", "missed"),
        ("2026-06-09T00:00", "skipped"),
        ("2026-06-08T12:00", "taken"),
    ]
    assert all(d["source"] == "system" for d in listed["items"][:3])

    ranged = client.get(
        "/v1/doses?from=2026-06-09T00:00:00Z&to=2026-06-10T00:00:00Z", headers=headers
    ).json
    assert [(d["medication_id"], d["scheduled_for"][:16]) for d in ranged["items"]] == [
        (other["id"], "2026-06-09T13:00"),
        (med["id"], "2026-06-09T12:00"),
        (med["id"], "2026-06-09T00:00"),
    ]

    seen: list[str] = []
    cursor = None
    while True:
        url = "/v1/doses?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url, headers=headers).json
        seen.extend(d["id"] for d in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    everything = client.get("/v1/doses?limit=200", headers=headers).json["items"]
    assert seen == [d["id"] for d in everything]
    assert len(seen) == len(set(seen)) == 5 + 3  # naltrexone 09:00 on 06-08, 06-09, 06-10

    bad = client.get("/v1/doses?cursor=nonsense", headers=headers)
    assert bad.status_code == 422 and "cursor" in bad.json["errors"]


def test_adherence_route(client: FlaskClient, headers: dict[str, str]) -> None:
    med = create(client, headers).json
    log_dose(
        client,
        headers,
        med["id"],
        status="taken",
        scheduled_for="2026-06-08T12:00:00Z",
        taken_at="2026-06-08T12:05:00Z",
    )
    response = client.get(
        "/v1/adherence?from=2026-06-08T00:00:00-04:00&to=2026-06-11T00:00:00-04:00",
        headers=headers,
    )
    assert response.status_code == 200
    body = response.json
    assert set(body) == {"from", "to", "on_time_window_minutes", "medications", "overall"}
    assert body["from"] == "2026-06-08T00:00:00-04:00"
    assert body["on_time_window_minutes"] == 60
    (item,) = body["medications"]
    assert item["medication_id"] == med["id"] and item["name"] == BODY["name"]
    assert {k: item[k] for k in ("scheduled", "taken", "taken_on_time", "skipped", "missed")} == {
        "scheduled": 5,
        "taken": 1,
        "taken_on_time": 1,
        "skipped": 0,
        "missed": 4,
    }
    assert (item["dose_adherence"], item["pdc"]) == (0.2, 0.3333)
    assert body["overall"]["dose_adherence"] == 0.2
    assert (body["overall"]["pdc"], body["overall"]["pdc_days"]) == (None, None)

    default = client.get("/v1/adherence", headers=headers).json
    assert default["to"] == NOW.isoformat() and default["overall"]["scheduled"] == 5
    for query in (
        "from=2026-06-10T00:00:00Z&to=2026-06-09T00:00:00Z",
        "from=2020-01-01T00:00:00Z&to=2026-06-09T00:00:00Z",
    ):
        refused = client.get(f"/v1/adherence?{query}", headers=headers)
        assert refused.status_code == 422 and "to" in refused.json["errors"]
    naive = client.get("/v1/adherence?from=2026-06-08T00:00:00", headers=headers)
    assert naive.status_code == 422 and "from" in naive.json["errors"]


def test_moving_zone_reanchors_schedules_at_once(
    client: FlaskClient, headers: dict[str, str], session: Any
) -> None:
    from api.medications.models import Medication

    med = create(client, headers).json
    moved = client.patch("/v1/me", json={"timezone": "America/Los_Angeles"}, headers=headers)
    assert moved.status_code == 200
    stored = session.get(Medication, uuid.UUID(med["id"]), populate_existing=True)
    assert stored.schedule_timezone == "America/Los_Angeles"


def test_openapi_says_overall_pdc_is_always_null(client: FlaskClient) -> None:
    """A contract change for the apps (CHANGELOG): the document generated clients read says that
    overall PDC is never pooled, and defines per-medication PDC and dose adherence."""
    schemas = client.get("/openapi.json").json["components"]["schemas"]
    overall = schemas["Adherence"]["properties"]["overall"]
    ref = overall.get("$ref") or overall["allOf"][0]["$ref"]
    props = schemas[ref.rsplit("/", 1)[1]]["properties"]
    assert props["pdc"]["description"].startswith("Always null")
    assert props["pdc_days"]["description"].startswith("Always null")
    per_drug = schemas["MedicationAdherence"]["properties"]
    assert "days_covered / pdc_days" in per_drug["pdc"]["description"]
    assert "taken / scheduled" in per_drug["dose_adherence"]["description"]
