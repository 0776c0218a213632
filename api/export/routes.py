"""Export: /v1/export (own data), /fhir Bulk Data (erasure, DELETE /v1/me: api/account)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from flask import Response, current_app, g, json, request, stream_with_context, url_for
from flask_smorest import Blueprint
from marshmallow import RAISE
from sqlalchemy.orm import Session

from api.audit.access import auth_required_audited
from api.consent.signals import consent_narrowed
from api.db import get_session, utcnow
from api.disclosures.notice import add_notice_header, consent_text_url
from api.disclosures.schemas import ConsentScopeSchema
from api.disclosures.services import consent_scope
from api.errors import FHIR_MIME, Forbidden, NotFound
from api.export import capability, services, terminology
from api.export.schemas import ExportArgs, ManifestSchema
from api.export.storage import ExportStorage, storage_from_config
from api.ratelimit import make_counter
from api.security import auth_required, current_user, system_client
from api.smart import services as smart

blp = Blueprint("export", __name__, url_prefix="/v1", description="Export")
fhir_blp = Blueprint("fhir", __name__, url_prefix="/fhir", description="FHIR Bulk Data export")

DISPOSITION = {
    "Content-Disposition": {
        "description": '`attachment; filename="waymark-export-STAMP.EXT"`: json, zip, fhir.json.',
        "schema": {"type": "string"},
        "required": True,
    },
    "Cache-Control": {"description": "`no-store`", "schema": {"type": "string"}, "required": True},
}
ATTACHMENT = {
    "description": "The export, streamed: JSON, a zip of CSVs, or a FHIR R4 Bundle "
    "(GET /v1/export.zip answers the zip alone, for generated clients)",
    "content": {
        "application/json": {"schema": {"type": "object"}},
        "application/zip": {"schema": {"type": "string", "format": "binary"}},
        "application/fhir+json": {"schema": {"type": "object"}},
    },
    "headers": DISPOSITION,
}
ZIP = {
    "description": "A zip of CSVs, one a table, with a README",
    "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
    "headers": DISPOSITION,
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
    return _own_export(args["format"])


@blp.get("/export.zip")
@auth_required()
@blp.doc(responses={"200": ZIP})
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
def export_own_data_zip() -> Any:
    """All of the caller's own data as a zip of CSVs (streamed): ?format=csv as an operation
    of its own, whose one media type generated clients can read."""
    return _own_export("csv")


def _own_export(fmt: str) -> Any:
    session = get_session()
    export = services.start_own_export(
        session,
        user=current_user(),
        fmt=fmt,
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


KICKOFF_PARAMS = [
    PREFER,
    {
        "in": "query",
        "name": "_type",
        "schema": {"type": "string"},
        "description": "Comma-separated resource types (default: all offered).",
    },
    {
        "in": "query",
        "name": "_since",
        "schema": {"type": "string", "format": "date-time"},
        "description": "Only resources changed after this instant.",
    },
    {
        "in": "query",
        "name": "_outputFormat",
        "schema": {"type": "string"},
        "description": "application/fhir+ndjson (the only format offered).",
    },
]
KICKOFF_BODY = {
    "required": False,
    "content": {
        "application/fhir+json": {
            "schema": {
                "type": "object",
                "description": "A FHIR Parameters resource (kick-off by POST).",
                "properties": {
                    "resourceType": {"type": "string", "enum": ["Parameters"]},
                    "parameter": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name"],
                            "properties": {
                                "name": {"type": "string"},
                                "valueString": {"type": "string"},
                                "valueInstant": {"type": "string"},
                            },
                        },
                    },
                },
                "required": ["resourceType"],
            }
        }
    },
}
ACCEPTED = {
    "description": "Accepted; poll the Content-Location URL",
    "headers": {
        "Content-Location": {"description": "The status URL", "schema": {"type": "string"}}
    },
}


def _kickoff_params() -> list[tuple[str, str]]:
    """GET: the query string. POST: a FHIR Parameters body, and any query parameters too (the
    document describes them for both; a parameter given in both places is refused as twice)."""
    query = list(request.args.items(multi=True))
    if request.method == "GET":
        return query
    body = request.get_json(silent=True) if request.content_length else {"parameter": []}
    if not isinstance(body, dict) or body.get("resourceType", "Parameters") != "Parameters":
        raise services.BadRequest("POST a FHIR Parameters resource (application/fhir+json).")
    params = body.get("parameter") or []
    if not isinstance(params, list):
        raise services.BadRequest("Parameters.parameter must be an array.")
    out = []
    for item in params:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise services.BadRequest("Each parameter needs a name.")
        values = [v for k, v in item.items() if k.startswith("value")]
        if item["name"] in services.SUPPORTED_PARAMS and not (
            len(values) == 1 and isinstance(values[0], str)
        ):
            raise services.BadRequest(f"Parameter {item['name']} needs one value[x].")
        out.append((item["name"], values[0] if values and isinstance(values[0], str) else ""))
    return query + out


def _kickoff(level: str, group_id: uuid.UUID | None = None) -> Any:
    session = get_session()
    client = system_client()
    kickoff = services.parse_kickoff(
        _kickoff_params(), prefer=",".join(request.headers.getlist("Prefer")), now=utcnow()
    )
    requester = current_user()
    allowed = None
    if client is not None:
        allowed = smart.readable_types(
            smart.parse_scopes(g.token_claims["scope"]), services.bulk_types()
        )
    if level == "group" and (requester.role != "clinician" or group_id != requester.id):
        raise NotFound("No such Group.")
    if level == "system" and requester.role != "admin" and client is None:
        raise Forbidden("System-level export is for admins and authorized system clients.")
    job = services.start_bulk_export(
        session,
        requester=requester,
        kickoff=kickoff,
        counter=make_counter(current_app.config["REDIS_URL"]),
        limits=_limits(),
        request_url=request.url,
        now=utcnow(),
        retry_after=current_app.config["BULK_EXPORT_RETRY_AFTER"],
        level=level,
        group_id=group_id,
        client_id=client.id if client is not None else None,
        allowed_types=allowed,
    )
    session.commit()
    location = url_for("fhir.get_bulk_status", job_id=job.id, _external=True)
    return Response(status=202, headers={"Content-Location": location})


def _client_id() -> uuid.UUID | None:
    client = system_client()
    return client.id if client is not None else None


@fhir_blp.route("/Patient/$export", methods=["GET", "POST"])
@auth_required_audited("clinician", "admin", action="bulk_export.start", patient_arg=None)
@fhir_blp.doc(parameters=KICKOFF_PARAMS, requestBody=KICKOFF_BODY)
@fhir_blp.response(202, **ACCEPTED)
@fhir_blp.alt_response(400, response="BAD_REQUEST")
@fhir_blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
@fhir_blp.alt_response(429, response="TOO_MANY_REQUESTS")
def start_patient_export() -> Any:
    """Bulk Data kick-off, patient level (`Prefer: respond-async`): clinicians and their system
    clients get consented data; admins every patient's."""
    return _kickoff("patient")


