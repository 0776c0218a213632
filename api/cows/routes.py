"""/v1/cows-assessments: the COWS assessments clinicians recorded about the caller (read only).

A patient reading their own record: no disclosure, and not audited (docs/consent.md).
"""

from __future__ import annotations

import uuid
from typing import Any

from flask_smorest import Blueprint

from api.cows import queries
from api.cows.schemas import CowsListArgs, OwnCowsAssessmentSchema, OwnCowsPageSchema
from api.db import get_session
from api.security import auth_required, current_user_id

blp = Blueprint(
    "cows", __name__, url_prefix="/v1", description="COWS assessments about you (read only)"
)


@blp.get("/cows-assessments")
@auth_required("patient")
@blp.arguments(CowsListArgs(), location="query")
@blp.response(200, OwnCowsPageSchema)
def list_cows_assessments(args: dict[str, Any]) -> Any:
    """Your COWS assessments, newest first, by assessed_at (from inclusive, to exclusive)."""
    items, next_cursor = queries.list_assessments(
        get_session(),
        patient_id=current_user_id(),
        from_=args["from_"],
        to=args["to"],
        limit=args["limit"],
        cursor=args["cursor"],
    )
    return {"items": items, "next_cursor": next_cursor}


@blp.get("/cows-assessments/<uuid:assessment_id>")
@auth_required("patient")
@blp.response(200, OwnCowsAssessmentSchema)
@blp.alt_response(404, response="NOT_FOUND")
def get_cows_assessment(assessment_id: uuid.UUID) -> Any:
    """One of your COWS assessments."""
    return queries.get_assessment(
        get_session(), patient_id=current_user_id(), assessment_id=assessment_id
    )
