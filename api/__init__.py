"""The app factory: config, extensions, blueprints, error handlers. Nothing else."""

from __future__ import annotations

import http
import json
import types
from typing import Any

import orjson
from flask import Flask, current_app, request
from flask.json.provider import DefaultJSONProvider
from flask.sessions import SessionInterface
from flask_smorest import Api, Blueprint
from flask_smorest.utils import prepare_response
from werkzeug.exceptions import (
    BadRequest,
    HTTPException,
    RequestHeaderFieldsTooLarge,
    RequestURITooLarge,
    UnsupportedMediaType,
)

from api import errors, headers, idempotency, observability, openapi, parsing
from api.config import Config
from api.db import Database

# Every blueprint's JSON body keeps its documented JSON types. Set here, before any routes module
# is imported: @blp.arguments binds the parser when it decorates a view.
Blueprint.ARGUMENTS_PARSER = parsing.StrictJsonParser()


class WaymarkApi(Api):
    """flask-smorest with problem+json as the documented and served error format. No catch-all
    `default` answer: every operation lists the error statuses it can give (api.openapi), so a
    status the document does not name is a bug the schemathesis suite finds."""

    ERROR_SCHEMA = errors.ProblemSchema
    DEFAULT_ERROR_RESPONSE_NAME = None

    def _register_responses(self) -> None:
        self.spec.components.header("X-Request-ID", openapi.REQUEST_ID_HEADER, lazy=True)
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if status >= 400:
                response["schema"] = self.ERROR_SCHEMA
                response["headers"] = {
                    "X-Request-ID": "X-Request-ID",
                    **openapi.ERROR_HEADERS.get(status, {}),
                }
            prepare_response(response, self.spec, errors.PROBLEM_MIME)
            self.spec.components.response(status.name, response, lazy=True)
            if status >= 400:
                # The same answers under /fhir, as FHIR OperationOutcome (api.openapi maps them).
                fhir_response: dict[str, Any] = {
                    "description": status.phrase,
                    "schema": openapi.OPERATION_OUTCOME,
                    "headers": response["headers"],
                }
                prepare_response(fhir_response, self.spec, errors.FHIR_MIME)
                # Not lazy: the last pass (fhir_errors_as_operation_outcomes) refers to them.
                self.spec.components.response(openapi.FHIR_PREFIX + status.name, fhir_response)

    def handle_http_exception(self, error: HTTPException) -> Any:
        return errors.handle_http_exception(error)

    def exact_spec(self) -> dict[str, Any]:
        """The served document (api.openapi.exact), built once: routes do not change at run time."""
        app = self._app
        cached = app.extensions.get("waymark.openapi")
        if cached is None:
            cached = openapi.exact(
                self.spec.to_dict(), op_ids=openapi.operation_ids(app), config=app.config
            )
            app.extensions["waymark.openapi"] = cached
        return cached

    def _openapi_json(self) -> Any:
        return current_app.response_class(
            json.dumps(self.exact_spec(), indent=2, sort_keys=False),
            mimetype="application/json",
        )


class CompactJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, with the compact answers (`jsonify`, flask-smorest's responses)
    written by orjson: 0.5 against 14 microseconds for a check-in, more for a page of them.
    Values orjson does not take itself (datetimes, dataclasses, Decimal) go through Flask's own
    `default`, so they read as before; anything orjson refuses (an integer beyond 64 bits, a
    lone surrogate) falls back to json.dumps. Pretty or sorted output (debug, sort_keys) and
    direct `dumps()` calls keep json.dumps. Non-ASCII text is written as UTF-8 instead of
    \\u escapes: the same JSON."""

    _COMPACT = {"separators": (",", ":")}
    _OPTIONS = (
        orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_NON_STR_KEYS
    )

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if kwargs == self._COMPACT and not self.sort_keys:
            try:
                return orjson.dumps(obj, default=self.default, option=self._OPTIONS).decode()
            except TypeError:
                pass  # orjson.JSONEncodeError is a TypeError; json.dumps decides
        return super().dumps(obj, **kwargs)


class WaymarkFlask(Flask):
    """Flask, with one per-request cost taken out: `ensure_sync` asks `inspect` whether each
    hook and view is a coroutine function on every call (ten times a request here); for a plain
    function the answer never changes, so it is remembered. Bound methods (a class-based view
    makes a new one each request) are asked every time, so the memo cannot grow."""

    json_provider_class = CompactJSONProvider

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sync_checked: dict[Any, Any] = {}

    def ensure_sync(self, func: Any) -> Any:
        if type(func) is not types.FunctionType:
            return super().ensure_sync(func)
        wrapped = self._sync_checked.get(func)
        if wrapped is None:
            wrapped = self._sync_checked[func] = super().ensure_sync(func)
        return wrapped


class _NoCookieSessions(SessionInterface):
    """The API authenticates with bearer tokens and keeps no cookie session. Flask's default
    interface would still build a signing serializer and look for a cookie on every request;
    this one hands out Flask's NullSession (which refuses writes) and never sets a cookie."""

    def open_session(self, app: Flask, request: Any) -> None:
        return None  # Flask then uses make_null_session()

    def save_session(self, app: Flask, session: Any, response: Any) -> None:
        return None


def _blueprints() -> list[Any]:
    from api.account.routes import blp as account
    from api.agenda.routes import blp as agenda
    from api.alerts.routes import blp as alerts
    from api.audit.routes import blp as audit
    from api.auth.routes import blp as auth
    from api.checkins.routes import blp as checkins
    from api.clinician.routes import blp as clinician
    from api.consent.routes import blp as consent
    from api.counseling.routes import blp as counseling
    from api.cows.routes import blp as cows
    from api.crisis.routes import blp as crisis
    from api.devices.routes import blp as devices
    from api.disclosures.routes import blp as disclosures
    from api.export.routes import blp as export
    from api.export.routes import fhir_blp as fhir
    from api.inbox.routes import blp as inbox
    from api.instruments.routes import blp as instruments
    from api.medications.routes import blp as medications
    from api.ops.routes import blp as ops
    from api.reminders.routes import blp as reminders
    from api.smart.routes import blp as system_clients
    from api.summaries.routes import blp as summaries
    from api.sync.routes import blp as sync

    return [
        ops,
        crisis,
        auth,
        account,
        instruments,
        checkins,
        medications,
        counseling,
        agenda,
        sync,
        reminders,
        devices,
        inbox,
        consent,
        disclosures,
        clinician,
        cows,
        alerts,
        summaries,
        audit,
        export,
        fhir,
        system_clients,
    ]


def create_app(config: Config | None = None) -> Flask:
    config = config or Config()
    app = WaymarkFlask(__name__, instance_path=str(config_instance_dir()))
    app.config.from_mapping(config.as_flask())
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.session_interface = _NoCookieSessions()

    observability.configure_logging(app.config["LOG_LEVEL"])
    Database(app.config["DATABASE_URL"], pool_size=app.config["DB_POOL_SIZE"]).init_app(app)

    api = WaymarkApi(
        app,
        spec_kwargs={
            "info": {"description": API_DESCRIPTION},
            "extra_plugins": [openapi.ProblemResponsesPlugin()],
        },
    )
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    idempotency.document(api.spec)  # before the blueprints: it annotates each POST as added
    for blueprint in _blueprints():
        api.register_blueprint(blueprint)
    openapi.fhir_errors_as_operation_outcomes(api.spec)
    from api.smart.routes import oauth_bp

    app.register_blueprint(oauth_bp)  # OAuth 2.0, outside the OpenAPI document (see its module)

    from api.clinic.routes import blp as clinic
    from api.clinic.routes import inbox_blp

    # The dashboard's pages are HTML, outside the API's OpenAPI document.
    app.register_blueprint(clinic)
    app.register_blueprint(inbox_blp)
    _cors(app)

    openapi.serve_docs_assets(app)
    observability.init_app(app)
    _bounded_requests(app)
    headers.init_app(app)
    errors.init_app(app)
    _require_json_bodies(app)
    idempotency.init_app(app)  # last: after the request id and the body checks

    from api.cli import register_cli

    register_cli(app)
    return app


def _cors(app: Flask) -> None:
    """Browsers on the CORS_ORIGINS allow-list may call the API with a bearer token (the
    preflight for Authorization is answered); with the list empty (the default), none may."""
    origins = app.config["CORS_ORIGINS"]
    if not origins:
        return
    from flask_cors import CORS

    CORS(
        app,
        resources={r"/v1/.*": {}, r"/fhir/.*": {}},
        origins=origins,
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "If-Match"],
        expose_headers=["X-Request-ID", "Retry-After", "Location", "ETag", "Content-Location"],
        methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        supports_credentials=False,  # bearer tokens, never cookies
        max_age=600,
    )


