"""GET /v1/sync: what changed since the phone's cursor."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from api.db import get_session, utcnow
from api.fields import judged_at
from api.security import auth_required, current_user_id
from api.sync import services
from api.sync.schemas import SyncArgs, SyncPageSchema

blp = Blueprint("sync", __name__, url_prefix="/v1", description="Offline sync")


@blp.get("/sync")
@auth_required("patient")
@judged_at(utcnow)
@blp.arguments(SyncArgs(), location="query")
@blp.response(200, SyncPageSchema)
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
def get_changes(args: dict[str, Any]) -> Any:
    """What changed since a cursor (deletes as tombstones); ask again while has_more."""
    return services.changes_since(
        get_session(), user_id=current_user_id(), since=args["since"], limit=args["limit"]
    )
