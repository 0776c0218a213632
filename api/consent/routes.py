"""Linking and consents: /v1/clinicians/lookup, /v1/consents."""

from __future__ import annotations

import uuid
from typing import Any

from flask import current_app
from flask_smorest import Blueprint

from api.consent import services
from api.consent import texts as consent_texts
from api.consent.models import Consent
from api.consent.schemas import (
    ClinicianCardSchema,
    ClinicianLookupArgs,
    ConsentCreateSchema,
    ConsentListArgs,
    ConsentPageSchema,
    ConsentSchema,
    ConsentTextSchema,
)
from api.consent.signals import consent_narrowed
from api.db import get_session, in_own_transaction, utcnow
from api.errors import NotFound
from api.fields import instant, judged_at
from api.ratelimit import make_counter
from api.security import auth_required, client_address, current_user

blp = Blueprint("consent", __name__, url_prefix="/v1", description="Consents and linking")


def lookup_limits() -> services.LookupLimits:
    cfg = current_app.config
    return services.LookupLimits(
        cfg["CLINICIAN_LOOKUP_MAX_PER_USER"],
        cfg["CLINICIAN_LOOKUP_MAX_PER_ADDRESS"],
        cfg["CLINICIAN_LOOKUP_WINDOW"],
    )


@blp.get("/clinicians/lookup")
@auth_required("patient")
@blp.arguments(ClinicianLookupArgs, location="query")
@blp.response(200, ClinicianCardSchema)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
def lookup_clinician(args: dict[str, Any]) -> Any:
    """Find a clinician by the invite code they gave you (there is no directory)."""
    session = get_session()
    clinician = services.lookup_clinician(
        session,
        invite_code=args["invite_code"],
        patient_id=current_user().id,
        address=client_address(),
        counter=make_counter(current_app.config["REDIS_URL"]),
        limits=lookup_limits(),
        now=utcnow(),
        own_transaction=in_own_transaction,  # the counted lookup outlives a 404
    )
    session.commit()
    return clinician


@blp.post("/consents")
@auth_required("patient")
@judged_at(utcnow)
@blp.arguments(ConsentCreateSchema)
@blp.response(201, ConsentSchema)
@blp.alt_response(200, schema=ConsentSchema, description="A replay of the same id and body")
@blp.alt_response(409, response="CONFLICT")
def create_consent(body: dict[str, Any]) -> Any:
    """Sign a consent to share categories of your data with a clinician."""
    session = get_session()
    consent, created = services.create_consent(
        session,
        patient=current_user(),
        body=body,
        discloser=current_app.config["PROGRAM_NAME"],
        revocation_statement=current_app.config["CONSENT_REVOCATION_STATEMENT"],
        now=instant(),
    )
    if created and consent.replaces_id is not None:
        # The new consent replaced (revoked) an older one: what that clinician sees may shrink.
        _narrowed(consent)
    session.commit()
    return consent, 201 if created else 200


@blp.get("/consents")
@auth_required("patient")
@judged_at(utcnow)
@blp.arguments(ConsentListArgs, location="query")
@blp.response(200, ConsentPageSchema)
def list_consents(args: dict[str, Any]) -> Any:
    """Your consents, newest first, each with its status now."""
    return services.list_consents(
        get_session(), patient_id=current_user().id, now=instant(), **args
    )


@blp.get("/consents/<uuid:consent_id>")
@auth_required("patient")
@judged_at(utcnow)
@blp.response(200, ConsentSchema)
@blp.alt_response(404, response="NOT_FOUND")
def get_consent(consent_id: uuid.UUID) -> Any:
    """One of your consents."""
    return services.get_consent(get_session(), patient_id=current_user().id, consent_id=consent_id)


@blp.post("/consents/<uuid:consent_id>/revoke")
@auth_required("patient")
@judged_at(utcnow)
@blp.response(200, ConsentSchema)
@blp.alt_response(404, response="NOT_FOUND")
def revoke_consent(consent_id: uuid.UUID) -> Any:
    """Revoke a consent, effective at once (revoking again changes nothing)."""
    session = get_session()
    consent = services.revoke_consent(
        session, patient_id=current_user().id, consent_id=consent_id, now=instant()
    )
    _narrowed(consent)
    session.commit()
    return consent


@blp.get("/consent-texts")
@blp.response(200, ConsentTextSchema(many=True))
def list_consent_texts() -> Any:
    """Every published consent text version, in full (public: a recipient reads what was signed)."""
    return consent_texts.versions()


@blp.get("/consent-texts/<version>")
@blp.response(200, ConsentTextSchema)
@blp.alt_response(404, response="NOT_FOUND")
def get_consent_text(version: str) -> Any:
    """One consent text version in full, as patients signed it; it never changes."""
    text = consent_texts.get(version)
    if text is None:
        raise NotFound("No such consent text version.")
    return text


def _narrowed(consent: Consent) -> None:
    """Tell the features that hold derived copies (bulk export files) before the commit."""
    consent_narrowed.send(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        session=get_session(),
        patient_id=consent.patient_id,
        recipient_id=consent.recipient_id,
        now=utcnow(),
    )
