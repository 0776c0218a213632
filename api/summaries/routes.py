"""Clinician summaries: GET /v1/clinician/patients/{id}/summary and /v1/clinician/summaries."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response, current_app, request
from flask_smorest import Blueprint
from marshmallow import RAISE

from api.audit.access import auth_required_audited
from api.db import get_session, utcnow
from api.disclosures.notice import add_notice_header, with_notice
from api.openapi import BINARY, TEXT
from api.security import current_user
from api.summaries import services
from api.summaries.render import render_html, render_pdf
from api.summaries.schemas import (
    FormatArgs,
    PeriodArgs,
    SummaryArgs,
    SummaryListArgs,
    SummarySchema,
    WeeklySummaryPageSchema,
    WeeklySummarySchema,
)

blp = Blueprint(
    "summaries", __name__, url_prefix="/v1/clinician", description="Clinician summaries"
)
blp.after_request(add_notice_header)

_MIMETYPES = {"json": "application/json", "html": "text/html", "pdf": "application/pdf"}


HTML = {**TEXT, "example": '<!DOCTYPE html><html lang="en">...</html>'}
PDF_HEADERS = {
    "Content-Disposition": {
        "description": '`inline; filename="summary-FIRST-to-LAST.pdf"` (no name in it).',
        "schema": {"type": "string"},
    }
}


# JSON first; the others by ?format= or Accept. A generated client parses every answer of an
# operation as its first media type, so each page also has an operation of its own (.html, .pdf)
# whose one media type is the one it answers.
def _rendered_doc(schema: str) -> dict[str, Any]:
    return {
        "200": {
            "description": "The summary: JSON, or with ?format=html|pdf (or Accept) the page "
            "(the .html and .pdf paths answer one media type each, for generated clients)",
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}},
                "text/html": HTML,
                "application/pdf": BINARY,
            },
            "headers": PDF_HEADERS,
        }
    }


def _page_doc(fmt: str) -> dict[str, Any]:
    if fmt == "html":
        return {"200": {"description": "The summary page", "content": {"text/html": HTML}}}
    return {
        "200": {
            "description": "The summary as a PDF",
            "content": {"application/pdf": BINARY},
            "headers": {
                "Content-Disposition": {**PDF_HEADERS["Content-Disposition"], "required": True}
            },
        }
    }


@blp.after_request
def _no_store(response: Response) -> Response:
    # Summaries are health records: no shared or browser cache keeps them.
    response.headers["Cache-Control"] = "no-store, private"
    response.vary.add("Accept")
    return response


def _format(explicit: str | None) -> str:
    if explicit:
        return explicit
    best = request.accept_mimetypes.best_match(list(_MIMETYPES.values()), "application/json")
    return next(k for k, v in _MIMETYPES.items() if v == best)


def _rendered(doc: dict[str, Any], fmt: str) -> Response | None:
    """The HTML or PDF answer, or None for JSON (dumped by the schema)."""
    threshold = current_app.config["ALERT_SOWS_THRESHOLD"]
    if fmt == "html":
        return Response(render_html(doc, sows_threshold=threshold), mimetype="text/html")
    if fmt == "pdf":
        period = doc["period"]
        name = f"summary-{period['first_day']}-to-{period['last_day']}.pdf"
        return Response(
            render_pdf(doc, sows_threshold=threshold),
            mimetype="application/pdf",
            headers={"Content-Disposition": f'inline; filename="{name}"'},
        )
    return None


@blp.get("/patients/<uuid:patient_id>/summary")
@auth_required_audited("clinician", action="clinician.summary.read")
@blp.arguments(SummaryArgs, location="query", unknown=RAISE)
@blp.response(200, SummarySchema)
@blp.doc(responses=_rendered_doc("Summary"))
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
def get_patient_summary(args: dict[str, Any], patient_id: uuid.UUID) -> Any:
    """A patient's summary for a period: JSON, HTML or PDF; consented categories only."""
    return _patient_summary(args, patient_id, _format(args["format"]))


