"""Liveness and readiness probes (outside /v1)."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from api.db import get_session, utcnow
from api.ops import services
from api.version import __version__

blp = Blueprint("ops", __name__, description="Health and readiness")


class HealthSchema(Schema):
    status = fields.String(required=True)
    version = fields.String(required=True, metadata={"description": "The release (CHANGELOG.md)"})


class ReadySchema(Schema):
    status = fields.String(required=True)
    database = fields.String(required=True)
    scheduler = fields.Dict(required=True)


@blp.get("/healthz")
@blp.response(200, HealthSchema)
def get_health() -> Any:
    """Liveness: the process is up."""
    return {"status": "ok", "version": __version__}


@blp.get("/readyz")
@blp.response(200, ReadySchema)
@blp.alt_response(503, schema=ReadySchema, description="The database is unreachable")
def get_ready() -> Any:
    """Readiness: the database answers; also reports whether the scheduler's heartbeat is fresh."""
    session = get_session()
    if not services.database_ready(session):
        session.rollback()
        return {"status": "unavailable", "database": "unreachable", "scheduler": {}}, 503
    scheduler = services.scheduler_status(
        session, now=utcnow(), stale_after=current_app.config["SCHEDULER_STALE_AFTER"]
    )
    return {"status": "ok", "database": "ok", "scheduler": scheduler}
