"""Counseling sessions and attendance: /v1/counseling-sessions, /v1/counseling/attendance."""

from __future__ import annotations

import uuid
from typing import Any

from flask_smorest import Blueprint

from api.counseling import services
from api.counseling.schemas import (
    AttendanceArgs,
    AttendanceSchema,
    AttendanceSummarySchema,
    CounselingSessionCreateSchema,
    CounselingSessionPageSchema,
    CounselingSessionPatchSchema,
    CounselingSessionSchema,
    SessionListArgs,
)
from api.db import get_session, utcnow
from api.security import auth_required, current_user

blp = Blueprint("counseling", __name__, url_prefix="/v1", description="Counseling sessions")


@blp.post("/counseling-sessions")
@auth_required("patient")
@blp.arguments(CounselingSessionCreateSchema)
@blp.response(201, CounselingSessionSchema)
@blp.alt_response(200, schema=CounselingSessionSchema, description="A resend of the same create")
@blp.alt_response(409, response="CONFLICT")
def create_counseling_session(body: dict[str, Any]) -> Any:
    """Add a counseling session (a client id makes it idempotent)."""
    session = get_session()
    item, created = services.create_session(
        session, user_id=current_user().id, body=body, now=utcnow()
    )
    session.commit()
    return item, 201 if created else 200


@blp.get("/counseling-sessions")
@auth_required("patient")
@blp.arguments(SessionListArgs, location="query")
@blp.response(200, CounselingSessionPageSchema)
def list_counseling_sessions(args: dict[str, Any]) -> Any:
    """The user's sessions, latest first, optionally in a starts_at range."""
    items, next_cursor = services.list_sessions(
        get_session(),
        user_id=current_user().id,
        start=args["from_"],
        end=args["to"],
        limit=args["limit"],
        cursor=args["cursor"],
    )
    return {"items": items, "next_cursor": next_cursor}


@blp.get("/counseling-sessions/<uuid:session_id>")
@auth_required("patient")
@blp.response(200, CounselingSessionSchema)
@blp.alt_response(404, response="NOT_FOUND")
def get_counseling_session(session_id: uuid.UUID) -> Any:
    """One session."""
    return services.get_session_for(get_session(), user_id=current_user().id, session_id=session_id)


@blp.patch("/counseling-sessions/<uuid:session_id>")
@auth_required("patient")
@blp.arguments(CounselingSessionPatchSchema)
@blp.response(200, CounselingSessionSchema)
@blp.alt_response(404, response="NOT_FOUND")
def update_counseling_session(changes: dict[str, Any], session_id: uuid.UUID) -> Any:
    """Change a session."""
    session = get_session()
    item = services.update_session(
        session, user_id=current_user().id, session_id=session_id, changes=changes, now=utcnow()
    )
    session.commit()
    return item


@blp.delete("/counseling-sessions/<uuid:session_id>")
@auth_required("patient")
@blp.response(204)
@blp.alt_response(404, response="NOT_FOUND")
def delete_counseling_session(session_id: uuid.UUID) -> None:
    """Delete a session."""
    session = get_session()
    services.delete_session(session, user_id=current_user().id, session_id=session_id, now=utcnow())
    session.commit()


@blp.put("/counseling-sessions/<uuid:session_id>/attendance")
@auth_required("patient")
@blp.arguments(AttendanceSchema)
@blp.response(200, CounselingSessionSchema)
@blp.alt_response(404, response="NOT_FOUND")
def set_counseling_attendance(body: dict[str, Any], session_id: uuid.UUID) -> Any:
    """Record the attendance of a session."""
    session = get_session()
    item = services.set_attendance(
        session,
        user_id=current_user().id,
        session_id=session_id,
        status=body["status"],
        now=utcnow(),
    )
    session.commit()
    return item


@blp.get("/counseling/attendance")
@auth_required("patient")
@blp.arguments(AttendanceArgs, location="query")
@blp.response(200, AttendanceSummarySchema)
def get_counseling_attendance(args: dict[str, Any]) -> Any:
    """Sessions per attendance status and the attendance rate for a period."""
    return services.attendance_summary(
        get_session(), user_id=current_user().id, start=args["from_"], end=args["to"]
    )
