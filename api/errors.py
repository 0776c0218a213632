"""The AppError hierarchy and the one place every error becomes RFC 9457 problem+json."""

from __future__ import annotations

from typing import Any

import structlog
from flask import Flask, Response, current_app, g, has_request_context, json, request
from marshmallow import Schema, fields
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

log = structlog.get_logger("waymark.errors")

PROBLEM_MIME = "application/problem+json"
FHIR_MIME = "application/fhir+json"
FHIR_PREFIX = "/fhir"

# FHIR R4 issue-type codes (http://hl7.org/fhir/issue-type) for each status we answer.
_ISSUE_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    410: "deleted",
    413: "too-long",
    415: "not-supported",
    422: "invalid",
    429: "throttled",
    500: "exception",
    503: "transient",
}


def under_fhir() -> bool:
    """The FHIR endpoints answer errors as OperationOutcome (FHIR R4, Bulk Data IG)."""
    if not has_request_context():
        return False
    path = request.path
    return path == FHIR_PREFIX or path.startswith(FHIR_PREFIX + "/")


def operation_outcome(
    status: int,
    *,
    detail: str,
    errors: dict[str, list[str]] | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """An R4 OperationOutcome: one issue for the error, and one per field that failed."""
    issue_code = code or _ISSUE_CODES.get(status, "processing")
    severity = "fatal" if status >= 500 else "error"
    request_id = g.get("request_id") if has_request_context() else None
    issues: list[dict[str, Any]] = [
        {
            "severity": severity,
            "code": issue_code,
            "diagnostics": detail + (f" (request id {request_id})" if request_id else ""),
        }
    ]
    for name, messages in (errors or {}).items():
        issues.append(
            {
                "severity": "error",
                "code": issue_code,
                "diagnostics": " ".join(messages),
                "expression": [name],
            }
        )
    return {"resourceType": "OperationOutcome", "issue": issues}


class AppError(Exception):
    """A domain error; services raise these, never abort()."""

    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra


class ValidationError(AppError):
    status = 422
    slug = "validation"
    title = "Invalid input"

    def __init__(self, errors: dict[str, list[str]], detail: str | None = None) -> None:
        fields = ", ".join(sorted(errors))
        super().__init__(detail or f"Invalid value for: {fields}", errors=errors)


class Unauthorized(AppError):
    status = 401
    slug = "unauthorized"
    title = "Authentication required"

    def __init__(self, detail: str | None = None, **kw: Any) -> None:
        kw.setdefault("headers", {"WWW-Authenticate": 'Bearer realm="waymark"'})
        super().__init__(detail, **kw)


class Forbidden(AppError):
    status = 403
    slug = "forbidden"
    title = "Forbidden"


class NotFound(AppError):
    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(AppError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class TooManyRequests(AppError):
    status = 429
    slug = "rate-limited"
    title = "Too many requests"

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, int(retry_after)))})


class ServiceUnavailable(AppError):
    """A shared service the request needs (Redis) is down: worth a retry, unlike a 500."""

    status = 503
    slug = "unavailable"
    title = "Service unavailable"

    def __init__(self, detail: str | None = None, *, retry_after: int = 5) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


_HTTP_SLUGS = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    413: ("payload-too-large", "Request body too large"),
    414: ("uri-too-long", "URL too long"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("validation", "Invalid input"),
    429: ("rate-limited", "Too many requests"),
    431: ("header-too-large", "Request header too large"),
    500: ("internal", "Internal server error"),
    503: ("unavailable", "Service unavailable"),
}


