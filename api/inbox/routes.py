"""The in-app inbox: /v1/inbox."""

from __future__ import annotations

import uuid
from typing import Any

from flask_smorest import Blueprint

from api.db import get_session, utcnow
from api.inbox import services
from api.inbox.schemas import InboxItemSchema
from api.pagination import PageArgs, page_schema
from api.security import auth_required, current_user

blp = Blueprint("inbox", __name__, url_prefix="/v1/inbox", description="In-app inbox")

InboxPageSchema = page_schema(InboxItemSchema, "InboxPage")


@blp.get("")
@auth_required()
@blp.arguments(PageArgs, location="query")
@blp.response(200, InboxPageSchema)
def list_inbox(args: dict[str, Any]) -> Any:
    """Notifications delivered to the user, newest first."""
    items, cursor = services.list_inbox(
        get_session(), user=current_user(), limit=args["limit"], cursor=args["cursor"]
    )
    return {"items": items, "next_cursor": cursor}


@blp.post("/<uuid:notification_id>/read")
@auth_required()
@blp.response(200, InboxItemSchema)
@blp.alt_response(404, response="NOT_FOUND")
def read_inbox_item(notification_id: uuid.UUID) -> Any:
    """Mark an inbox item read."""
    session = get_session()
    item = services.mark_read(
        session, user=current_user(), notification_id=notification_id, now=utcnow()
    )
    session.commit()
    return item
