"""Reads of a patient's own COWS assessments, each with the clinician who recorded it.

A page costs two queries whatever its size: the assessments, then the clinicians' names of the
whole page at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth.models import User
from api.cows.models import CowsAssessment
from api.errors import NotFound, ValidationError
from api.pagination import keyset_page


def _with_clinicians(
    session: Session, assessments: Sequence[CowsAssessment]
) -> list[dict[str, Any]]:
    """Each assessment as the patient sees it; `clinician` is None once that account is gone."""
    ids = {a.clinician_id for a in assessments if a.clinician_id is not None}
    clinicians: dict[uuid.UUID, dict[str, Any]] = {}
    if ids:
        rows = session.execute(
            select(User.id, User.display_name, User.organization).where(User.id.in_(ids))
        )
        clinicians = {
            row.id: {
                "id": row.id,
                "display_name": row.display_name,
                "organization": row.organization,
            }
            for row in rows
        }
    return [
        {
            "id": a.id,
            "assessed_at": a.assessed_at,
            "answers": a.answers,
            "total": a.total,
            "severity": a.severity,
            "instrument_version": a.instrument_version,
            "clinician": clinicians.get(a.clinician_id) if a.clinician_id is not None else None,
            "created_at": a.created_at,
        }
        for a in assessments
    ]


def list_assessments(
    session: Session,
    *,
    patient_id: uuid.UUID,
    from_: datetime | None,
    to: datetime | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """The patient's assessments, newest first; `from_` inclusive, `to` exclusive, on
    assessed_at. Raises ValidationError (to before from, a cursor not issued here)."""
    if from_ is not None and to is not None and from_ > to:
        raise ValidationError({"to": ["Must not be before from."]})
    stmt = select(CowsAssessment).where(CowsAssessment.patient_id == patient_id)
    if from_ is not None:
        stmt = stmt.where(CowsAssessment.assessed_at >= from_)
    if to is not None:
        stmt = stmt.where(CowsAssessment.assessed_at < to)
    assessments, next_cursor = keyset_page(
        session,
        stmt,
        order=CowsAssessment.assessed_at,
        tiebreak=CowsAssessment.id,
        limit=limit,
        cursor=cursor,
    )
    return _with_clinicians(session, assessments), next_cursor


def get_assessment(
    session: Session, *, patient_id: uuid.UUID, assessment_id: uuid.UUID
) -> dict[str, Any]:
    """Raises NotFound for an unknown id or another patient's assessment."""
    assessment = session.scalar(
        select(CowsAssessment).where(
            CowsAssessment.id == assessment_id, CowsAssessment.patient_id == patient_id
        )
    )
    if assessment is None:
        raise NotFound("No such COWS assessment.")
    return _with_clinicians(session, [assessment])[0]
