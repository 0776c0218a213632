"""GET /v1/agenda: the user's local day, computed by the server."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_smorest import Blueprint
from marshmallow import RAISE

from api.agenda import queries
from api.agenda.schemas import AgendaArgs, AgendaSchema
from api.db import get_session, utcnow
from api.security import auth_required, current_user

blp = Blueprint(
    "agenda",
    __name__,
    url_prefix="/v1",
    description="Your day: scheduled doses and their state, counseling sessions, the check-in "
    "reminder, all computed in your time zone.",
)

EXAMPLE = {
    "date": "2026-03-08",
    "timezone": "America/New_York",
    "doses": [
        {
            "medication_id": "0b7f2c1e-5a4d-4b8e-9a61-3f2d9c7e1a20",
            "name": "Buprenorphine/naloxone",
            "dose": 8,
            "unit": "mg",
            "local_time": "08:00",
            "scheduled_for": "2026-03-08T12:00:00+00:00",
            "state": "taken",
            "dose_id": "5d0c8e7a-2f41-4b6a-8c3e-9b1a7d2e4f60",
        },
        {
            "medication_id": "0b7f2c1e-5a4d-4b8e-9a61-3f2d9c7e1a20",
            "name": "Buprenorphine/naloxone",
            "dose": 8,
            "unit": "mg",
            "local_time": "20:00",
            "scheduled_for": "2026-03-09T00:00:00+00:00",
            "state": "due",
            "dose_id": None,
        },
    ],
    "counseling_sessions": [],
    "checkin": {
        "reminder_local_time": "21:00",
        "reminder_at": "2026-03-09T01:00:00+00:00",
        "checked_in": False,
    },
}


@blp.get("/agenda")
@auth_required("patient")
@blp.arguments(AgendaArgs, location="query", unknown=RAISE)
@blp.response(200, AgendaSchema, example=EXAMPLE)
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
def get_agenda(args: dict[str, Any]) -> Any:
    """Your local day: doses with their scheduled instant and state, sessions, the check-in."""
    user = current_user()
    return queries.agenda(
        get_session(),
        user_id=user.id,
        timezone=user.timezone,
        day=args["date"],
        now=utcnow(),
        window_minutes=int(current_app.config["ADHERENCE_ON_TIME_WINDOW_MINUTES"]),
    )
