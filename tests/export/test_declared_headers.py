"""The headers a client acts on are declared where they are sent (issue 13 item 2): every answer
below goes through the strict client (tests/openapi_strict.py), which fails on a WATCHED header the
operation's answer does not declare, and on a declared required header that is missing."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from api.auth.models import User
from tests.openapi_strict import StrictClient, strict_client

ASYNC = {"Prefer": "respond-async"}


def _path(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def test_bulk_export_headers_are_declared_at_every_step(
    strict_client: StrictClient,
    make_admin: Callable[..., User],
    make_patient: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
    run_export_job: Callable[..., Any],
    export_dir: Path,
) -> None:
    make_patient()
    admin = auth_headers(make_admin())
    keyed = {**admin, **ASYNC, "Idempotency-Key": str(uuid.uuid4())}
    started = strict_client.post("/fhir/Patient/$export", headers=keyed)
    assert started.status_code == 202 and "Content-Location" in started.headers
    replayed = strict_client.post("/fhir/Patient/$export", headers=keyed)
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.headers["Content-Location"] == started.headers["Content-Location"]
    status_url = _path(started.headers["Content-Location"])
    pending = strict_client.get(status_url, headers=admin)
    assert pending.status_code == 202
    assert {"X-Progress", "Retry-After"} <= set(pending.headers.keys())
    run_export_job()
    done = strict_client.get(status_url, headers=admin)
    assert done.status_code == 200 and "Expires" in done.headers
    for output in done.json["output"]:
        file = strict_client.get(_path(output["url"]), headers=admin)
        assert file.status_code == 200
        file.close()


def test_own_export_crisis_lines_and_replays_declare_their_headers(
    strict_client: StrictClient, patient_headers: dict[str, str]
) -> None:
    for url in ("/v1/export", "/v1/export?format=csv", "/v1/export.zip"):
        answer = strict_client.get(url, headers=patient_headers)
        assert answer.status_code == 200 and "attachment" in answer.headers["Content-Disposition"]
        answer.close()
    lines = strict_client.get("/v1/crisis-resources")
    assert lines.status_code == 200 and lines.headers["ETag"]
    cached = strict_client.get(
        "/v1/crisis-resources", headers={"If-None-Match": lines.headers["ETag"]}
    )
    assert cached.status_code == 304
    keyed = {**patient_headers, "Idempotency-Key": str(uuid.uuid4())}
    body = {"recorded_at": "2026-03-07T21:05:00-05:00", "craving": 2}
    assert strict_client.post("/v1/checkins", json=body, headers=keyed).status_code == 201
    again = strict_client.post("/v1/checkins", json=body, headers=keyed)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"


@pytest.mark.parametrize("header", ["ETag", "Content-Location", "Retry-After", "X-Progress"])
def test_the_strict_client_refuses_an_undeclared_header(
    app: Flask, client: FlaskClient, header: str
) -> None:
    checker = strict_client(app).document
    with pytest.raises(AssertionError, match=f"sends {header}"):
        checker.check("GET", "/v1/instruments", 200, "application/json", b"", None, {header: "1"})