@fhir_blp.route("/Group/<uuid:group_id>/$export", methods=["GET", "POST"])
@auth_required_audited(
    "clinician", action="bulk_export.group.start", patient_arg=None, target_arg="group_id"
)
@fhir_blp.doc(parameters=KICKOFF_PARAMS, requestBody=KICKOFF_BODY)
@fhir_blp.response(202, **ACCEPTED)
@fhir_blp.alt_response(400, response="BAD_REQUEST")
@fhir_blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
@fhir_blp.alt_response(429, response="TOO_MANY_REQUESTS")
def start_group_export(group_id: uuid.UUID) -> Any:
    """Bulk Data kick-off for a Group: a clinician's consented roster (the clinician's id)."""
    return _kickoff("group", group_id)


@fhir_blp.route("/$export", methods=["GET", "POST"])
@auth_required_audited("clinician", "admin", action="bulk_export.system.start", patient_arg=None)
@fhir_blp.doc(parameters=KICKOFF_PARAMS, requestBody=KICKOFF_BODY)
@fhir_blp.response(202, **ACCEPTED)
@fhir_blp.alt_response(400, response="BAD_REQUEST")
@fhir_blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
@fhir_blp.alt_response(429, response="TOO_MANY_REQUESTS")
def start_system_export() -> Any:
    """Bulk Data kick-off, system level: admins (every patient, audited as Part 2 access by the
    program) and system clients (their clinician's consented data)."""
    return _kickoff("system")


