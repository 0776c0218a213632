"""Export: /v1/export (own data), /fhir Bulk Data (erasure, DELETE /v1/me: api/account)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from flask import Response, current_app, request, stream_with_context, url_for
from flask_smorest import Blueprint
from marshmallow import RAISE
from sqlalchemy.orm import Session

from api.audit.access import auth_required_audited
from api.consent.signals import consent_narrowed
from api.db import get_session, utcnow
from api.export import services
from api.export.schemas import BulkKickoffArgs, ExportArgs, ManifestSchema
from api.export.storage import ExportStorage, storage_from_config
from api.openapi import EXTRA_PARAMETERS
from api.ratelimit import make_counter
from api.security import auth_required, current_user

blp = Blueprint("export", __name__, url_prefix="/v1", description="Export")
fhir_blp = Blueprint("fhir", __name__, url_prefix="/fhir", description="FHIR Bulk Data export")

ATTACHMENT = {
    "description": "The export, streamed: JSON, a zip of CSVs, or a FHIR R4 Bundle",
    "content": {
        "application/json": {"schema": {"type": "object"}},
        "application/zip": {"schema": {"type": "string", "format": "binary"}},
        "application/fhir+json": {"schema": {"type": "object"}},
    },
}
TEXT_NDJSON = {
    "schema": {"type": "string"},
    "example": '{"resourceType": "Observation", "id": "7c0e...", "status": "final"}\n',
}
PREFER = {
    "in": "header",
    "name": "Prefer",
    "required": True,
    "description": "Must ask for asynchronous processing (FHIR Bulk Data).",
    "schema": {"type": "string", "enum": ["respond-async"]},
}


def _limits() -> services.RateLimit:
    cfg = current_app.config
    return services.RateLimit(cfg["EXPORT_RATE_LIMIT"], cfg["EXPORT_RATE_WINDOW"])


def _closing(chunks: Iterator[bytes], session: Session) -> Iterator[bytes]:
    """End the read transaction as soon as the last byte is out (or the client went away)."""
    try:
        yield from chunks
    finally:
        session.close()


def _export_dir() -> ExportStorage:
    return storage_from_config(current_app.config)


@blp.get("/export")
@auth_required()
@blp.arguments(ExportArgs, location="query", unknown=RAISE)
@blp.doc(responses={"200": ATTACHMENT})
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
def export_own_data(args: dict[str, Any]) -> Any:
    """All of the caller's own data as JSON, a zip of CSVs, or a FHIR R4 Bundle (streamed)."""
    session = get_session()
    export = services.start_own_export(
        session,
        user=current_user(),
        fmt=args["format"],
        now=utcnow(),
        counter=make_counter(current_app.config["REDIS_URL"]),
        limits=_limits(),
        base_url=current_app.config["FHIR_BASE_URL"],
    )
    session.commit()
    return Response(
        stream_with_context(_closing(export.chunks, session)),
        mimetype=export.mimetype,
        headers={
            "Content-Disposition": f'attachment; filename="{export.filename}"',
            "Cache-Control": "no-store",
        },
    )


def _recheck(job_id: uuid.UUID) -> None:
    """A consent revoked, expired or narrowed since the job finished voids it before anything is
    answered; committed at once (its files are gone), since the refusal that follows rolls the
    request back."""
    session = get_session()
    if services.recheck_bulk_export(
        session, requester=current_user(), job_id=job_id, export_dir=_export_dir(), now=utcnow()
    ):
        session.commit()


@consent_narrowed.connect
def _void_narrowed_exports(
    _app: Any, *, session: Session, patient_id: uuid.UUID, recipient_id: uuid.UUID, now: datetime
) -> None:
    """A consent was revoked or replaced (api.consent.signals): the recipient's finished exports
    holding that patient are checked at once, in the consent route's transaction."""
    services.void_exports_holding(
        session,
        patient_id=patient_id,
        recipient_id=recipient_id,
        export_dir=_export_dir(),
        now=now,
    )


def _file_url(job_id: uuid.UUID, rtype: str) -> str:
    return url_for("fhir.get_bulk_file", job_id=job_id, rtype=rtype, _external=True)


