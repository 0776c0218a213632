"""Checks answers against the served OpenAPI document strictly: every field an answer carries is
declared, every required field is there, null only where `nullable`, and the media type is one the
operation declares. A generated client trusts exactly this much; so does this checker."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import jsonschema
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

_KEYWORDS = (
    "type",
    "enum",
    "required",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "uniqueItems",
)


def _strict(node: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI 3.0 schema object as JSON Schema, closed: objects with declared properties
    allow no others, and `nullable` is the only way to null."""
    if "$ref" in node:
        return {"$ref": "#/$defs/" + node["$ref"].rsplit("/", 1)[-1]}
    out: dict[str, Any] = {key: node[key] for key in _KEYWORDS if key in node}
    if "properties" in node:
        out["properties"] = {name: _strict(sub) for name, sub in node["properties"].items()}
        out.setdefault("type", "object")
    if out.get("type") == "object":
        extra = node.get("additionalProperties", "properties" not in node)
        out["additionalProperties"] = _strict(extra) if isinstance(extra, dict) else extra
    if "items" in node:
        out["items"] = _strict(node["items"])
    for key in ("allOf", "oneOf", "anyOf"):
        if key in node:
            out[key] = [_strict(sub) for sub in node[key]]
    if node.get("nullable"):
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
        return {"anyOf": [out, {"type": "null"}]}
    return out


class StrictDocument:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.defs = {
            name: _strict(schema)
            for name, schema in doc.get("components", {}).get("schemas", {}).items()
        }
        self._validators: dict[tuple[str, int, str], Any] = {}
        self.routes = [
            (
                re.compile("^" + "[^/]+".join(map(re.escape, re.split(r"\{[^}]+\}", path))) + "$"),
                path,
            )
            for path in doc["paths"]
        ]

    def operation(self, method: str, path: str) -> dict[str, Any]:
        matches = [tmpl for regex, tmpl in self.routes if regex.match(path)]
        # The most literal template wins (/v1/consents/lookup over /v1/consents/{id}).
        matches.sort(key=lambda tmpl: tmpl.count("{"))
        assert matches, f"{method} {path}: no such path in the document"
        op = self.doc["paths"][matches[0]].get(method.lower())
        assert op is not None, f"{method} {matches[0]}: not in the document"
        return op

    def _response(self, op: dict[str, Any], status: int) -> dict[str, Any]:
        responses = op["responses"]
        found = responses.get(str(status)) or responses.get(status)
        assert found is not None, f"{op['operationId']}: status {status} is not documented"
        if "$ref" in found:
            found = self.doc["components"]["responses"][found["$ref"].rsplit("/", 1)[-1]]
        return found

    def check(
        self,
        method: str,
        path: str,
        status: int,
        content_type: str,
        body: bytes,
        json: Any,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Raises AssertionError or jsonschema.ValidationError when the answer breaks the doc."""
        op = self.operation(method, path.split("?", 1)[0])
        response = self._response(op, status)
        if headers is not None:
            self._check_headers(op, status, response, headers)
        content = response.get("content", {})
        if (not body and status in (202, 204, 304)) or (not body and not content):
            return
        media = content_type.split(";", 1)[0].strip()
        assert media in content, f"{op['operationId']} {status}: {media} is not declared"
        schema = content[media].get("schema")
        if schema is None or not (media == "application/json" or media.endswith("+json")):
            return
        key = (op["operationId"], status, media)
        validator = self._validators.get(key)
        if validator is None:
            full = {**_strict(schema), "$defs": self.defs}
            validator = self._validators[key] = jsonschema.Draft202012Validator(full)
        validator.validate(json)

    def _check_headers(
        self, op: dict[str, Any], status: int, response: dict[str, Any], sent: Mapping[str, str]
    ) -> None:
        """A header a client acts on (WATCHED) is declared where it is sent; a declared required
        header is always sent."""
        declared = {name.lower(): spec for name, spec in response.get("headers", {}).items()}
        for name in WATCHED_HEADERS:
            if name.lower() in {k.lower() for k in sent}:
                assert name.lower() in declared, (
                    f"{op['operationId']} {status}: sends {name}, which it does not declare"
                )
        for name, given in declared.items():
            ref = given.get("$ref")
            spec = self.doc["components"]["headers"][ref.rsplit("/", 1)[-1]] if ref else given
            if spec.get("required"):
                assert name in {k.lower() for k in sent}, (
                    f"{op['operationId']} {status}: declares {name} required but did not send it"
                )


# Headers a client reads to act (where to poll, how long to wait, whether it was a replay, what
# to cache, what the file is called, when the files go): each must be declared where it is sent.
WATCHED_HEADERS = (
    "Content-Location",
    "Location",
    "Retry-After",
    "X-Progress",
    "Idempotent-Replayed",
    "ETag",
    "Expires",
    "Content-Disposition",
)


class StrictClient(FlaskClient):
    """A test client that checks every answer against the served document (StrictDocument)."""

    document: StrictDocument

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        response = super().open(*args, **kwargs)
        request = response.request
        if request.path.startswith(("/v1/", "/fhir/")):
            body = response.get_data()
            is_json = response.is_json and bool(body)
            self.document.check(
                request.method,
                request.path,
                response.status_code,
                response.content_type or "",
                body,
                response.get_json() if is_json else None,
                dict(response.headers),
            )
        return response


def strict_client(app: Flask) -> StrictClient:
    with app.test_client() as plain:
        doc = plain.get("/openapi.json").get_json()
    client = StrictClient(app, app.response_class, use_cookies=True)
    client.document = StrictDocument(doc)
    return client
