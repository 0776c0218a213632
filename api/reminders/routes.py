"""Reminder rules: /v1/reminders."""

from __future__ import annotations

import uuid
from typing import Any

from flask_smorest import Blueprint

from api.db import get_session, utcnow
from api.pagination import PageArgs, page_schema
from api.reminders import services
from api.reminders.schemas import (
    ReminderCreateSchema,
    ReminderPatchSchema,
    ReminderSchema,
    SnoozeSchema,
)
from api.security import auth_required, current_user

blp = Blueprint("reminders", __name__, url_prefix="/v1/reminders", description="Reminders")

ReminderPageSchema = page_schema(ReminderSchema, "ReminderPage")


@blp.post("")
@auth_required("patient")
@blp.arguments(ReminderCreateSchema)
@blp.response(201, ReminderSchema)
@blp.alt_response(200, schema=ReminderSchema, description="A replay of the same id and body")
@blp.alt_response(409, response="CONFLICT")
def create_reminder(body: dict[str, Any]) -> Any:
    """Create a reminder rule."""
    session = get_session()
    rule, created = services.create_rule(session, user=current_user(), body=body, now=utcnow())
    session.commit()
    return rule, 201 if created else 200


@blp.get("")
@auth_required("patient")
@blp.arguments(PageArgs, location="query")
@blp.response(200, ReminderPageSchema)
def list_reminders(args: dict[str, Any]) -> Any:
    """The user's reminder rules, newest first."""
    items, cursor = services.list_rules(
        get_session(), user_id=current_user().id, limit=args["limit"], cursor=args["cursor"]
    )
    return {"items": items, "next_cursor": cursor}


@blp.get("/<uuid:reminder_id>")
@auth_required("patient")
@blp.response(200, ReminderSchema)
@blp.alt_response(404, response="NOT_FOUND")
def get_reminder(reminder_id: uuid.UUID) -> Any:
    """One reminder rule."""
    return services.get_rule(get_session(), user_id=current_user().id, rule_id=reminder_id)


@blp.patch("/<uuid:reminder_id>")
@auth_required("patient")
@blp.arguments(ReminderPatchSchema)
@blp.response(200, ReminderSchema)
@blp.alt_response(404, response="NOT_FOUND")
def update_reminder(changes: dict[str, Any], reminder_id: uuid.UUID) -> Any:
    """Change a rule's time, days, lead time, channels or whether it is on."""
    session = get_session()
    rule = services.update_rule(
        session, user=current_user(), rule_id=reminder_id, changes=changes, now=utcnow()
    )
    session.commit()
    return rule


@blp.delete("/<uuid:reminder_id>")
@auth_required("patient")
@blp.response(204)
@blp.alt_response(404, response="NOT_FOUND")
def delete_reminder(reminder_id: uuid.UUID) -> None:
    """Delete a rule; what it queued and has not sent is cancelled."""
    session = get_session()
    services.delete_rule(session, user=current_user(), rule_id=reminder_id, now=utcnow())
    session.commit()


@blp.post("/<uuid:reminder_id>/snooze")
@auth_required("patient")
@blp.arguments(SnoozeSchema)
@blp.response(200, ReminderSchema)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT")
def snooze_reminder(body: dict[str, Any], reminder_id: uuid.UUID) -> Any:
    """Fire the reminder once more, 5 to 240 minutes from now."""
    session = get_session()
    rule = services.snooze_rule(
        session, user=current_user(), rule_id=reminder_id, minutes=body["minutes"], now=utcnow()
    )
    session.commit()
    return rule
