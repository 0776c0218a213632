"""The OpenAPI document lists, for every operation, the problem+json errors it can answer."""

from __future__ import annotations

import http
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import swagger_ui_bundle
from apispec import APISpec, BasePlugin
from flask import Flask, Response, send_from_directory

# Where Swagger UI's files are served (config.DOCS_ASSETS_PATH says the same, for the default).
DOCS_ASSETS_PATH = "/docs/assets/"

_METHODS = {"get", "put", "post", "delete", "patch"}
_BODY_METHODS = {"post", "put", "patch"}

REQUEST_ID_HEADER = {
    "description": "The request id: the client's `X-Request-ID` when well-formed "
    "(8-128 characters of `A-Za-z0-9._:-`), else a new UUID. Quote it in support requests.",
    "schema": {"type": "string"},
    "required": True,
}

# Headers some error answers always carry (RFC 9110, RFC 6750, RFC 6585).
ERROR_HEADERS: dict[int, dict[str, dict[str, Any]]] = {
    409: {
        "Retry-After": {
            "description": "Only while a request with the same Idempotency-Key is still in "
            "progress: seconds to wait before sending it again.",
            "schema": {"type": "integer", "minimum": 1},
        }
    },
    401: {
        "WWW-Authenticate": {
            "description": 'The scheme to authenticate with: `Bearer realm="waymark"`.',
            "schema": {"type": "string"},
            "required": True,
        }
    },
    405: {
        "Allow": {
            "description": "The methods this path accepts.",
            "schema": {"type": "string"},
            "required": True,
        }
    },
    429: {
        "Retry-After": {
            "description": "Seconds to wait before trying again.",
            "schema": {"type": "integer", "minimum": 1},
            "required": True,
        }
    },
    503: {
        "Retry-After": {
            "description": "Seconds to wait before trying again.",
            "schema": {"type": "integer", "minimum": 1},
            "required": True,
        }
    },
}


FHIR_PREFIX = "FHIR_"
OPERATION_OUTCOME = {
    "type": "object",
    "description": "A FHIR R4 OperationOutcome: every error under /fhir (Bulk Data IG).",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"type": "string", "enum": ["OperationOutcome"]},
        "issue": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["severity", "code"],
                "properties": {
                    "severity": {"type": "string"},
                    "code": {"type": "string"},
                    "diagnostics": {"type": "string"},
                    "expression": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}


def _name(status: int) -> str:
    return http.HTTPStatus(status).name


def _as_operation_outcomes(responses: dict[Any, Any]) -> None:
    """Under /fhir every error is a FHIR OperationOutcome (the FHIR_ response components)."""
    for code, response in list(responses.items()):
        if int(code) < 400:
            continue
        if isinstance(response, str) and not response.startswith(FHIR_PREFIX):
            responses[code] = FHIR_PREFIX + response
        elif isinstance(response, dict) and "$ref" in response:
            head, _, name = response["$ref"].rpartition("/")
            if not name.startswith(FHIR_PREFIX):
                responses[code] = {"$ref": f"{head}/{FHIR_PREFIX}{name}"}


def fhir_errors_as_operation_outcomes(spec: APISpec) -> None:
    """A last pass over the document (an operation registered for two methods shares its
    responses, so the per-operation pass can miss one): /fhir errors are OperationOutcomes."""
    for path, operations in spec._paths.items():
        if not (path == "/fhir" or path.startswith("/fhir/")):
            continue
        for method, operation in operations.items():
            if method in _METHODS:
                operation["responses"] = dict(operation.get("responses", {}))
                _as_operation_outcomes(operation["responses"])


