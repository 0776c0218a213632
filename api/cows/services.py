"""COWS assessments: the clinician records one for a consented patient (the route lives with
the clinician's other patient routes); the patient reads their own back (queries.py)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.orm import Session

from api.consent.gate import Gate
from api.cows.models import CowsAssessment
from api.errors import ValidationError
from api.instruments import services as instrument_services
from api.offline import create_once

log = structlog.get_logger("waymark.cows")

COWS = "cows"
# A clinician's device clock may run a little ahead; an assessment further ahead is refused.
MAX_FUTURE = timedelta(minutes=10)


def record_cows(
    session: Session,
    *,
    clinician_id: uuid.UUID,
    patient_id: uuid.UUID,
    body: dict[str, Any],
    now: datetime,
) -> tuple[CowsAssessment, bool]:
    """Record a COWS assessment of a patient whose consent in force to the clinician covers
    symptoms, scored from the instrument's definition. Returns (assessment, created).

    Raises NotFound, CategoryNotConsented (the gate), ValidationError (answers.<item>, an
    assessed_at ahead of now), Conflict (the id was used with another body or by another).
    """
    gate = Gate.open(session, clinician_id=clinician_id, now=now, patient_id=patient_id)
    grant = gate.grant(patient_id, "symptoms")
    if body["assessed_at"] > now + MAX_FUTURE:
        raise ValidationError({"assessed_at": ["Must not be in the future."]})
    answers = instrument_services.validate_answers(COWS, body["answers"], field="answers")
    score = instrument_services.score(COWS, answers, field="answers")
    assessment = CowsAssessment(
        id=body.get("id"),
        patient_id=patient_id,
        clinician_id=clinician_id,
        consent_id=grant.consent_id,
        assessed_at=body["assessed_at"],
        instrument_version=instrument_services.get_instrument(COWS).version,
        answers=answers,
        total=score.total,
        severity=score.severity,
        created_at=now,
    )
    # The patient is part of what was sent: the same id for another patient is a conflict.
    assessment, created = create_once(session, assessment, body={**body, "patient_id": patient_id})
    if created:
        log.info(
            "cows.recorded",
            assessment_id=str(assessment.id),
            patient_id=str(patient_id),
            clinician_id=str(clinician_id),
        )
    return assessment, created
