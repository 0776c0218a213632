"""A realistic example for every request body and main answer (issue 13 item 2): every request
body and every 2xx JSON answer of the served document carries an example (on the media type, or
on the component schema it names), and each example validates strictly against its schema (no
undeclared field, every required one, null only where nullable), so none can drift."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest
from flask import Flask

from tests.openapi_strict import _strict

METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def doc(app: Flask) -> dict[str, Any]:
    with app.test_client() as client:
        return client.get("/openapi.json").get_json()


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")


def _bodies(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(where, media object) for every request body and every 2xx JSON answer."""
    out = []
    for item in doc["paths"].values():
        for method, op in item.items():
            if method not in METHODS:
                continue
            body = op.get("requestBody", {})
            for media_type, media in body.get("content", {}).items():
                out.append((f"{op['operationId']} request {media_type}", media))
            for code, answer in op["responses"].items():
                if str(code).startswith("2") and "$ref" not in answer:
                    for media_type, media in answer.get("content", {}).items():
                        if _is_json(media_type):
                            out.append((f"{op['operationId']} {code} {media_type}", media))
    return out


def _example(doc: dict[str, Any], media: dict[str, Any]) -> Any:
    if "example" in media:
        return media["example"]
    schema = media.get("schema", {})
    if "$ref" in schema:
        return doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]].get("example")
    return schema.get("example")


def _missing(doc: dict[str, Any]) -> list[str]:
    return [where for where, media in _bodies(doc) if _example(doc, media) is None]


def test_every_request_body_and_json_answer_has_an_example(doc: dict[str, Any]) -> None:
    assert len(_bodies(doc)) > 90
    assert not _missing(doc)
    # The walk bites: an answer whose schema loses its example is named.
    bare = copy.deepcopy(doc)
    del bare["components"]["schemas"]["Checkin"]["example"]
    assert {"create_checkin 201 application/json", "get_checkin 200 application/json"} <= set(
        _missing(bare)
    )


def test_every_example_validates_strictly_against_its_schema(doc: dict[str, Any]) -> None:
    defs = {name: _strict(s) for name, s in doc["components"]["schemas"].items()}
    failures = []
    for where, media in _bodies(doc):
        schema = {**_strict(media.get("schema", {})), "$defs": defs}
        for error in jsonschema.Draft202012Validator(schema).iter_errors(_example(doc, media)):
            failures.append(f"{where}: {error.message} at {list(error.absolute_path)}")
    assert not failures, failures[:20]
