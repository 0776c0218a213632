"""GET /v1/crisis-resources: the deployment's crisis lines, open to anyone."""

from __future__ import annotations

import json
from typing import Any

from flask import Response, current_app, request
from flask.blueprints import BlueprintSetupState
from flask_smorest import Blueprint

from api.crisis import services
from api.crisis.schemas import CrisisResourceListSchema

blp = Blueprint(
    "crisis",
    __name__,
    url_prefix="/v1",
    description="Crisis lines for the deployment's region. No sign-in: the app shows them on any "
    "screen, before sign-in too.",
)

_EXTENSION = "waymark.crisis_resources"
MAX_AGE = 3600


@blp.record_once
def _load(state: BlueprintSetupState) -> None:
    # Parsed when the app is made: a malformed setting stops the deployment instead of a phone.
    items = services.parse_resources(state.app.config["CRISIS_RESOURCES"])
    body = CrisisResourceListSchema().dump({"items": items})
    state.app.extensions[_EXTENSION] = json.dumps(body, separators=(",", ":")).encode()


@blp.get("/crisis-resources")
@blp.response(
    200,
    CrisisResourceListSchema,
    headers={
        "ETag": {"description": "Changes when the list does.", "schema": {"type": "string"}},
        "Cache-Control": {
            "description": f"`public, max-age={MAX_AGE}`: any cache may keep the list.",
            "schema": {"type": "string"},
        },
    },
    example={
        "items": [
            {
                "name": "988 Suicide & Crisis Lifeline",
                "contact": "Call or text 988",
                "url": "https://988lifeline.org/",
            },
            {
                "name": "SAMHSA National Helpline",
                "contact": "1-800-662-4357 (free, confidential, 24/7)",
                "url": None,
            },
        ]
    },
)
@blp.alt_response(
    304,
    description="The cached copy (`If-None-Match`) is current.",
    headers={
        "ETag": {
            "description": "The list's tag (RFC 9110: a 304 repeats it).",
            "schema": {"type": "string"},
            "required": True,
        },
        "Cache-Control": {
            "description": f"`public, max-age={MAX_AGE}`.",
            "schema": {"type": "string"},
        },
    },
)
def list_crisis_resources() -> Any:
    """The deployment's crisis lines (CRISIS_RESOURCES); no sign-in, cacheable."""
    response = Response(current_app.extensions[_EXTENSION], mimetype="application/json")
    response.add_etag()
    response.headers["Cache-Control"] = f"public, max-age={MAX_AGE}"
    return response.make_conditional(request)
