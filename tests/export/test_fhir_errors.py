"""Every error under /fhir is an R4 OperationOutcome (issue 14, "Done when"): a walk over every
route the app registers under /fhir (read from the URL map, so a route added later is walked
too) with bad input of every kind, and over paths that match no route."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import Rule

from api.auth.models import User
from api.export import services as export_services

# R4 IssueType (required binding of OperationOutcome.issue.code).
ISSUE_TYPES = {
    "invalid", "structure", "required", "value", "invariant", "security", "login", "unknown",
    "expired", "forbidden", "suppressed", "processing", "not-supported", "duplicate",
    "multiple-matches", "not-found", "deleted", "too-long", "code-invalid", "extension",
    "too-costly", "business-rule", "conflict", "transient", "lock-error", "no-store", "exception",
    "timeout", "incomplete", "throttled", "informational",
}  # fmt: skip
ASYNC = {"Prefer": "respond-async"}
FHIR_JSON = {"Content-Type": "application/fhir+json"}
# Readable without a token: they hold no patient data.
PUBLIC = {
    "fhir.read_metadata",
    "fhir.read_code_system",
    "fhir.read_questionnaire",
    "smart.smart_configuration",
}


def _fhir_rules(app: Flask) -> list[Rule]:
    return sorted(
        (r for r in app.url_map.iter_rules() if r.rule.startswith("/fhir/")),
        key=lambda r: (r.rule, r.endpoint),
    )


def _fill(rule: Rule, value: Callable[[str, str], str]) -> str:
    """The rule's path with each <converter:name> replaced by value(converter, name)."""

    def one(match: re.Match[str]) -> str:
        converter, _, name = match.group(1).rpartition(":")
        return value(converter or "default", name)

    return re.sub(r"<([^>]+)>", one, rule.rule)


def _plausible(converter: str, name: str) -> str:
    return str(uuid.uuid4()) if converter == "uuid" else {"rtype": "Patient"}.get(name, "nope")


def _malformed(converter: str, name: str) -> str:
    return "not-a-uuid" if converter == "uuid" else "no such thing"


def _bad_requests(rule: Rule, clinician: dict[str, str], patient: dict[str, str]) -> Iterator[Any]:
    """(method, path, headers, body, query) tuples, each of which must fail."""
    path = _fill(rule, _plausible)
    methods = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
    for method in methods:
        if rule.endpoint not in PUBLIC:
            yield method, path, ASYNC, None, None  # no token
            yield method, path, {**ASYNC, "Authorization": "Bearer not-a-token"}, None, None
            yield method, path, {**ASYNC, "Authorization": "Basic Zm9vOmJhcg=="}, None, None
        if "<" in rule.rule:
            yield method, _fill(rule, _malformed), {**ASYNC, **clinician}, None, None
            yield method, path, {**ASYNC, **clinician}, None, None  # nothing by that id
        if "$export" in rule.rule:
            yield method, path, patient, None, None  # a patient may not export
            yield method, path, clinician, None, None  # no Prefer: respond-async
            for query in (
                {"_bogus": "1"},
                {"_typeFilter": "Observation?code=x"},
                {"_type": "Nope"},
                {"_type": ""},
                {"_since": "yesterday"},
                {"_since": "2026-01-01T00:00:00"},  # no offset
                {"_outputFormat": "text/csv"},
            ):
                yield method, path, {**ASYNC, **clinician}, None, query
        if method == "POST" and "$export" in rule.rule:
            for body in (
                "{not json",
                json.dumps({"resourceType": "Patient"}),
                json.dumps({"resourceType": "Parameters", "parameter": "nope"}),
                json.dumps(
                    {
                        "resourceType": "Parameters",
                        "parameter": [{"name": "_type", "valueInteger": 1}],
                    }
                ),
                json.dumps([1, 2]),
            ):
                yield method, path, {**ASYNC, **clinician, **FHIR_JSON}, body, None
    for method in sorted({"GET", "POST", "PUT", "PATCH", "DELETE"} - set(methods)):
        # A method the route does not serve (405), with and without a token.
        yield method, path, {**ASYNC, **clinician}, None, None
        yield method, path, ASYNC, None, None


def _assert_outcome(answer: Any, what: str) -> dict[str, Any]:
    assert answer.status_code >= 400, (what, answer.status_code)
    assert answer.headers["Content-Type"].startswith("application/fhir+json"), (
        what,
        answer.headers,
    )
    body: dict[str, Any] = json.loads(answer.get_data())
    assert body.get("resourceType") == "OperationOutcome", (what, body)
    get_fhir_model_class("OperationOutcome").model_validate(body)
    issue = body["issue"][0]
    assert issue["severity"] == ("fatal" if answer.status_code >= 500 else "error"), what
    assert issue["code"] in ISSUE_TYPES, (what, issue)
    return body


@pytest.fixture
def tokens(
    make_clinician: Callable[..., User],
    make_patient: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
) -> tuple[dict[str, str], dict[str, str]]:
    return auth_headers(make_clinician()), auth_headers(make_patient())


def test_every_fhir_route_answers_bad_input_with_an_operation_outcome(
    app: Flask, client: FlaskClient, tokens: tuple[dict[str, str], dict[str, str]]
) -> None:
    clinician, patient = tokens
    rules = _fhir_rules(app)
    walked: set[str] = set()
    statuses: set[int] = set()
    for rule in rules:
        for method, path, headers, body, query in _bad_requests(rule, clinician, patient):
            what = f"{method} {path} {query or ''} {body or ''}"
            answer = client.open(
                path, method=method, headers=headers, data=body, query_string=query
            )
            if rule.endpoint in PUBLIC and answer.status_code < 400:
                continue  # e.g. a public read that needs no token
            _assert_outcome(answer, what)
            statuses.add(answer.status_code)
            walked.add(rule.endpoint)
    # Every route was walked and the walk met every kind of refusal.
    assert walked == {r.endpoint for r in rules}
    assert {400, 401, 403, 404, 405, 422} <= statuses


@pytest.mark.parametrize(
    "path",
    [
        "/fhir",
        "/fhir/",
        "/fhir/Nothing",
        "/fhir/Patient",
        "/fhir/Patient/123",
        "/fhir/Patient/$everything",
        "/fhir/Observation/$export",
        "/fhir/bulkstatus/",
        "/fhir/bulkfiles/x/y",
        "/fhir/metadata/extra",
    ],
)
def test_paths_that_match_no_route_answer_an_operation_outcome(
    client: FlaskClient, tokens: tuple[dict[str, str], dict[str, str]], path: str
) -> None:
    clinician, _patient = tokens
    for headers in ({}, clinician):
        answer = client.get(path, headers=headers)
        assert answer.status_code in (401, 404), (path, answer.status_code)
        _assert_outcome(answer, path)


def test_an_unexpected_failure_is_a_fatal_operation_outcome(
    app: Flask,
    client: FlaskClient,
    tokens: tuple[dict[str, str], dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clinician, _patient = tokens

    def boom(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("unexpected")

    monkeypatch.setattr(export_services, "bulk_status", boom)
    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)
    answer = client.get(f"/fhir/bulkstatus/{uuid.uuid4()}", headers=clinician)
    body = _assert_outcome(answer, "an unexpected error")
    assert answer.status_code == 500
    assert "unexpected" not in json.dumps(body)  # no detail of the cause
