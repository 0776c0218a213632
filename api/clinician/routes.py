"""The clinician API: /v1/clinician/*."""

from __future__ import annotations

import uuid
from typing import Any

from flask import current_app
from flask_smorest import Blueprint

from api.audit.access import auth_required_audited
from api.auth import services as auth_services
from api.checkins.schemas import CheckinListArgs
from api.clinician import services
from api.clinician.schemas import (
    ClinicianCheckinPageSchema,
    ClinicianCounselingSessionPageSchema,
    ClinicianCowsPageSchema,
    ClinicianDosePageSchema,
    CowsAssessmentSchema,
    CowsCreateSchema,
    InviteCodeSchema,
    RosterPageSchema,
)
from api.counseling.schemas import SessionListArgs
from api.cows import services as cows_services
from api.db import get_session, utcnow
from api.disclosures.notice import add_notice_header, with_notice
from api.medications.schemas import DoseListArgs
from api.pagination import PageArgs, RangePageArgs
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
    session = get_session()
    page = services.roster(session, clinician_id=current_user().id, now=utcnow(), **args)
    session.commit()  # the audit row of this read
    return with_notice(page)


@blp.get("/patients/<uuid:patient_id>/checkins")
@auth_required_audited("clinician", action="clinician.checkins.read")
@blp.arguments(CheckinListArgs, location="query", as_kwargs=True)
@blp.response(200, ClinicianCheckinPageSchema)
@blp.alt_response(403, response="FORBIDDEN", description="The consent lacks symptoms")
@blp.alt_response(404, response="NOT_FOUND", description="No consent in force")
def list_patient_checkins(patient_id: uuid.UUID, **args: Any) -> Any:
    """A consented patient's check-ins (category symptoms), as the patient sees them."""
    session = get_session()
    page = services.read_checkins(
        session, clinician_id=current_user().id, patient_id=patient_id, now=utcnow(), **args
    )
    session.commit()
    return with_notice(page)


@blp.get("/patients/<uuid:patient_id>/doses")
@auth_required_audited("clinician", action="clinician.doses.read")
@blp.arguments(DoseListArgs, location="query", as_kwargs=True)
@blp.response(200, ClinicianDosePageSchema)
@blp.alt_response(403, response="FORBIDDEN", description="The consent lacks medications")
@blp.alt_response(404, response="NOT_FOUND", description="No consent in force")
def list_patient_doses(patient_id: uuid.UUID, **args: Any) -> Any:
    """A consented patient's doses (category medications), as the patient sees them."""
    session = get_session()
    page = services.read_doses(
        session,
        clinician_id=current_user().id,
        patient_id=patient_id,
        window_minutes=current_app.config["ADHERENCE_ON_TIME_WINDOW_MINUTES"],
        now=utcnow(),
        **args,
    )
    session.commit()
    return with_notice(page)


@blp.get("/patients/<uuid:patient_id>/counseling-sessions")
@auth_required_audited("clinician", action="clinician.counseling_sessions.read")
@blp.arguments(SessionListArgs, location="query", as_kwargs=True)
@blp.response(200, ClinicianCounselingSessionPageSchema)
@blp.alt_response(403, response="FORBIDDEN", description="The consent lacks counseling")
@blp.alt_response(404, response="NOT_FOUND", description="No consent in force")
def list_patient_counseling_sessions(patient_id: uuid.UUID, **args: Any) -> Any:
    """A consented patient's counseling sessions (category counseling), without their notes."""
    session = get_session()
    page = services.read_counseling_sessions(
        session, clinician_id=current_user().id, patient_id=patient_id, now=utcnow(), **args
    )
    session.commit()
    return with_notice(page)


@blp.post("/patients/<uuid:patient_id>/cows")
@auth_required_audited("clinician", action="clinician.cows.create")
@blp.arguments(CowsCreateSchema)
@blp.response(201, CowsAssessmentSchema)
@blp.alt_response(200, schema=CowsAssessmentSchema, description="A resend of the same create")
@blp.alt_response(403, response="FORBIDDEN", description="The consent lacks symptoms")
@blp.alt_response(404, response="NOT_FOUND", description="No consent in force")
@blp.alt_response(409, response="CONFLICT")
def create_patient_cows(body: dict[str, Any], patient_id: uuid.UUID) -> Any:
    """Record a COWS assessment of a consented patient; answered with its total and severity."""
    session = get_session()
    assessment, created = cows_services.record_cows(
        session, clinician_id=current_user().id, patient_id=patient_id, body=body, now=utcnow()
    )
    session.commit()
    return assessment, 201 if created else 200


@blp.get("/patients/<uuid:patient_id>/cows")
@auth_required_audited("clinician", action="clinician.cows.read")
@blp.arguments(RangePageArgs, location="query", as_kwargs=True)
@blp.response(200, ClinicianCowsPageSchema)
@blp.alt_response(403, response="FORBIDDEN", description="The consent lacks symptoms")
@blp.alt_response(404, response="NOT_FOUND", description="No consent in force")
def list_patient_cows(patient_id: uuid.UUID, **args: Any) -> Any:
    """A consented patient's COWS assessments (category symptoms), newest first."""
    session = get_session()
    page = services.read_cows(
        session, clinician_id=current_user().id, patient_id=patient_id, now=utcnow(), **args
    )
    session.commit()
    return with_notice(page)