@fhir_blp.get("/Group/<uuid:group_id>")
@auth_required_audited(
    "clinician", action="fhir.group.read", patient_arg=None, target_arg="group_id"
)
@fhir_blp.response(200, description="A FHIR Group: the clinician's consented roster")
@fhir_blp.alt_response(404, response="NOT_FOUND")
def read_group(group_id: uuid.UUID) -> Any:
    """The Group a clinician exports: the patients with a consent in force to them."""
    requester = current_user()
    if group_id != requester.id:
        raise NotFound("No such Group.")
    group = services.roster_group(get_session(), clinician=requester, now=utcnow())
    get_session().commit()
    return _fhir_json(group)


@fhir_blp.get("/metadata")
@fhir_blp.response(200, description="The server's R4 CapabilityStatement")
def read_metadata() -> Any:
    """What this FHIR server offers (R4 CapabilityStatement)."""
    cfg = current_app.config
    return _fhir_json(
        capability.capability_statement(
            base_url=cfg["FHIR_BASE_URL"],
            token_url=_token_url(),
            offered=services.bulk_types(),
            now=utcnow(),
        )
    )


@fhir_blp.get("/CodeSystem/<cs_id>")
@fhir_blp.response(200, description="One of our CodeSystems")
@fhir_blp.alt_response(404, response="NOT_FOUND")
def read_code_system(cs_id: str) -> Any:
    """A CodeSystem at our fixed canonical base (public: it holds no patient data)."""
    found = terminology.code_systems().get(cs_id)
    if found is None:
        raise NotFound("No such CodeSystem.")
    return _fhir_json(found)


@fhir_blp.get("/Questionnaire/<q_id>")
@fhir_blp.response(200, description="The Questionnaire of an instrument")
@fhir_blp.alt_response(404, response="NOT_FOUND")
def read_questionnaire(q_id: str) -> Any:
    """The Questionnaire of an instrument (public: it holds no patient data)."""
    found = terminology.questionnaires().get(q_id)
    if found is None:
        raise NotFound("No such Questionnaire.")
    return _fhir_json(found)


def _fhir_json(resource: dict[str, Any]) -> Response:
    return Response(json.dumps(resource), mimetype=FHIR_MIME)


def _token_url() -> str:
    return url_for("smart.issue_token", _external=True)


@fhir_blp.get("/bulkstatus/<uuid:job_id>")
@auth_required("clinician", "admin")
@fhir_blp.response(
    200,
    ManifestSchema,
    headers={
        "Expires": {
            "description": "When the files are deleted (BULK_EXPORT_TTL after completion).",
            "schema": {"type": "string"},
            "required": True,
        }
    },
)
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
    job = services.bulk_status(
        session, requester=current_user(), job_id=job_id, now=utcnow(), client_id=_client_id()
    )
    if job.status != "completed":
        return Response(
            status=202,
            headers={
                "X-Progress": f"{job.status}: {job.progress}%",
                "Retry-After": str(current_app.config["BULK_EXPORT_RETRY_AFTER"]),
            },
        )
    scopes = [
        ConsentScopeSchema().dump(consent_scope(c, text_url=consent_text_url()))
        for c in services.job_consents(session, job)
    ]
    body = services.manifest(
        job,
        file_url=_file_url,
        notice=services.notice_for(current_user(), current_app.config["REDISCLOSURE_NOTICE"]),
        consent_scopes=scopes,
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
        session,
        requester=current_user(),
        job_id=job_id,
        export_dir=_export_dir(),
        now=utcnow(),
        client_id=_client_id(),
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
        client_id=_client_id(),
    )
    session.commit()  # the audit row of this read
    # Streamed chunk by chunk (from disk or the database): the file is never whole in memory.
    answer = Response(
        stream_with_context(chunks),
        mimetype="application/fhir+ndjson",
        headers={"Cache-Control": "no-cache"},
    )
    # A disclosed file carries the notice too (its resources carry the labels and a pointer to
    # the Consent they went out under).
    notice = services.notice_for(current_user(), current_app.config["REDISCLOSURE_NOTICE"])
    if notice:
        add_notice_header(answer)
    return answer