@blp.get("/patients/<uuid:patient_id>/summary.html")
@auth_required_audited("clinician", action="clinician.summary.read")
@blp.arguments(PeriodArgs, location="query", unknown=RAISE)
@blp.doc(responses=_page_doc("html"))
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
def get_patient_summary_html(args: dict[str, Any], patient_id: uuid.UUID) -> Any:
    """A patient's summary for a period as an HTML page; consented categories only."""
    return _patient_summary(args, patient_id, "html")


@blp.get("/patients/<uuid:patient_id>/summary.pdf")
@auth_required_audited("clinician", action="clinician.summary.read")
@blp.arguments(PeriodArgs, location="query", unknown=RAISE)
@blp.doc(responses=_page_doc("pdf"))
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
def get_patient_summary_pdf(args: dict[str, Any], patient_id: uuid.UUID) -> Any:
    """A patient's summary for a period as a PDF; consented categories only."""
    return _patient_summary(args, patient_id, "pdf")


def _patient_summary(args: dict[str, Any], patient_id: uuid.UUID, fmt: str) -> Any:
    session = get_session()
    doc = services.on_demand_summary(
        session,
        clinician_id=current_user().id,
        patient_id=patient_id,
        start=args["from_"],
        end=args["to"],
        now=utcnow(),
        config=services.SummaryConfig.from_mapping(current_app.config),
    )
    answer = _rendered(doc, fmt)  # before the commit: a failure discloses nothing
    session.commit()
    return answer or doc


@blp.get("/summaries")
@auth_required_audited("clinician", action="clinician.summaries.list", patient_arg=None)
@blp.arguments(SummaryListArgs, location="query", unknown=RAISE)
@blp.response(200, WeeklySummaryPageSchema)
def list_summaries(args: dict[str, Any]) -> Any:
    """Weekly summaries delivered to you under consents still in force, newest first."""
    session = get_session()
    page = services.list_weekly_summaries(
        session, clinician_id=current_user().id, now=utcnow(), **args
    )
    session.commit()  # the audit row of this read
    return with_notice(page)


@blp.get("/summaries/<uuid:summary_id>")
@auth_required_audited(
    "clinician", action="clinician.summaries.read", patient_arg=None, target_arg="summary_id"
)
@blp.arguments(FormatArgs, location="query", unknown=RAISE)
@blp.response(200, WeeklySummarySchema)
@blp.doc(responses=_rendered_doc("WeeklySummary"))
@blp.alt_response(404, response="NOT_FOUND")
def get_summary(args: dict[str, Any], summary_id: uuid.UUID) -> Any:
    """One delivered weekly summary (JSON, or ?format=html|pdf / Accept)."""
    return _weekly_summary(summary_id, _format(args["format"]))


@blp.get("/summaries/<uuid:summary_id>.html")
@auth_required_audited(
    "clinician", action="clinician.summaries.read", patient_arg=None, target_arg="summary_id"
)
@blp.doc(responses=_page_doc("html"))
@blp.alt_response(404, response="NOT_FOUND")
def get_summary_html(summary_id: uuid.UUID) -> Any:
    """One delivered weekly summary as an HTML page."""
    return _weekly_summary(summary_id, "html")


@blp.get("/summaries/<uuid:summary_id>.pdf")
@auth_required_audited(
    "clinician", action="clinician.summaries.read", patient_arg=None, target_arg="summary_id"
)
@blp.doc(responses=_page_doc("pdf"))
@blp.alt_response(404, response="NOT_FOUND")
def get_summary_pdf(summary_id: uuid.UUID) -> Any:
    """One delivered weekly summary as a PDF."""
    return _weekly_summary(summary_id, "pdf")


def _weekly_summary(summary_id: uuid.UUID, fmt: str) -> Any:
    session = get_session()
    view = services.get_weekly_summary(
        session,
        clinician_id=current_user().id,
        summary_id=summary_id,
        now=utcnow(),
        notice=current_app.config["REDISCLOSURE_NOTICE"],
    )
    session.commit()  # the audit row of this read
    return _rendered(view["content"], fmt) or view
