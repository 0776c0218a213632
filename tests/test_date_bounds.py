"""Every date and time a client can send is bounded (issue 11, items 6 and 7): the test walks every
date and date-time field of every request body and query in the served OpenAPI document and
proves that absurd values get a 422 naming the field; and rows stored before the bounds existed
(year 1000, 9999-12-31) cannot make a request answer 500 or run unbounded."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from marshmallow import Schema, fields
from sqlalchemy.orm import Session

from api.fields import AwareDateTime, BoundedDate, StrictSchema
from api.medications.models import Medication

ABSURD = {
    "date-time": [
        "0001-01-01T00:00:00+00:00",
        "0001-01-01T00:00:00+05:00",
        "1899-12-31T23:00:00+00:00",
        "9999-12-31T23:59:59-05:00",
        "2100-01-01T00:00:00+00:00",
    ],
    "date": ["0001-01-01", "1000-01-01", "1899-12-31", "2100-01-01", "9999-12-31"],
}


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        node = spec["components"]["schemas"][name]
    return node


def _date_fields(
    spec: dict[str, Any], node: dict[str, Any], path: tuple[Any, ...] = ()
) -> Iterator[tuple[tuple[Any, ...], str]]:
    """(path in the body, format) of every date/date-time a request body can carry."""
    node = _resolve(spec, node)
    if node.get("readOnly"):
        return
    if node.get("format") in ABSURD:
        yield path, node["format"]
    for name, child in node.get("properties", {}).items():
        yield from _date_fields(spec, child, (*path, name))
    if "items" in node:
        yield from _date_fields(spec, node["items"], (*path, 0))
    for key in ("allOf", "anyOf", "oneOf"):
        for child in node.get(key, []):
            yield from _date_fields(spec, child, path)


def _body_with(path: tuple[Any, ...], value: str) -> Any:
    out: Any = value
    for step in reversed(path):
        out = [out] if isinstance(step, int) else {step: out}
    return out


def _inputs(spec: dict[str, Any]) -> list[tuple[str, str, str, tuple[Any, ...], str, list[str]]]:
    """(method, path, location, field path, format, roles) for every date input."""
    found = []
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            roles = op.get("x-roles", [])
            for param in op.get("parameters", []):
                schema = _resolve(spec, param.get("schema", {}))
                if param["in"] == "query" and schema.get("format") in ABSURD:
                    found.append((method, path, "query", (param["name"],), schema["format"], roles))
            content = op.get("requestBody", {}).get("content", {}).get("application/json")
            if content:
                for field_path, fmt in _date_fields(spec, content["schema"]):
                    found.append((method, path, "json", field_path, fmt, roles))
    return found


@pytest.fixture
def headers_for(make_user: Callable[..., Any], auth_headers: Any) -> Callable[[list[str]], Any]:
    made: dict[str, dict[str, str]] = {}

    def build(roles: list[str]) -> dict[str, str]:
        if not roles:
            return {}
        role = "patient" if "patient" in roles else roles[0]
        if role not in made:
            made[role] = auth_headers(make_user(role=role))
        return made[role]

    return build


def test_the_walk_finds_the_date_inputs(client: FlaskClient) -> None:
    found = {(m, p, f[-1]) for m, p, _loc, f, _fmt, _r in _inputs(client.get("/openapi.json").json)}
    for expected in [
        ("post", "/v1/medications", "start_date"),
        ("patch", "/v1/medications/{medication_id}", "end_date"),
        ("post", "/v1/medications/{medication_id}/doses", "scheduled_for"),
        ("post", "/v1/checkins", "recorded_at"),
        ("get", "/v1/adherence", "from"),
        ("post", "/v1/consents", "expires_at"),
    ]:
        assert expected in found, expected


def test_every_date_input_refuses_absurd_values_naming_the_field(
    client: FlaskClient, headers_for: Callable[[list[str]], dict[str, str]]
) -> None:
    spec = client.get("/openapi.json").json
    inputs = _inputs(spec)
    assert len(inputs) >= 20
    for method, path, location, field_path, fmt, roles in inputs:
        url = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
        name = ".".join(str(p) for p in field_path)
        for value in ABSURD[fmt]:
            kwargs: dict[str, Any] = {"headers": headers_for(roles)}
            if location == "query":
                kwargs["query_string"] = {field_path[0]: value}
            else:
                kwargs["json"] = _body_with(field_path, value)
            response = client.open(url, method=method.upper(), **kwargs)
            where = f"{method.upper()} {path} {name}={value}"
            assert response.status_code == 422, (where, response.status_code)
            assert response.mimetype == "application/problem+json", where
            assert name in response.json["errors"], (where, response.json["errors"])


def _load_fields(schema: Schema, seen: set[int]) -> Iterator[tuple[str, fields.Field]]:
    if id(schema) in seen:
        return
    seen.add(id(schema))
    for name, field in schema.load_fields.items():
        yield f"{type(schema).__name__}.{name}", field
        inner = field.inner if isinstance(field, fields.List) else field
        if isinstance(inner, fields.Nested):
            yield from _load_fields(inner.schema, seen)


def test_input_schemas_use_only_the_bounded_date_fields(app: Flask) -> None:
    # Beside the document walk: a date field added to an input schema later must be one of ours.
    from marshmallow import class_registry

    seen: set[int] = set()
    checked = 0
    for classes in class_registry._registry.values():
        for cls in classes:
            # Input schemas are StrictSchemas (unknown fields refused); output ones are not.
            if not cls.__module__.startswith("api.") or not issubclass(cls, StrictSchema):
                continue
            for where, field in _load_fields(cls(), seen):
                inner = field.inner if isinstance(field, fields.List) else field
                if isinstance(inner, fields.Date | fields.DateTime):
                    assert isinstance(inner, AwareDateTime | BoundedDate), where
                    checked += 1
    assert checked >= 20


@pytest.mark.parametrize(
    ("start", "end"),
    [(date(1000, 1, 1), None), (date(1, 1, 1), None), (date(2026, 1, 1), date(9999, 12, 31))],
)
def test_stored_absurd_dates_cannot_break_or_pin_an_account(
    client: FlaskClient,
    session: Session,
    make_patient: Callable[..., Any],
    auth_headers: Any,
    start: date,
    end: date | None,
) -> None:
    # Rows written before the bounds existed: as if stored by SQL.
    patient = make_patient(timezone="Asia/Tokyo")
    headers = auth_headers(patient)
    medication = Medication(
        user_id=patient.id,
        name="Regimen",
        dose=8.0,
        unit="mg",
        times=[f"{h:02d}:00" for h in range(24)],
        days_of_week=None,
        start_date=start,
        end_date=end,
        as_needed=False,
        schedule_timezone="Asia/Tokyo",
        created_at=datetime.now(UTC) - timedelta(days=1),
        updated_at=datetime.now(UTC) - timedelta(days=1),
    )
    session.add(medication)
    session.commit()
    began = time.monotonic()
    for method, url, body in [
        ("GET", "/v1/doses", None),
        ("GET", "/v1/adherence", None),
        ("GET", f"/v1/medications/{medication.id}", None),
        ("PATCH", f"/v1/medications/{medication.id}", {"times": ["08:00", "20:00"]}),
        ("PATCH", "/v1/me", {"timezone": "America/New_York"}),
        ("GET", "/v1/doses", None),
        ("GET", "/v1/adherence", None),
        ("PATCH", "/v1/me", {"timezone": "Pacific/Kiritimati"}),
    ]:
        response = client.open(url, method=method, json=body, headers=headers)
        assert response.status_code == 200, (method, url, response.status_code)
    # Bounded: a quarter of missed doses at most, not centuries (that held a worker 30 s). The
    # row count is the deterministic proof; the clock only catches a runaway on a shared machine.
    assert time.monotonic() - began < 120
    from api.medications.models import Dose

    stored = session.query(Dose).filter(Dose.medication_id == medication.id).count()
    assert stored <= 24 * 93
