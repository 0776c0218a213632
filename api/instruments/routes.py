"""GET /v1/instruments: the scales the app renders."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from flask import Response
from flask_smorest import Blueprint

from api.instruments import services
from api.instruments.schemas import InstrumentListSchema
from api.security import auth_required

blp = Blueprint("instruments", __name__, url_prefix="/v1", description="Withdrawal scales")


@cache
def _body() -> bytes:
    # The definitions are fixed at import: dump them once, not on every call.
    data = InstrumentListSchema().dump({"items": services.list_instruments(), "next_cursor": None})
    return json.dumps(data, separators=(",", ":")).encode()


@blp.get("/instruments")
@auth_required()
@blp.response(200, InstrumentListSchema)
def list_instruments() -> Any:
    """The withdrawal scales, with items, allowed values, labels and bands."""
    return Response(_body(), mimetype="application/json")
