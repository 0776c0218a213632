"""The clinician API: /v1/clinician/*."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from api.audit.access import auth_required_audited
from api.auth import services as auth_services
from api.clinician import services
from api.clinician.schemas import InviteCodeSchema, RosterPageSchema
from api.db import get_session, utcnow
from api.disclosures.notice import add_notice_header, with_notice
from api.pagination import PageArgs
from api.security import auth_required, current_user

blp = Blueprint(
    "clinician", __name__, url_prefix="/v1/clinician", description="Clinicians: consented access"
)
blp.after_request(add_notice_header)


@blp.post("/invite-code/rotate")
@auth_required("clinician")
@blp.response(200, InviteCodeSchema)
def rotate_invite_code() -> Any:
    """Replace your invite code; the old one stops working (existing consents are kept)."""
    session = get_session()
    user = auth_services.rotate_invite_code(session, user=current_user())
    session.commit()
    return user


@blp.get("/patients")
@auth_required_audited("clinician", action="clinician.roster.list")
@blp.arguments(PageArgs, location="query")
@blp.response(200, RosterPageSchema)
def list_patients(args: dict[str, Any]) -> Any:
    """Patients with a consent in force to you, with its categories and open alerts."""
    page = services.roster(get_session(), clinician_id=current_user().id, now=utcnow(), **args)
    return with_notice(page)