def config_instance_dir() -> Any:
    from api.config import INSTANCE

    return INSTANCE


# Below gunicorn's own limits (gunicorn.conf.py: 4094 for the request line, 8190 a header field),
# so a long URL or header gets our problem+json here instead of gunicorn's plain-text answer;
# beyond gunicorn's limits the proxy in front must refuse first (docs/operations.md).
MAX_URL_LENGTH = 2048
MAX_HEADER_LENGTH = 4096


def _bounded_requests(app: Flask) -> None:
    @app.before_request
    def _bounded() -> None:
        # Read from the WSGI environ: request.headers would decode and title-case every header
        # of every request only to measure it (a tenth of the floor's hooks).
        environ = request.environ
        path = environ.get("PATH_INFO", "")
        query = environ.get("QUERY_STRING", "")
        if len(path) + len(query) + 1 > MAX_URL_LENGTH:
            raise RequestURITooLarge(f"The URL is longer than {MAX_URL_LENGTH} characters.")
        for key, value in environ.items():
            # HTTP_X_NAME is the header X-Name; Content-Type and -Length have no HTTP_ prefix.
            # The key's length bounds the name's: only a long entry needs a closer look.
            if not isinstance(value, str) or len(key) + len(value) <= MAX_HEADER_LENGTH:
                continue
            if key.startswith(("HTTP_", "CONTENT_")):
                name_length = len(key) - 5 if key.startswith("HTTP_") else len(key)
                if name_length + len(value) > MAX_HEADER_LENGTH:
                    raise RequestHeaderFieldsTooLarge(
                        f"A header is longer than {MAX_HEADER_LENGTH} characters."
                    )


def _require_json_bodies(app: Flask) -> None:
    @app.before_request
    def _json_only() -> None:
        if request.method not in ("POST", "PUT", "PATCH", "DELETE") or request.routing_exception:
            return  # an unknown path or method answers 404/405 whatever the body
        if request.blueprint == "clinic":
            return  # the dashboard's pages post HTML forms
        chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
        has_body = bool(request.content_length) or chunked
        # A body that is not JSON is refused up front (415) instead of being read as empty
        # (DELETE: only where a body is taken, as in DELETE /v1/me with the password).
        takes_body = request.method != "DELETE" or _takes_json_body(_view())
        if getattr(_view(), "accepts_form", False):
            return  # the OAuth token endpoint takes a form (RFC 6749), not JSON
        if has_body and takes_body and not request.is_json:
            raise UnsupportedMediaType("Send the body as application/json.")
        # A missing body is not an empty object: a PATCH without one would silently succeed.
        if not has_body and _takes_json_body(_view()):
            raise BadRequest("This request needs a JSON body.")

    def _view() -> Any:
        return app.view_functions.get(request.endpoint or "")


def _takes_json_body(view: Any) -> bool:
    """Whether the view declares a required JSON body (flask-smorest's @blp.arguments)."""
    if getattr(view, "accepts_form", False):
        return False
    params = getattr(view, "_apidoc", {}).get("arguments", {}).get("parameters", [])
    return any(p.get("in") == "json" and p.get("required", True) for p in params)


API_DESCRIPTION = """Waymark: the recovery companion API.

Errors are RFC 9457 `application/problem+json` with `type`, `title`, `status`, `detail`,
`request_id` and, for 422, `errors` (field name to messages). Authenticate with
`Authorization: Bearer <access_token>` from `POST /v1/auth/token`.
"""
