"""Probes, request ids, the error format for each failure class, metrics, the OpenAPI document."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.exc import OperationalError

from api import create_app
from api.db import utcnow
from api.ops import services as ops_services
from api.security import issue_access_token
from api.version import __version__
from tests.conftest import TestConfig


def test_healthz_and_readyz(client: FlaskClient) -> None:
    assert client.get("/healthz").json == {"status": "ok", "version": __version__}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json["database"] == "ok"
    assert ready.json["scheduler"]["status"] == "unknown"


def test_readyz_reports_a_stale_scheduler(
    client: FlaskClient, session: Any, now: Any, app: Any
) -> None:
    stale = now - timedelta(seconds=app.config["SCHEDULER_STALE_AFTER"] + 5)
    ops_services.beat(session, instance="sched-1", now=stale, is_leader=True)
    session.commit()
    assert client.get("/readyz").json["scheduler"]["status"] == "stale"
    ops_services.beat(session, instance="sched-1", now=now, is_leader=True)
    session.commit()
    assert client.get("/readyz").json["scheduler"]["status"] == "ok"


def test_request_id_is_echoed_when_well_formed(client: FlaskClient) -> None:
    assert (
        client.get("/healthz", headers={"X-Request-ID": "abc-12345678"}).headers["X-Request-ID"]
        == "abc-12345678"
    )
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id <script>"}).headers[
        "X-Request-ID"
    ]
    assert generated != "bad id <script>" and len(generated) == 36


def _is_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.json
    assert {"type", "title", "status", "detail", "request_id"} <= set(body)
    assert body["status"] == status
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


def test_every_error_class_is_a_problem(client: FlaskClient, app: Any) -> None:
    _is_problem(
        client.post("/v1/auth/register", data="{not json", content_type="application/json"), 400
    )
    _is_problem(client.get("/v1/me"), 401)
    _is_problem(client.get("/v1/nothing-here"), 404)
    wrong_method = _is_problem(client.delete("/v1/auth/token"), 405)
    assert wrong_method  # and the Allow header names what is allowed:
    assert "POST" in client.delete("/v1/auth/token").headers["Allow"]
    big = "x" * (app.config["MAX_CONTENT_LENGTH"] + 1)
    _is_problem(client.post("/v1/auth/register", data=big, content_type="application/json"), 413)
    _is_problem(
        client.post(
            "/v1/auth/register", data="email=a", content_type="application/x-www-form-urlencoded"
        ),
        415,
    )
    body = _is_problem(client.post("/v1/auth/register", json={"email": 5}), 422)
    assert "email" in body["errors"]
    wrong_types = _is_problem(client.post("/v1/auth/register", json=["a", "list"]), 422)
    assert wrong_types["errors"]


def test_unexpected_error_is_a_generic_500(app: Any, client: FlaskClient, monkeypatch: Any) -> None:
    def boom() -> Any:
        raise RuntimeError("secret-value SELECT * FROM users")

    monkeypatch.setitem(app.view_functions, "ops.get_health", boom)
    response = client.get("/healthz")
    body = _is_problem(response, 500)
    text = response.get_data(as_text=True)
    assert "secret-value" not in text and "SELECT" not in text and "Traceback" not in text
    assert body["detail"]


def test_metrics_exposes_request_counts(
    app: Any, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "METRICS_TOKEN", "scraper-secret-123")
    client.get("/healthz")
    response = client.get("/metrics", headers={"Authorization": "Bearer scraper-secret-123"})
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert 'waymark_http_requests_total{method="GET",route="/healthz",status="200"}' in text


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-token", "Basic scraper-secret-123", "Bearer "]
)
def test_metrics_are_only_for_the_scraper(
    app: Any, client: FlaskClient, monkeypatch: pytest.MonkeyPatch, authorization: str | None
) -> None:
    monkeypatch.setitem(app.config, "METRICS_TOKEN", "scraper-secret-123")
    headers = {"Authorization": authorization} if authorization else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert "waymark_http_requests_total" not in response.get_data(as_text=True)


def test_metrics_are_not_served_without_a_token_setting(client: FlaskClient) -> None:
    client.get("/healthz")
    response = client.get("/metrics")
    assert response.status_code == 404
    assert "waymark_http_requests_total" not in response.get_data(as_text=True)


def test_openapi_documents_every_route_flask_serves(app: Any, client: FlaskClient) -> None:
    spec = client.get("/openapi.json").json
    documented = {
        (path, method.upper())
        for path, ops in spec["paths"].items()
        for method in ops
        if method in {"get", "post", "put", "patch", "delete"}
    }
    undocumented_by_design = {
        "/metrics",
        "/openapi.json",
        "/docs",
        "/docs/<path:filename>",
        "/docs/assets/<path:filename>",  # Swagger UI's own files (api.openapi)
        "/static/<path:filename>",
        # OAuth 2.0 (SMART Backend Services): RFC 6749 answers, not problem+json; described by
        # /fhir/metadata and the smart-configuration itself (api/smart/routes.py).
        "/.well-known/smart-configuration",
        "/fhir/.well-known/smart-configuration",
        "/oauth/token",
    }
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.rule in undocumented_by_design:
            continue
        if rule.endpoint.startswith(("clinic.", "inbox_link.")):
            continue  # the dashboard's HTML pages: tests/test_authorization_matrix.py walks them
        path = rule.rule.replace("<", "{").replace(">", "}")
        path = __import__("re").sub(r"\{[^:}]+:([^}]+)\}", r"{\1}", path)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            served.add((path, method))
    assert served == documented
    assert "bearerAuth" in spec["components"]["securitySchemes"]
    me = spec["paths"]["/v1/me"]["get"]
    assert me["security"] == [{"bearerAuth": []}]
    assert "401" in me["responses"]


@pytest.fixture
def app_without_database(backend: str, tmp_path: Any) -> Any:
    """An app whose database cannot be reached (a missing directory; a closed port)."""
    url = {
        "sqlite": f"sqlite:///{tmp_path / 'missing-dir' / 'db.sqlite3'}",
        "postgresql": "postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=2",
    }[backend]
    application = create_app(TestConfig(url))
    yield application
    application.extensions["db"].engine.dispose()


def test_database_outage(app_without_database: Any) -> None:
    client = app_without_database.test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.headers["Content-Type"] == "application/json"
    assert ready.json == {"status": "unavailable", "database": "unreachable", "scheduler": {}}
    assert client.get("/healthz").status_code == 200  # the process itself is fine

    with app_without_database.test_request_context():
        token = issue_access_token(
            user_id=uuid.uuid4(), role="patient", session_id=uuid.uuid4(), now=utcnow(), ttl=60
        )
    me = client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    body = _is_problem(me, 503)
    assert me.headers["Retry-After"] == "5"
    text = me.get_data(as_text=True)
    assert "SELECT" not in text and "sqlite" not in text.lower() and "127.0.0.1" not in text
    assert body["detail"] == "The database is not available right now. Try again shortly."


def test_a_database_error_is_a_503_without_sql(
    app: Any, client: FlaskClient, monkeypatch: Any
) -> None:
    def locked() -> Any:
        raise OperationalError("UPDATE users SET note='secret-value'", {"p": "x"}, Exception())

    monkeypatch.setitem(app.view_functions, "ops.get_health", locked)
    response = client.get("/healthz")
    _is_problem(response, 503)
    assert "secret-value" not in response.get_data(as_text=True)
    assert "UPDATE" not in response.get_data(as_text=True)


def test_body_rules_hold_for_chunked_and_undecodable_bodies(client: FlaskClient) -> None:
    chunked = client.post(
        "/v1/auth/register",
        input_stream=io.BytesIO(b"email=a"),
        headers={"Transfer-Encoding": "chunked", "Content-Type": "text/plain"},
    )
    _is_problem(chunked, 415)
    undecodable = client.post(
        "/v1/auth/register", data=b'{"email": "\xff\xfe"}', content_type="application/json"
    )
    _is_problem(undecodable, 400)
    assert undecodable.json["detail"] == "The request body is not valid JSON."
    wrong_shape = client.post("/v1/auth/register", json="just a string")
    _is_problem(wrong_shape, 422)


@pytest.mark.parametrize(
    ("supplied", "kept"),
    [
        ("abcdefgh", True),  # 8: the shortest kept
        ("abcdefg", False),
        ("a" * 128, True),
        ("a" * 129, False),
        ("req:2026-03-08.7_x-y", True),
        ("with space 12345", False),
        ("ünïcødé-12345", False),
    ],
)
def test_request_id_rules(client: FlaskClient, supplied: str, kept: bool) -> None:
    response = client.get("/v1/me", headers={"X-Request-ID": supplied})
    echoed = response.headers["X-Request-ID"]
    assert (echoed == supplied) is kept
    assert response.json["request_id"] == echoed  # the problem body carries the same id
    if not kept:
        assert str(uuid.UUID(echoed)) == echoed


def test_unknown_query_parameters_are_refused(client: FlaskClient, patient_headers: Any) -> None:
    # A typo such as ?form= must not silently answer the default period.
    response = client.get("/v1/counseling/attendance?form=2026-01-01", headers=patient_headers)
    body = _is_problem(response, 422)
    assert body["errors"] == {"form": ["Unknown field."]}


def test_version_is_the_release_in_pyproject_the_changelog_and_the_document(
    client: FlaskClient,
) -> None:
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert project["version"] == __version__
    assert f"## {__version__}" in (root / "CHANGELOG.md").read_text()
    assert client.get("/openapi.json").json["info"]["version"] == __version__
    assert (root / "LICENSE").read_text().lstrip().startswith("Apache License")
