"""Hostile input shapes get a clear 4xx problem, never a 500: crafted cursors on every paginated
list and on sync, JSON nested thousands deep, integers of thousands of digits, long URLs and
headers (issue 11, item 8)."""

from __future__ import annotations

import base64
import re
import uuid
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

Headers = dict[str, str]


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


CRAFTED = [
    '["2026-01-01T00:00:00+00:00", 1]',
    "[1e309]",
    "[1e309, 1]",
    f'["2026-01-01T00:00:00", "{uuid.uuid4()}"]',
    f'["0001-01-01T00:00:00+14:00", "{uuid.uuid4()}"]',
    '["2026-01-01T00:00:00+00:00", {"a": 1}]',
    # As long as fits a URL we take (2048 characters; longer is a 414, tested below).
    '["' + "9" * 1000 + '"]',
    "[" + "9" * 1000 + "]",
    "[" * 700 + "]" * 700,
    '"just a string"',
]


def _paginated_routes(client: FlaskClient) -> list[tuple[str, str, set[str]]]:
    """(path template, cursor parameter, roles) of every GET taking a cursor, from the document."""
    spec = client.get("/openapi.json").json
    found = []
    for path, operations in spec["paths"].items():
        get = operations.get("get")
        if not get:
            continue
        names = {p["name"] for p in get.get("parameters", []) if p["in"] == "query"}
        for name in ("cursor", "since"):
            if name in names:
                found.append((path, name, set(get.get("x-roles", []))))
    return found


def test_every_cursor_route_is_found(client: FlaskClient) -> None:
    paths = {path for path, _name, _roles in _paginated_routes(client)}
    # A guard on the walk below: it must see the lists and sync, not an empty set.
    assert {"/v1/checkins", "/v1/doses", "/v1/sync", "/v1/clinician/alerts"} <= paths
    assert len(paths) >= 15


@pytest.mark.parametrize("raw", CRAFTED)
def test_crafted_cursors_are_422_on_every_paginated_list(
    client: FlaskClient,
    make_user: Any,
    auth_headers: Any,
    raw: str,
) -> None:
    roles = ("patient", "clinician", "admin")
    headers = {role: auth_headers(make_user(role=role)) for role in roles}
    cursor = _cursor(raw)
    for path, name, roles in _paginated_routes(client):
        role = "patient" if "patient" in roles else sorted(roles)[0]
        url = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
        response = client.get(url, query_string={name: cursor}, headers=headers[role])
        # A path naming someone else's patient may be 404 before the cursor is read; never 5xx.
        assert response.status_code in (404, 422), (path, response.status_code)
        assert response.mimetype == "application/problem+json"
        if response.status_code == 422:
            assert name in response.json["errors"], path


DEEP = [5_000, 100_000]


@pytest.mark.parametrize("depth", DEEP)
@pytest.mark.parametrize("keyed", [False, True])
def test_deeply_nested_json_is_a_400_even_unauthenticated(
    client: FlaskClient, depth: int, keyed: bool
) -> None:
    body = '{"email": ' + "[" * depth + "]" * depth + "}"
    headers = {"Idempotency-Key": f"deep-{depth}"} if keyed else {}
    response = client.post(
        "/v1/auth/register", data=body, content_type="application/json", headers=headers
    )
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert "nest" in response.json["detail"]


@pytest.mark.parametrize("digits", [1001, 4000, 5000])
def test_huge_integers_are_a_400(
    client: FlaskClient, patient_headers: Headers, digits: int
) -> None:
    number = "1" * digits
    for url, headers in (("/v1/auth/register", {}), ("/v1/checkins", patient_headers)):
        response = client.post(
            url, data='{"email": ' + number + "}", content_type="application/json", headers=headers
        )
        assert response.status_code == 400, (url, response.status_code)
        assert response.mimetype == "application/problem+json"
        assert "digits" in response.json["detail"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e309"])
def test_non_finite_numbers_are_a_400(client: FlaskClient, literal: str) -> None:
    response = client.post(
        "/v1/auth/register", data='{"email": ' + literal + "}", content_type="application/json"
    )
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"


def test_a_long_url_is_a_414_problem(client: FlaskClient) -> None:
    response = client.get("/v1/checkins?x=" + "a" * 3000)
    assert response.status_code == 414
    assert response.mimetype == "application/problem+json"


def test_a_long_header_is_a_431_problem(client: FlaskClient) -> None:
    response = client.get("/healthz", headers={"X-Filler": "a" * 5000})
    assert response.status_code == 431
    assert response.mimetype == "application/problem+json"


def test_gunicorn_limits_sit_above_the_apps(app: Flask) -> None:
    from api import MAX_HEADER_LENGTH, MAX_URL_LENGTH
    from tests.test_gunicorn import ROOT

    settings: dict[str, Any] = {}
    text = (ROOT / "gunicorn.conf.py").read_text()
    for name in ("limit_request_line", "limit_request_field_size"):
        match = re.search(rf"^{name} = (\d+)$", text, re.MULTILINE)
        assert match, name
        settings[name] = int(match.group(1))
    assert settings["limit_request_line"] > MAX_URL_LENGTH
    assert settings["limit_request_field_size"] > MAX_HEADER_LENGTH