class ProblemResponsesPlugin(BasePlugin):
    """Adds the error answers each operation can give beside the ones a route documents itself
    (409, 429, ...): 500, 503 (database unavailable), 414 and 431 (URL or header too long),
    everywhere; 413 (body too large) and
    415 (body not JSON) on POST, PUT, PATCH and a DELETE that takes a body; 400 (unparsable or
    missing JSON) and 422 where a body is read; 404 where the path names a resource; 401/403
    where a token is required. Every answer documents `X-Request-ID`."""

    def init_spec(self, spec: APISpec) -> None:
        self.spec = spec

    def operation_helper(
        self, path: str | None = None, operations: dict[str, Any] | None = None, **_kw: Any
    ) -> None:
        for method, operation in (operations or {}).items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            # 414/431: a URL or header over the app's limits (api/__init__.py), on any route.
            codes: list[int] = [414, 431, 500, 503]
            if method in _BODY_METHODS or "requestBody" in operation:
                codes += [413, 415]
            if "requestBody" in operation:
                codes += [400, 422]
            if path and "{" in path:
                codes.append(404)
            if operation.get("security"):
                codes += [401, 403]
            for code in codes:
                if code not in responses and str(code) not in responses:
                    responses[code] = _name(code)
            if path and (path == "/fhir" or path.startswith("/fhir/")):
                _as_operation_outcomes(responses)
            for response in responses.values():
                if isinstance(response, dict):  # inline (success) answers; refs carry their own
                    response.setdefault("headers", {}).setdefault("X-Request-ID", "X-Request-ID")


def serve_docs_assets(app: Flask) -> None:
    """Serve Swagger UI's files from the installed swagger-ui-bundle package at /docs/assets/."""

    def docs_asset(filename: str) -> Response:
        return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename, max_age=86400)

    app.add_url_rule(f"{DOCS_ASSETS_PATH}<path:filename>", "docs_asset", docs_asset)


# A field that an output schema may leave out of an answer (e.g. a clinician-only field) carries
# this metadata key; every other field of a response schema is listed as required.
MAY_BE_ABSENT = "x-may-be-absent"

# Parameters an operation documents beside those flask-smorest derives from its arguments (a
# `parameters` list in @blp.doc would replace those instead of adding to them).
EXTRA_PARAMETERS = "x-extra-parameters"

BINARY = {"schema": {"type": "string", "format": "binary"}}
TEXT = {"schema": {"type": "string"}}


def operation_ids(app: Flask) -> dict[tuple[str, str], str]:
    """(OpenAPI path, method) -> the view function's name: `list_checkins`, `create_token`.
    The names are verb_noun by house rule and unique across blueprints (checked here), so they
    make stable, readable operationIds for generated clients."""
    ids: dict[tuple[str, str], str] = {}
    seen: dict[str, str] = {}
    for rule in app.url_map.iter_rules():
        path = _RULE_ARG.sub(r"{\1}", rule.rule)
        name = rule.endpoint.rsplit(".", 1)[-1]
        # Sorted: a set's order changes from process to process, and so would the ids.
        for verb in sorted(rule.methods or ()):
            method = verb.lower()
            if method not in _METHODS:
                continue
            op_id = name
            if op_id in seen and seen[op_id].split(" ", 1)[0] == path:
                op_id = f"{name}_{method}"  # one view, several methods (GET and POST kick-off)
            elif op_id in seen and seen[op_id] != f"{path} {method}":
                op_id = rule.endpoint.replace(".", "_")
            seen[op_id] = f"{path} {method}"
            ids[(path, method)] = op_id
    return ids


_RULE_ARG = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


# Sync change `type` -> the component schema its `data` has (the resource's own GET answer).
SYNC_DATA = {
    "checkin": "Checkin",
    "medication": "Medication",
    "dose": "Dose",
    "counseling_session": "CounselingSession",
    "reminder": "Reminder",
}


