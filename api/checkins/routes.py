"""/v1/checkins: the patient's own check-ins (contract: "Instruments and check-ins")."""

from __future__ import annotations

import uuid
from typing import Any

from flask_smorest import Blueprint

from api.checkins import services
from api.checkins.schemas import (
    CheckinCreateSchema,
    CheckinListArgs,
    CheckinPageSchema,
    CheckinPatchSchema,
    CheckinSchema,
)
from api.db import get_session, utcnow
from api.security import auth_required, current_user_id

blp = Blueprint("checkins", __name__, url_prefix="/v1", description="Symptom check-ins")


@blp.post("/checkins")
@auth_required("patient")
@blp.arguments(CheckinCreateSchema())
@blp.response(201, CheckinSchema)
@blp.alt_response(200, schema=CheckinSchema, description="A resend of the same id and body")
@blp.alt_response(409, response="CONFLICT")
def create_checkin(body: dict[str, Any]) -> Any:
    """Record a check-in (an optional client id makes resends safe)."""
    session = get_session()
    checkin, created = services.create_checkin(
        session, user_id=current_user_id(), body=body, now=utcnow()
    )
    session.commit()
    return checkin, 201 if created else 200


@blp.get("/checkins")
@auth_required("patient")
@blp.arguments(CheckinListArgs(), location="query")
@blp.response(200, CheckinPageSchema)
def list_checkins(args: dict[str, Any]) -> Any:
    """The caller's check-ins, newest first, by recorded_at (from inclusive, to exclusive)."""
    items, next_cursor = services.list_checkins(
        get_session(),
        user_id=current_user_id(),
        from_=args["from_"],
        to=args["to"],
        limit=args["limit"],
        cursor=args["cursor"],
    )
    return {"items": items, "next_cursor": next_cursor}


@blp.get("/checkins/<uuid:checkin_id>")
@auth_required("patient")
@blp.response(200, CheckinSchema)
@blp.alt_response(404, response="NOT_FOUND")
def get_checkin(checkin_id: uuid.UUID) -> Any:
    """One check-in."""
    return services.get_checkin(get_session(), user_id=current_user_id(), checkin_id=checkin_id)


@blp.patch("/checkins/<uuid:checkin_id>")
@auth_required("patient")
@blp.arguments(CheckinPatchSchema())
@blp.response(200, CheckinSchema)
@blp.alt_response(404, response="NOT_FOUND")
def update_checkin(changes: dict[str, Any], checkin_id: uuid.UUID) -> Any:
    """Edit a check-in; the score is computed again."""
    session = get_session()
    checkin = services.update_checkin(
        session, user_id=current_user_id(), checkin_id=checkin_id, changes=changes, now=utcnow()
    )
    session.commit()
    return checkin


@blp.delete("/checkins/<uuid:checkin_id>")
@auth_required("patient")
@blp.response(204)
@blp.alt_response(404, response="NOT_FOUND")
def delete_checkin(checkin_id: uuid.UUID) -> None:
    """Delete a check-in (phones learn of it as a tombstone in /v1/sync)."""
    session = get_session()
    services.delete_checkin(session, user_id=current_user_id(), checkin_id=checkin_id, now=utcnow())
    session.commit()
