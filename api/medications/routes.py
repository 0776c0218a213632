"""Medication regimens, dose logs and adherence: /v1/medications, /v1/doses, /v1/adherence."""

from __future__ import annotations

import uuid
from typing import Any

from flask import current_app
from flask_smorest import Blueprint

from api.db import get_session, utcnow
from api.fields import instant, judged_at
from api.medications import queries, services
from api.medications.schemas import (
    AdherenceArgs,
    AdherenceSchema,
    DoseCreateSchema,
    DoseListArgs,
    DosePageSchema,
    DosePatchSchema,
    DoseSchema,
    MedicationCreateSchema,
    MedicationListArgs,
    MedicationPageSchema,
    MedicationPatchSchema,
    MedicationSchema,
)
from api.security import auth_required, current_user

blp = Blueprint(
    "medications", __name__, url_prefix="/v1", description="Medication regimens, doses, adherence"
)


def _window() -> int:
    return int(current_app.config["ADHERENCE_ON_TIME_WINDOW_MINUTES"])


@blp.post("/medications")
@auth_required("patient")
@judged_at(utcnow)
@blp.arguments(MedicationCreateSchema)
@blp.response(201, MedicationSchema)
@blp.alt_response(200, schema=MedicationSchema, description="A resend of the same create")
@blp.alt_response(409, response="CONFLICT")
def create_medication(body: dict[str, Any]) -> Any:
    """Add a regimen (a client id makes it idempotent)."""
    session, user = get_session(), current_user()
    medication, created = services.create_medication(
        session, user_id=user.id, timezone=user.timezone, body=body, now=instant()
    )
    session.commit()
    return medication, 201 if created else 200


@blp.get("/medications")
@auth_required("patient")
@judged_at(utcnow)
@blp.arguments(MedicationListArgs, location="query")
@blp.response(200, MedicationPageSchema)
def list_medications(args: dict[str, Any]) -> Any:
    """The user's regimens, newest first (archived ones with include_archived=true)."""
    items, next_cursor = services.list_medications(get_session(), user_id=current_user().id, **args)
    return {"items": items, "next_cursor": next_cursor}


@blp.get("/medications/<uuid:medication_id>")
@auth_required("patient")
@judged_at(utcnow)
@blp.response(200, MedicationSchema)
@blp.alt_response(404, response="NOT_FOUND")
def get_medication(medication_id: uuid.UUID) -> Any:
    """One regimen."""
    return services.get_medication(
        get_session(), user_id=current_user().id, medication_id=medication_id
    )


@blp.patch("/medications/<uuid:medication_id>")
@auth_required("patient")
@judged_at(utcnow)
@blp.arguments(MedicationPatchSchema)
@blp.response(200, MedicationSchema)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT")
def update_medication(changes: dict[str, Any], medication_id: uuid.UUID) -> Any:
    """Change a regimen; a new schedule applies from now on."""
    session, user = get_session(), current_user()
    medication = services.update_medication(
        session,
        user_id=user.id,
        medication_id=medication_id,
        timezone=user.timezone,
        changes=changes,
        now=instant(),
    )
    session.commit()
    return medication


@blp.delete("/medications/<uuid:medication_id>")
@auth_required("patient")
@blp.response(204)
@blp.alt_response(404, response="NOT_FOUND")
def archive_medication(medication_id: uuid.UUID) -> None:
    """Archive a regimen: no more doses are scheduled; its history stays."""
    session = get_session()
    services.archive_medication(
        session, user_id=current_user().id, medication_id=medication_id, now=utcnow()
    )
    session.commit()


@blp.post("/medications/<uuid:medication_id>/doses")
@auth_required("patient")
@blp.arguments(DoseCreateSchema)
@blp.response(201, DoseSchema)
@blp.alt_response(200, schema=DoseSchema, description="A resend of the same log")
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT")
def log_dose(body: dict[str, Any], medication_id: uuid.UUID) -> Any:
    """Log a dose: taken or skipped, answering one scheduled dose (or as-needed)."""
    session, user = get_session(), current_user()
    dose, created = services.log_dose(
        session,
        user_id=user.id,
        medication_id=medication_id,
        body=body,
        now=utcnow(),
        timezone=user.timezone,
    )
    session.commit()
    return dose, 201 if created else 200


@blp.get("/doses")
@auth_required("patient")
@blp.arguments(DoseListArgs, location="query")
@blp.response(200, DosePageSchema)
@blp.alt_response(404, response="NOT_FOUND")
def list_doses(args: dict[str, Any]) -> Any:
    """Logged doses and missed scheduled doses, newest first."""
    items, next_cursor = queries.list_doses(
        get_session(),
        user_id=current_user().id,
        now=utcnow(),
        start=args["from_"],
        end=args["to"],
        medication_id=args["medication_id"],
        limit=args["limit"],
        cursor=args["cursor"],
        window_minutes=_window(),
    )
    return {"items": items, "next_cursor": next_cursor}


@blp.patch("/doses/<uuid:dose_id>")
@auth_required("patient")
@blp.arguments(DosePatchSchema)
@blp.response(200, DoseSchema)
@blp.alt_response(404, response="NOT_FOUND")
def update_dose(changes: dict[str, Any], dose_id: uuid.UUID) -> Any:
    """Correct a dose log (status, taken_at, note)."""
    session = get_session()
    dose = services.update_dose(
        session, user_id=current_user().id, dose_id=dose_id, changes=changes, now=utcnow()
    )
    session.commit()
    return dose


@blp.delete("/doses/<uuid:dose_id>")
@auth_required("patient")
@blp.response(204)
@blp.alt_response(404, response="NOT_FOUND")
def delete_dose(dose_id: uuid.UUID) -> None:
    """Remove a dose log."""
    session = get_session()
    services.delete_dose(session, user_id=current_user().id, dose_id=dose_id, now=utcnow())
    session.commit()


@blp.get("/adherence")
@auth_required("patient")
@blp.arguments(AdherenceArgs, location="query")
@blp.response(200, AdherenceSchema)
def get_adherence(args: dict[str, Any]) -> Any:
    """Dose adherence and PDC per regimen and overall for a period."""
    return queries.adherence_report(
        get_session(),
        user_id=current_user().id,
        now=utcnow(),
        start=args["from_"],
        end=args["to"],
        window_minutes=_window(),
    )
