"""Every response is no-store and nosniff; HTML also gets a strict CSP and may not be framed
(issue 11, item 15). Walks every route Flask serves, with every method it takes."""

from __future__ import annotations

import re
import uuid
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from api.headers import PUBLIC_CACHEABLE, STRICT_CSP
from tests.consenting import sign


def _public(response: Any) -> bool:
    """The answers api.headers.PUBLIC_CACHEABLE lets any cache keep."""
    path = response.request.path
    listed = path == "/v1/crisis-resources" or path.startswith("/docs/assets/")
    return (
        listed and response.request.method in ("GET", "HEAD") and response.status_code in (200, 304)
    )


def _fill(rule: str) -> str:
    def value(match: re.Match[str]) -> str:
        converter = match.group(1) or ""
        return str(uuid.uuid4()) if converter.startswith("uuid") else "Patient"

    return re.sub(r"<(?:(\w+):)?\w+>", value, rule)


def _check(response: Any, where: str) -> None:
    if _public(response):
        # Public, identical for everyone, no sign-in (crisis lines, Swagger UI's files).
        assert response.headers["Cache-Control"].startswith("public"), where
    else:
        assert "no-store" in response.headers.get("Cache-Control", ""), where
    assert response.headers.get("X-Content-Type-Options") == "nosniff", where
    if response.mimetype == "text/html":
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"], where
        assert response.headers["X-Frame-Options"] == "DENY", where


def test_every_route_and_method_answers_with_the_headers(
    app: Flask, client: FlaskClient, patient_headers: dict[str, str]
) -> None:
    seen = 0
    for rule in app.url_map.iter_rules():
        path = _fill(rule.rule)
        for method in sorted(rule.methods or ()):
            for headers in ({}, patient_headers):
                response = client.open(path, method=method, headers=headers, json={})
                _check(response, f"{method} {rule.rule}")
                seen += 1
    assert seen > 100
    # Unknown paths and methods too.
    _check(client.get("/no-such-path"), "404")
    _check(client.open("/healthz", method="BREW"), "405")


def test_the_html_summary_gets_the_strict_policy(
    client: FlaskClient,
    session: Session,
    make_patient: Any,
    make_clinician: Any,
    auth_headers: Any,
) -> None:
    patient, clinician = make_patient(), make_clinician()
    sign(session, patient=patient, clinician=clinician, categories=["symptoms"])
    response = client.get(
        f"/v1/clinician/patients/{patient.id}/summary?format=html",
        headers=auth_headers(clinician),
    )
    assert response.status_code == 200, response.json
    assert response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == STRICT_CSP
    assert "script-src" not in STRICT_CSP and "default-src 'none'" in STRICT_CSP
    _check(response, "summary html")


def test_docs_page_may_load_swagger_but_not_be_framed(client: FlaskClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    _check(response, "/docs")
    assert "connect-src 'self'" in response.headers["Content-Security-Policy"]


def test_only_public_content_may_be_cached(app: Flask, client: FlaskClient) -> None:
    assert {"crisis.list_crisis_resources", "docs_asset"} == PUBLIC_CACHEABLE
    crisis = client.get("/v1/crisis-resources")
    assert crisis.headers["Cache-Control"] == "public, max-age=3600"
    asset = client.get("/docs/assets/swagger-ui.css")
    asset.close()  # a file response: its handle is closed with it
    assert asset.status_code == 200
    assert "public" in asset.headers["Cache-Control"]
    # A public endpoint's error is no-store like any other answer.
    assert "no-store" in client.get("/docs/assets/no-such-file").headers["Cache-Control"]