@fhir_blp.get("/Patient/$export")
@auth_required_audited("clinician", "admin", action="bulk_export.start", patient_arg=None)
@fhir_blp.arguments(BulkKickoffArgs, location="query")
@fhir_blp.doc(**{EXTRA_PARAMETERS: [PREFER]})  # beside the query arguments, not instead
@fhir_blp.response(
    202,
    description="Accepted; poll the Content-Location URL",
    headers={"Content-Location": {"description": "The status URL", "schema": {"type": "string"}}},
)
@fhir_blp.alt_response(400, response="BAD_REQUEST")
@fhir_blp.alt_response(429, response="TOO_MANY_REQUESTS")
def start_patient_export(args: dict[str, Any]) -> Any:
    """Kick off a FHIR Bulk Data export (`Prefer: respond-async`); clinicians get consented data."""
    session = get_session()
    job = services.start_bulk_export(
        session,
        requester=current_user(),
        counter=make_counter(current_app.config["REDIS_URL"]),
        limits=_limits(),
        prefer=request.headers.get("Prefer"),
        output_format=args["output_format"],
        types=args["type_"],
        since=args["since"],
        request_url=request.url,
        now=utcnow(),
        retry_after=current_app.config["BULK_EXPORT_RETRY_AFTER"],
    )
    session.commit()
    location = url_for("fhir.get_bulk_status", job_id=job.id, _external=True)
    return Response(status=202, headers={"Content-Location": location})


@fhir_blp.get("/bulkstatus/<uuid:job_id>")
@auth_required("clinician", "admin")
@fhir_blp.response(200, ManifestSchema)
@fhir_blp.alt_response(
    202,
    description="In progress: see X-Progress and Retry-After",
    headers={
        "X-Progress": {
            "description": "The job's state and percentage, e.g. `running: 40%`.",
            "schema": {"type": "string"},
        },
        "Retry-After": {
            "description": "Seconds to wait before polling again (BULK_EXPORT_RETRY_AFTER).",
            "schema": {"type": "integer", "minimum": 1},
        },
    },
)
@fhir_blp.alt_response(404, response="NOT_FOUND")
def get_bulk_status(job_id: uuid.UUID) -> Any:
    """Poll a bulk export: 202 with X-Progress while it runs, 200 with the manifest when done."""
    session = get_session()
    _recheck(job_id)
    job = services.bulk_status(session, requester=current_user(), job_id=job_id, now=utcnow())
    if job.status != "completed":
        return Response(
            status=202,
            headers={
                "X-Progress": f"{job.status}: {job.progress}%",
                "Retry-After": str(current_app.config["BULK_EXPORT_RETRY_AFTER"]),
            },
        )
    body = services.manifest(
        job,
        file_url=_file_url,
        notice=services.notice_for(current_user(), current_app.config["REDISCLOSURE_NOTICE"]),
    )
    assert job.expires_at is not None
    return body, 200, {"Expires": job.expires_at.strftime("%a, %d %b %Y %H:%M:%S GMT")}


@fhir_blp.delete("/bulkstatus/<uuid:job_id>")
@auth_required("clinician", "admin")
@fhir_blp.response(202, description="Cancelled; its files are deleted")
@fhir_blp.alt_response(404, response="NOT_FOUND")
def cancel_bulk_export(job_id: uuid.UUID) -> Any:
    """Cancel a bulk export (or delete a finished one's files)."""
    session = get_session()
    services.cancel_bulk_export(
        session, requester=current_user(), job_id=job_id, export_dir=_export_dir(), now=utcnow()
    )
    session.commit()
    return Response(status=202)


@fhir_blp.get("/bulkfiles/<uuid:job_id>/<rtype>.ndjson")
@auth_required_audited(
    "clinician", "admin", action="bulk_export.file.read", patient_arg=None, target_arg="job_id"
)
@fhir_blp.doc(
    responses={
        "200": {
            "description": "NDJSON, one FHIR resource a line",
            "content": {"application/fhir+ndjson": TEXT_NDJSON},
        }
    }
)
@fhir_blp.alt_response(404, response="NOT_FOUND")
def get_bulk_file(job_id: uuid.UUID, rtype: str) -> Any:
    """One output file of a completed bulk export (only for whoever started it)."""
    _recheck(job_id)
    session = get_session()
    chunks = services.bulk_file(
        session,
        requester=current_user(),
        job_id=job_id,
        rtype=rtype,
        export_dir=_export_dir(),
        now=utcnow(),
    )
    session.commit()  # the audit row of this read
    # Streamed chunk by chunk (from disk or the database): the file is never whole in memory.
    return Response(
        stream_with_context(chunks),
        mimetype="application/fhir+ndjson",
        headers={"Cache-Control": "no-cache"},
    )