def problem(
    status: int,
    *,
    slug: str | None = None,
    title: str | None = None,
    detail: str | None = None,
    errors: dict[str, list[str]] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    default_slug, default_title = _HTTP_SLUGS.get(status, ("error", "Error"))
    if under_fhir():
        outcome = operation_outcome(
            status,
            detail=detail or title or default_title,
            errors=errors,
            code=extra.get("issue_code"),
        )
        response = Response(json.dumps(outcome), status=status, mimetype=FHIR_MIME)
        for key, value in (headers or {}).items():
            response.headers[key] = value
        return response
    body: dict[str, Any] = {
        "type": current_app.config["PROBLEM_BASE_URL"] + (slug or default_slug),
        "title": title or default_title,
        "status": status,
        "detail": detail or title or default_title,
        "request_id": g.get("request_id"),
    }
    if errors is not None:
        body["errors"] = errors
    body.update(extra)
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_MIME)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _flatten_webargs(messages: Any) -> dict[str, list[str]]:
    """webargs nests errors by location ({"json": {"field": [...]}}); clients want field -> list."""
    out: dict[str, list[str]] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                name = f"{prefix}.{key}" if prefix else str(key)
                walk(name, value)
        elif isinstance(node, list) and all(isinstance(m, str) for m in node):
            out.setdefault(prefix or "_schema", []).extend(node)
        elif isinstance(node, list):
            for i, item in enumerate(node):
                walk(f"{prefix}.{i}", item)
        else:
            out.setdefault(prefix or "_schema", []).append(str(node))

    if isinstance(messages, dict):
        for fields in messages.values():
            walk("", fields)
    else:
        walk("", messages)
    return out


def handle_http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    headers: dict[str, str] = {}
    if status == 405:
        headers.update((k, v) for k, v in exc.get_headers() if k.lower() == "allow")
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="waymark"'
    errors = None
    detail = exc.description if status < 500 else None
    data = getattr(exc, "data", None)
    if status == 422 and data and "messages" in data:
        errors = _flatten_webargs(data["messages"])
        detail = "Invalid value for: " + ", ".join(sorted(errors))
    elif status == 400 and data and "messages" in data:
        # webargs reports unparsable JSON as a 400 with messages; say so plainly.
        detail = "The request body is not valid JSON."
    if status == 413:
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        detail = f"The request body is larger than {limit} bytes."
    return problem(status, detail=detail, errors=errors, headers=headers)


# Errors that mean "the database is not there right now" wherever they are raised (a view, a
# before/after-request hook, an error handler's own commit): 503 with Retry-After, never 500.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeout)


def is_database_unavailable(exc: BaseException) -> bool:
    return isinstance(exc, DATABASE_UNAVAILABLE) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


def database_unavailable(exc: BaseException, *, where: str) -> Response:
    """The one 503 answer for a database outage; logs the error's type, never its message."""
    log.error("db.unavailable", exc_info=exc, endpoint=request.endpoint, where=where)
    return problem(
        503,
        detail="The database is not available right now. Try again shortly.",
        headers={"Retry-After": "5"},
    )


def init_app(app: Flask) -> None:
    @app.errorhandler(AppError)
    def _app_error(exc: AppError) -> Response:
        # Mapping only: what a refusal must keep was written in a named short transaction of
        # its own (db.in_own_transaction) before it was raised; the session is not touched here.
        return problem(
            exc.status,
            slug=exc.slug,
            title=exc.title,
            detail=exc.detail,
            errors=exc.errors,
            headers=exc.headers,
            **exc.extra,
        )

    app.register_error_handler(HTTPException, handle_http_exception)

    @app.errorhandler(IntegrityError)
    def _integrity(_exc: IntegrityError) -> Response:
        # Never echo the SQL or values: constraint text can contain health data.
        log.info("db.integrity_conflict", route=request.endpoint)
        return problem(409, detail="The request conflicts with data already stored.")

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(PoolTimeout)
    def _database_unavailable(exc: Exception) -> Response:
        # The database is down, unreachable, locked or out of connections: nothing the client
        # did wrong, and worth a retry (a 500 would say otherwise).
        return database_unavailable(exc, where="view")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        if is_database_unavailable(exc):  # e.g. a DBAPIError on a connection that just died
            return database_unavailable(exc, where="view")
        # The message of a database or parsing error can quote the values sent; the log holds
        # where it happened (file, line, function) and its type, never the message.
        log.error("request.unhandled", exc_info=exc, endpoint=request.endpoint)
        return problem(500, detail="Something went wrong on our side. Quote the request id.")


class ProblemSchema(Schema):
    """RFC 9457 problem details, as every error answers."""

    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    request_id = fields.String(required=True, allow_none=True)
    errors = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.String()),
        metadata={
            "description": "Validation failures (422): field name to messages.",
            "x-may-be-absent": True,  # api.openapi.MAY_BE_ABSENT (errors sits below openapi)
        },
    )
