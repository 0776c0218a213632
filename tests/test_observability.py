"""Logs: one JSON object a line, with request id, user id and route, and never a secret or a value
a person typed (contract: Errors; brief: Logs)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog
import time_machine
from flask import Flask
from flask.testing import FlaskClient

from api import observability

CANARY_PASSWORD = "canary-Pa55word-7f3e9b"
CANARY_NEW_PASSWORD = "canary-NewPa55-41d07c"
CANARY_EMAIL = "canary.mail.5e2a@example.test"
CANARY_NOTE = "canary-note: felt awful at 3am, used again"


def _lines(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> list[str]:
    out, err = capsys.readouterr()
    return [*out.splitlines(), *err.splitlines(), *caplog.text.splitlines()]


def _events(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines if line.startswith("{")]


def test_no_secret_or_typed_value_reaches_the_logs(
    app: Flask,
    client: FlaskClient,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)  # every stdlib logger too, not just structlog's stdout
    body = {
        "email": CANARY_EMAIL,
        "password": CANARY_PASSWORD,
        "display_name": CANARY_NOTE,
        "timezone": "Europe/Lisbon",
    }
    assert client.post("/v1/auth/register", json=body).status_code == 202
    assert client.post("/v1/auth/register", json=body).status_code == 202  # the owner is emailed
    bad = {**body, "password": "short", "timezone": CANARY_NOTE, "role": CANARY_NOTE}
    assert client.post("/v1/auth/register", json=bad).status_code == 422
    wrong = {"email": CANARY_EMAIL, "password": CANARY_NOTE}
    assert client.post("/v1/auth/token", json=wrong).status_code == 401
    unknown = {"email": "nobody-" + CANARY_EMAIL, "password": CANARY_PASSWORD}
    assert client.post("/v1/auth/token", json=unknown).status_code == 401

    pair = client.post("/v1/auth/token", json={"email": CANARY_EMAIL, "password": CANARY_PASSWORD})
    assert pair.status_code == 200
    access, refresh = pair.json["access_token"], pair.json["refresh_token"]
    headers = {"Authorization": f"Bearer {access}"}
    assert client.get(f"/v1/me?note={CANARY_NOTE}", headers=headers).status_code == 200
    patched = client.patch("/v1/me", json={"display_name": CANARY_NOTE + "!"}, headers=headers)
    assert patched.status_code == 200
    bogus = {"Authorization": f"Bearer {access}x"}
    assert client.get("/v1/me", headers=bogus).status_code == 401

    rotated = client.post("/v1/auth/refresh", json={"refresh_token": refresh})
    assert rotated.status_code == 200
    # Presented again after the grace window (REFRESH_REUSE_GRACE): the reuse path logs too.
    with time_machine.travel(datetime.now(UTC) + timedelta(seconds=60)):
        assert client.post("/v1/auth/refresh", json={"refresh_token": refresh}).status_code == 401
    new_refresh = rotated.json["refresh_token"]
    assert client.post("/v1/auth/logout", json={"refresh_token": new_refresh}).status_code == 204

    pair2 = client.post("/v1/auth/token", json={"email": CANARY_EMAIL, "password": CANARY_PASSWORD})
    headers2 = {"Authorization": f"Bearer {pair2.json['access_token']}"}
    change = {"current_password": CANARY_PASSWORD, "new_password": CANARY_NEW_PASSWORD}
    assert client.post("/v1/me/password", json=change, headers=headers2).status_code == 204

    # An unexpected error whose message quotes what was sent: logged by type and place only.
    def boom() -> Any:
        raise RuntimeError(f"INSERT failed for {CANARY_EMAIL}: {CANARY_NOTE}")

    monkeypatch.setitem(app.view_functions, "ops.get_health", boom)
    assert client.get("/healthz").status_code == 500

    lines = _lines(capsys, caplog)
    assert len(_events(lines)) >= 15  # the capture works: every request logged a line
    canaries = [
        CANARY_PASSWORD,
        CANARY_NEW_PASSWORD,
        CANARY_EMAIL,
        CANARY_EMAIL.split("@", maxsplit=1)[0],
        "canary-note",
        access,
        access.rsplit(".", 1)[1],  # the signature alone
        pair2.json["access_token"],
        refresh,
        new_refresh,
        pair2.json["refresh_token"],
    ]
    for line in lines:
        for canary in canaries:
            assert canary not in line, f"{canary[:12]}... leaked into a log line: {line[:200]}"


def test_log_lines_carry_request_id_user_id_and_route(
    client: FlaskClient,
    patient: Any,
    patient_headers: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    capsys.readouterr()
    me = client.get("/v1/me", headers={**patient_headers, "X-Request-ID": "req-canary-0001"})
    anonymous = client.get("/healthz")
    events = _events(_lines(capsys, caplog))
    requests = [e for e in events if e["event"] == "http.request"]
    signed_in, public = requests[-2], requests[-1]

    assert signed_in["request_id"] == "req-canary-0001" == me.headers["X-Request-ID"]
    assert signed_in["user_id"] == str(patient.id)
    assert signed_in["route"] == "/v1/me"
    assert signed_in["method"] == "GET" and signed_in["status"] == 200
    assert signed_in["level"] == "info" and signed_in["timestamp"].endswith("Z")

    assert public["request_id"] == anonymous.headers["X-Request-ID"]
    assert public["route"] == "/healthz"
    assert "user_id" not in public  # nothing carried over from the previous request


def test_service_events_inside_a_request_carry_its_context(
    client: FlaskClient, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    body = {
        "email": "ctx@example.test",
        "password": "correct horse battery",
        "display_name": "Ctx",
        "timezone": "UTC",
    }
    created = client.post("/v1/auth/register", json=body)
    events = _events(_lines(capsys, caplog))
    [user_created] = [e for e in events if e["event"] == "user.created"]
    assert user_created["request_id"] == created.headers["X-Request-ID"]
    assert user_created["route"] == "/v1/auth/register"
    assert created.status_code == 202 and user_created["user_id"]


def test_an_unmatched_route_is_logged_without_its_path(
    client: FlaskClient, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    client.get("/v1/users/" + CANARY_EMAIL)
    lines = _lines(capsys, caplog)
    assert not any(CANARY_EMAIL in line for line in lines)
    [event] = [e for e in _events(lines) if e["event"] == "http.request"]
    assert event["status"] == 404 and event["route"] is None


def _raise_with_a_value() -> None:
    password = CANARY_PASSWORD  # a local, as in a real frame
    raise ValueError(f"bad value {password}")


def test_library_log_records_are_the_same_json_lines() -> None:
    formatter = observability.json_formatter()
    structlog.contextvars.bind_contextvars(request_id="req-ctx-00000001")
    try:
        record = logging.LogRecord(
            "apscheduler.scheduler", logging.WARNING, __file__, 1, "Run time missed", None, None
        )
        event = json.loads(formatter.format(record))
    finally:
        structlog.contextvars.clear_contextvars()
    assert event["event"] == "Run time missed"
    assert event["logger"] == "apscheduler.scheduler"
    assert event["level"] == "warning"
    assert event["request_id"] == "req-ctx-00000001"
    assert event["timestamp"].endswith("Z")


def test_exceptions_are_logged_by_type_and_place_never_by_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    try:
        _raise_with_a_value()
    except ValueError:
        structlog.get_logger("test").exception("job.failed")
        record = logging.LogRecord(
            "sqlalchemy.pool", logging.ERROR, __file__, 1, "pool error", None, sys.exc_info()
        )
        library = json.loads(observability.json_formatter().format(record))
    ours = json.loads(capsys.readouterr().out.splitlines()[-1])
    for event in (ours, library):
        assert event["error_type"] == "ValueError"
        assert any(frame.endswith(":_raise_with_a_value") for frame in event["frames"])
        assert CANARY_PASSWORD not in json.dumps(event)
        assert "exception" not in event and "exc_info" not in event


def test_apscheduler_per_run_lines_are_held_back_unless_debugging() -> None:
    import logging

    from api.observability import configure_logging

    runs = logging.getLogger("apscheduler.executors.default")  # "Running job ..." lines
    try:
        configure_logging("INFO")
        assert not runs.isEnabledFor(logging.INFO)
        assert runs.isEnabledFor(logging.WARNING)  # a missed or failed run still shows
        configure_logging("DEBUG")
        assert runs.isEnabledFor(logging.INFO)
    finally:
        configure_logging("INFO")
