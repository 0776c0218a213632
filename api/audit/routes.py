"""The audit log for admins: GET /v1/admin/audit."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from api.audit import services
from api.audit.schemas import AuditPageSchema, AuditQueryArgs
from api.db import get_session
from api.security import auth_required

blp = Blueprint("audit", __name__, url_prefix="/v1/admin", description="Audit log (admin)")


@blp.get("/audit")
@auth_required("admin")
@blp.arguments(AuditQueryArgs, location="query", as_kwargs=True)
@blp.response(200, AuditPageSchema)
def list_audit(**args: Any) -> Any:
    """Access attempts to patient data, newest first, filtered by actor, patient, outcome, time."""
    return services.list_audit(get_session(), **args)
