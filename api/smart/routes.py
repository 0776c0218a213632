"""SMART Backend Services: discovery, the token endpoint, and admin registration of clients.

Discovery and the token endpoint speak OAuth 2.0 (RFC 6749 errors, form bodies), not this API's
problem+json, so they sit on a plain Flask blueprint outside the OpenAPI document; the FHIR
CapabilityStatement and /.well-known/smart-configuration describe them.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint as FlaskBlueprint
from flask import current_app, jsonify, url_for
from flask import request as flask_request
from flask_smorest import Blueprint

from api.db import get_session, utcnow
from api.security import auth_required, current_user
from api.smart import services
from api.smart.schemas import SystemClientCreateSchema, SystemClientSchema

oauth_bp = FlaskBlueprint("smart", __name__)
blp = Blueprint(
    "system_clients", __name__, url_prefix="/v1/admin", description="SMART system clients"
)


@oauth_bp.get("/fhir/.well-known/smart-configuration")
@oauth_bp.get("/.well-known/smart-configuration")
def smart_configuration() -> Any:
    """SMART App Launch discovery, as Backend Services clients read it."""
    return jsonify(
        {
            "token_endpoint": url_for("smart.issue_token", _external=True),
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": list(services.ALGORITHMS),
            "grant_types_supported": ["client_credentials"],
            "scopes_supported": ["system/*.read", "system/*.rs"],
            "capabilities": ["client-confidential-asymmetric"],
        }
    )


@oauth_bp.post("/oauth/token")
def issue_token() -> Any:
    """client_credentials with a signed JWT assertion; RFC 6749 error answers."""
    cfg = current_app.config
    session = get_session()
    settings = services.TokenSettings(
        token_url=url_for("smart.issue_token", _external=True),
        issuer=cfg["JWT_ISSUER"],
        audience=cfg["JWT_AUDIENCE"],
        secret=cfg["SECRET_KEY"],
        ttl=cfg["SMART_TOKEN_TTL"],
        max_skew=cfg["SMART_MAX_CLOCK_SKEW"],
    )
    try:
        body = services.issue_token(
            session, form=flask_request.form.to_dict(), settings=settings, now=utcnow()
        )
    except services.OAuthError as exc:
        session.rollback()
        answer = jsonify({"error": exc.error, "error_description": exc.detail})
        answer.status_code = exc.status
        answer.headers["Cache-Control"] = "no-store"
        return answer
    session.commit()
    answer = jsonify(body)
    answer.headers["Cache-Control"] = "no-store"
    return answer


issue_token.accepts_form = True  # type: ignore[attr-defined]


@blp.post("/system-clients")
@auth_required("admin")
@blp.arguments(SystemClientCreateSchema)
@blp.response(201, SystemClientSchema)
def register_system_client(body: dict[str, Any]) -> Any:
    """Register a SMART Backend Services client acting on one clinician's consents."""
    session = get_session()
    client = services.register_client(session, body=body, admin=current_user(), now=utcnow())
    session.commit()
    return client


@blp.get("/system-clients")
@auth_required("admin")
@blp.response(200, SystemClientSchema(many=True))
def list_system_clients() -> Any:
    """Every registered system client."""
    return services.list_clients(get_session())


@blp.post("/system-clients/<uuid:client_id>/disable")
@auth_required("admin")
@blp.response(200, SystemClientSchema)
@blp.alt_response(404, response="NOT_FOUND")
def disable_system_client(client_id: uuid.UUID) -> Any:
    """Disable a client: its tokens stop working at once."""
    session = get_session()
    client = services.disable_client(session, client_id=client_id, now=utcnow())
    session.commit()
    return client
