"""The OpenAPI document lists, for every operation, the problem+json errors it can answer."""

from __future__ import annotations

import http
from typing import Any

import swagger_ui_bundle
from apispec import APISpec, BasePlugin
from flask import Flask, Response, send_from_directory

from api.config import DOCS_ASSETS_PATH

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


def _name(status: int) -> str:
    return http.HTTPStatus(status).name


class ProblemResponsesPlugin(BasePlugin):
    """Adds the error answers each operation can give beside the ones a route documents itself
    (409, 429, ...): 500, and 503 (database unavailable), everywhere; 413 (body too large) and
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
            codes: list[int] = [500, 503]
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
            for response in responses.values():
                if isinstance(response, dict):  # inline (success) answers; refs carry their own
                    response.setdefault("headers", {}).setdefault("X-Request-ID", "X-Request-ID")


def serve_docs_assets(app: Flask) -> None:
    """Serve Swagger UI's files from the installed swagger-ui-bundle package at /docs/assets/."""

    def docs_asset(filename: str) -> Response:
        return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename, max_age=86400)

    app.add_url_rule(f"{DOCS_ASSETS_PATH}<path:filename>", "docs_asset", docs_asset)