def exact(
    doc: dict[str, Any], *, op_ids: dict[tuple[str, str], str], config: Mapping[str, Any]
) -> dict[str, Any]:
    """The served document made exact for client generators: servers; operationIds; every field
    of a response schema required unless marked MAY_BE_ABSENT; enums without null (nullability
    is `nullable`); the sync change typed per `type`."""
    doc["servers"] = [
        {"url": config["PUBLIC_BASE_URL"], "description": "This deployment (PUBLIC_BASE_URL)"}
    ]
    schemas: dict[str, Any] = doc.get("components", {}).get("schemas", {})
    _type_sync_changes(schemas)
    requests: set[str] = set()
    responses: set[str] = set()
    for path, item in doc.get("paths", {}).items():
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            operation.setdefault("operationId", op_ids.get((path, method), f"{method}_{path}"))
            if method == "get":
                # A view serving GET and POST shares one doc; a GET's body is never read.
                operation.pop("requestBody", None)
            extra = operation.pop(EXTRA_PARAMETERS, [])
            operation.setdefault("parameters", []).extend(extra)
            _refs(operation.get("requestBody"), requests)
            _refs(operation.get("parameters"), requests)
            _refs(operation.get("responses"), responses)
    _refs(doc.get("components", {}).get("responses"), responses)
    requests, responses = _closure(requests, schemas), _closure(responses, schemas)
    for name, schema in schemas.items():
        props = schema.get("properties", {})
        output_only = name in responses and name not in requests
        required = set(schema.get("required", []))
        for prop_name, prop in props.items():
            absent = prop.pop(MAY_BE_ABSENT, False)
            if output_only and not absent:
                required.add(prop_name)
        if required:
            schema["required"] = sorted(required)
    for node in _nodes(doc):
        _no_null_in_enum(node)
    _add_examples(doc)
    return doc


# Realistic examples (issue 13): answers the server gave in the test suite's scenarios, trimmed to
# two items a list, with made-up names and tokens. tests/test_openapi_examples.py checks that every
# request body and JSON success answer has one and that each validates strictly against its schema.
EXAMPLES = Path(__file__).with_name("openapi_examples.json")


def _add_examples(doc: dict[str, Any]) -> None:
    examples = json.loads(EXAMPLES.read_text())
    schemas = doc.get("components", {}).get("schemas", {})
    for name, example in examples["schemas"].items():
        if name in schemas:
            schemas[name].setdefault("example", example)
    for path_item in doc.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in _METHODS:
                continue
            places = [("request", operation.get("requestBody"))]
            places += [(str(code), answer) for code, answer in operation["responses"].items()]
            for key, place in places:
                example = examples["operations"].get(f"{operation['operationId']} {key}")
                if example is None or not isinstance(place, dict):
                    continue
                for media_type, media in place.get("content", {}).items():
                    if media_type == "application/json" or media_type.endswith("+json"):
                        media.setdefault("example", example)


def _nodes(node: Any) -> Any:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _nodes(value)


def _type_sync_changes(schemas: dict[str, Any]) -> None:
    """`Change` becomes one of a schema per entity type, told apart by `type`, with `data` the
    resource (as its own GET answers it) for an upsert and null for a delete."""
    base = schemas.get("Change")
    if base is None or not all(name in schemas for name in SYNC_DATA.values()):
        return
    mapping = {}
    for entity_type, data_schema in SYNC_DATA.items():
        name = f"{data_schema}Change"
        props = {key: dict(value) for key, value in base["properties"].items()}
        props["type"] = {"type": "string", "enum": [entity_type]}
        props["op"] = {"type": "string", "enum": ["upsert", "delete"]}
        props["data"] = {
            "allOf": [{"$ref": f"#/components/schemas/{data_schema}"}],
            "nullable": True,
            "description": "The resource as its own GET answers it; null for a delete.",
        }
        schemas[name] = {
            "type": "object",
            "properties": props,
            "required": sorted(props),
            "additionalProperties": False,
        }
        mapping[entity_type] = f"#/components/schemas/{name}"
    schemas["Change"] = {
        "oneOf": [{"$ref": ref} for ref in mapping.values()],
        "discriminator": {"propertyName": "type", "mapping": mapping},
        "description": "One change of the feed; `type` says which resource `data` is.",
    }


def _no_null_in_enum(node: dict[str, Any]) -> None:
    enum = node.get("enum")
    if isinstance(enum, list) and None in enum:
        node["enum"] = [v for v in enum if v is not None]
        node["nullable"] = True


def _refs(node: Any, acc: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            acc.add(ref.rsplit("/", 1)[-1])
        for value in node.values():
            _refs(value, acc)
    elif isinstance(node, list):
        for value in node:
            _refs(value, acc)


def _closure(names: set[str], schemas: dict[str, Any]) -> set[str]:
    seen: set[str] = set()
    stack = list(names)
    while stack:
        name = stack.pop()
        if name in seen or name not in schemas:
            continue
        seen.add(name)
        found: set[str] = set()
        _refs(schemas[name], found)
        stack.extend(found)
    return seen
