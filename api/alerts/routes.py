"""Clinician alerts: GET /v1/clinician/alerts, POST /v1/clinician/alerts/{id}/acknowledge."""

from __future__ import annotations

import uuid
from typing import Any

from flask_smorest import Blueprint

from api.alerts import services
from api.alerts.schemas import AlertAcknowledgeSchema, AlertListArgs, AlertPageSchema, AlertSchema
from api.audit.access import auth_required_audited
from api.db import get_session, utcnow
from api.disclosures.notice import add_notice_header, with_notice
from api.security import current_user

blp = Blueprint("alerts", __name__, url_prefix="/v1/clinician", description="Clinician alerts")
blp.after_request(add_notice_header)


@blp.get("/alerts")
@auth_required_audited("clinician", action="clinician.alerts.list")
@blp.arguments(AlertListArgs, location="query")
@blp.response(200, AlertPageSchema)
def list_alerts(args: dict[str, Any]) -> Any:
    """Alerts about your consented patients, limited to the categories they granted."""
    session = get_session()
    page = services.list_alerts(session, clinician_id=current_user().id, now=utcnow(), **args)
    session.commit()
    return with_notice(page)


@blp.post("/alerts/<uuid:alert_id>/acknowledge")
@auth_required_audited(
    "clinician", action="clinician.alerts.acknowledge", patient_arg=None, target_arg="alert_id"
)
@blp.arguments(AlertAcknowledgeSchema, required=False)
@blp.response(200, AlertSchema)
@blp.alt_response(404, response="NOT_FOUND")
def acknowledge_alert(body: dict[str, Any], alert_id: uuid.UUID) -> Any:
    """Acknowledge an alert, with an optional note of your own (again changes nothing)."""
    session = get_session()
    alert = services.acknowledge_alert(
        session, clinician_id=current_user().id, alert_id=alert_id, now=utcnow(), note=body["note"]
    )
    session.commit()
    return alert
