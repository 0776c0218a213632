"""Probes, request ids, the error format for each failure class, metrics, the OpenAPI document."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask.testing import FlaskClient

from api.ops import services as ops_services


def test_healthz_and_readyz(client: FlaskClient) -> None:
    assert client.get("/healthz").json == {"status": "ok"}
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


def test_metrics_exposes_request_counts(client: FlaskClient) -> None:
    client.get("/healthz")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'waymark_http_requests_total{method="GET",route="/healthz",status="200"}' in text


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
        "/static/<path:filename>",
    }
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.rule in undocumented_by_design:
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        path = __import__("re").sub(r"\{[^:}]+:([^}]+)\}", r"{\1}", path)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            served.add((path, method))
    assert served == documented
    assert "bearerAuth" in spec["components"]["securitySchemes"]
    me = spec["paths"]["/v1/me"]["get"]
    assert me["security"] == [{"bearerAuth": []}]
    assert "401" in me["responses"]
