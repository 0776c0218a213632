"""Request parsing: strict JSON types, unstorable text refused, a required body is required."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from flask_smorest import Blueprint
from marshmallow import Schema, fields
from werkzeug.exceptions import UnprocessableEntity

from api.parsing import (
    BAD_TEXT,
    StrictJsonParser,
    all_text_storable,
    bad_text_errors,
    json_type_errors,
)


class Inner(Schema):
    flag = fields.Boolean()


class Body(Schema):
    flag = fields.Boolean(allow_none=True)
    count = fields.Integer()
    ratio = fields.Float()
    inner = fields.Nested(Inner)
    many = fields.Nested(Inner, many=True)
    numbers = fields.List(fields.Integer())
    scores = fields.Dict(keys=fields.String(), values=fields.Integer())
    text = fields.String()
    renamed = fields.Boolean(data_key="from")


def test_json_types_must_match_the_fields() -> None:
    ok = {
        "flag": None,
        "count": 3,
        "ratio": 2,
        "inner": {"flag": True},
        "many": [{"flag": False}],
        "numbers": [1, 2.0],
        "scores": {"a": 1},
        "from": True,
    }
    assert json_type_errors(Body(), ok) == {}
    bad = {
        "flag": 0,
        "count": "3",
        "ratio": True,
        "inner": {"flag": "yes"},
        "many": [{"flag": True}, {"flag": 1}],
        "numbers": [1, 2.5, "3"],
        "scores": {"a": "1"},
        "from": "true",
    }
    assert json_type_errors(Body(), bad) == {
        "flag": ["Not a valid boolean."],
        "count": ["Not a valid integer."],
        "ratio": ["Not a valid number."],
        "inner": {"flag": ["Not a valid boolean."]},
        "many": {1: {"flag": ["Not a valid boolean."]}},
        "numbers": {1: ["Not a valid integer."], 2: ["Not a valid integer."]},
        "scores": {"a": ["Not a valid integer."]},
        "from": ["Not a valid boolean."],
    }
    # Shapes that are wrong altogether are left to the schema to report.
    assert json_type_errors(Body(), ["not", "an", "object"]) == {}
    assert json_type_errors(Body(), {"many": "x", "numbers": "x"}) == {}


def test_unstorable_text_is_found_anywhere() -> None:
    assert bad_text_errors({"a": "fine", "b": ["ok", {"c": "x\x00y"}]}) == {"b.1.c": [BAD_TEXT]}
    assert bad_text_errors({"a": "\ud800"}) == {"a": [BAD_TEXT]}
    assert bad_text_errors({"k\x00": 1}) == {"_schema": [BAD_TEXT]}
    assert bad_text_errors("\x00") == {"_schema": [BAD_TEXT]}
    assert bad_text_errors({"a": "ünïcødé ✓", "b": 1, "c": None}) == {}


def test_the_one_pass_text_check_never_passes_what_the_walk_refuses() -> None:
    assert all_text_storable({"a": "ünïcødé ✓", "b": [1, 2.5, None, True, {"c": ""}]})
    for bad in ({"a": "x\x00"}, {"\ud800": 1}, {"a": [{"b": "\udfff"}]}, "\x00"):
        assert not all_text_storable(bad)
        assert bad_text_errors(bad)
    # orjson refuses what it cannot write (a 70-bit integer) and a backslash-u0000 text looks
    # like an escaped NUL: the walk decides those, and finds them storable.
    for odd in ({"a": 2**70, "b": "fine"}, {"a": "\\u0000"}):
        assert not all_text_storable(odd)
        assert bad_text_errors(odd) == {}
    assert bad_text_errors({"a": 2**70, "b": "\x00"}) == {"b": [BAD_TEXT]}


def _register(client: FlaskClient, **overrides: Any) -> Any:
    body = {
        "email": "ana@example.test",
        "password": "correct horse battery",
        "display_name": "Ana",
        "timezone": "Europe/Lisbon",
    }
    return client.post("/v1/auth/register", json={**body, **overrides})


@pytest.mark.parametrize("value", ["Ana\x00", "Ana\ud800"])
def test_unstorable_text_is_a_422_not_a_500(client: FlaskClient, value: str) -> None:
    # PostgreSQL refuses NUL and lone surrogates at insert time; the API refuses them first.
    response = _register(client, display_name=value)
    assert response.status_code == 422
    assert response.json["errors"] == {"display_name": [BAD_TEXT]}


def test_nul_in_a_query_string_is_refused(app: Any) -> None:
    class Args(Schema):
        q = fields.String()

    # Every flask-smorest blueprint parses with this parser.
    assert isinstance(Blueprint.ARGUMENTS_PARSER, StrictJsonParser)
    with app.test_request_context("/?q=a%00b"), pytest.raises(UnprocessableEntity) as raised:
        StrictJsonParser().parse(Args(), location="query")
    assert raised.value.data["messages"] == {"query": {"q": [BAD_TEXT]}}  # type: ignore[attr-defined]


def test_wrong_json_types_are_422(client: FlaskClient, patient_headers: dict[str, str]) -> None:
    response = client.patch("/v1/me", json={"discreet_notifications": 0}, headers=patient_headers)
    assert response.status_code == 422
    assert response.json["errors"] == {"discreet_notifications": ["Not a valid boolean."]}
    nested = client.patch(
        "/v1/me", json={"quiet_hours": {"start": 2200, "end": "07:00"}}, headers=patient_headers
    )
    assert nested.status_code == 422
    assert "quiet_hours.start" in nested.json["errors"]
    assert client.get("/v1/me", headers=patient_headers).json["discreet_notifications"] is False


def test_a_required_body_must_be_sent(client: FlaskClient, patient_headers: dict[str, str]) -> None:
    for method, path in (("PATCH", "/v1/me"), ("POST", "/v1/auth/register")):
        response = client.open(path, method=method, headers=patient_headers)
        assert response.status_code == 400, path
        assert response.headers["Content-Type"] == "application/problem+json"
        assert response.json["detail"] == "This request needs a JSON body."
    # An empty JSON object is a body: the schema decides (here: nothing to change).
    assert client.patch("/v1/me", json={}, headers=patient_headers).status_code == 200


def test_unknown_path_or_method_wins_over_the_body_rules(client: FlaskClient) -> None:
    form = {"data": "a=b", "content_type": "application/x-www-form-urlencoded"}
    assert client.post("/v1/nothing-here", **form).status_code == 404
    wrong_method = client.post("/healthz", **form)
    assert wrong_method.status_code == 405
    assert wrong_method.headers["Allow"]


def test_delete_follows_the_body_rules_only_where_it_takes_a_body() -> None:
    from api import create_app
    from tests.conftest import TestConfig

    application = create_app(TestConfig("sqlite://"))

    def erase() -> tuple[str, int]:
        return "", 204

    erase._apidoc = {"arguments": {"parameters": [{"in": "json", "required": True}]}}  # type: ignore[attr-defined]
    application.add_url_rule("/erase", "erase", erase, methods=["DELETE"])
    application.add_url_rule("/plain", "plain", lambda: ("", 204), methods=["DELETE"])
    client = application.test_client()
    form = {"data": "password=x", "content_type": "application/x-www-form-urlencoded"}
    assert client.delete("/erase", **form).status_code == 415
    assert client.delete("/erase").status_code == 400
    assert client.delete("/erase", json={"password": "x"}).status_code == 204
    assert client.delete("/plain", **form).status_code == 204  # no body taken: none refused
    assert client.delete("/plain").status_code == 204
    application.extensions["db"].engine.dispose()
