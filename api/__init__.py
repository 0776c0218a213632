"""The app factory: config, extensions, blueprints, error handlers. Nothing else."""

from __future__ import annotations

import http
from typing import Any

from flask import Flask, request
from flask_smorest import Api
from flask_smorest.utils import prepare_response
from werkzeug.exceptions import HTTPException, UnsupportedMediaType

from api import errors, idempotency, observability
from api.config import Config
from api.db import Database


class WaymarkApi(Api):
    """flask-smorest with problem+json as the documented and served error format."""

    ERROR_SCHEMA = errors.ProblemSchema

    def _register_responses(self) -> None:
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if status >= 400:
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, errors.PROBLEM_MIME)
            self.spec.components.response(status.name, response, lazy=True)
        default = {"description": "Error (problem+json)", "schema": self.ERROR_SCHEMA}
        prepare_response(default, self.spec, errors.PROBLEM_MIME)
        self.spec.components.response(self.DEFAULT_ERROR_RESPONSE_NAME, default, lazy=True)

    def handle_http_exception(self, error: HTTPException) -> Any:
        return errors.handle_http_exception(error)


def _blueprints() -> list[Any]:
    from api.auth.routes import blp as auth
    from api.checkins.routes import blp as checkins
    from api.counseling.routes import blp as counseling
    from api.export.routes import blp as export
    from api.export.routes import fhir_blp as fhir
    from api.instruments.routes import blp as instruments
    from api.medications.routes import blp as medications
    from api.ops.routes import blp as ops
    from api.sync.routes import blp as sync

    return [ops, auth, instruments, checkins, medications, counseling, sync, export, fhir]


def create_app(config: Config | None = None) -> Flask:
    config = config or Config()
    app = Flask(__name__, instance_path=str(config_instance_dir()))
    app.config.from_mapping(config.as_flask())
    app.json.sort_keys = False  # type: ignore[attr-defined]

    observability.configure_logging(app.config["LOG_LEVEL"])
    Database(app.config["DATABASE_URL"], pool_size=app.config["DB_POOL_SIZE"]).init_app(app)

    api = WaymarkApi(app, spec_kwargs={"info": {"description": API_DESCRIPTION}})
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    for blueprint in _blueprints():
        api.register_blueprint(blueprint)

    observability.init_app(app)
    errors.init_app(app)
    _require_json_bodies(app)
    idempotency.init_app(app)  # after the body checks: a refused body claims no key

    from api.cli import register_cli

    register_cli(app)
    return app


def config_instance_dir() -> Any:
    from api.config import INSTANCE

    return INSTANCE


def _require_json_bodies(app: Flask) -> None:
    @app.before_request
    def _json_only() -> None:
        # A body that is not JSON is refused up front (415) instead of being read as empty.
        body_methods = ("POST", "PUT", "PATCH")
        if request.method in body_methods and request.content_length and not request.is_json:
            raise UnsupportedMediaType("Send the body as application/json.")


API_DESCRIPTION = """Waymark: the recovery companion API.

Errors are RFC 9457 `application/problem+json` with `type`, `title`, `status`, `detail`,
`request_id` and, for 422, `errors` (field name to messages). Authenticate with
`Authorization: Bearer <access_token>` from `POST /v1/auth/token`.
"""
