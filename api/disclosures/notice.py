"""The 42 CFR part 2 redisclosure notice that travels with every response carrying disclosed
data: a `notice` field in the body and the `X-Redisclosure-Notice` header."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app

NOTICE_HEADER = "X-Redisclosure-Notice"


def redisclosure_notice() -> str:
    return str(current_app.config["REDISCLOSURE_NOTICE"])


def consent_text_url() -> str:
    """Where a consent text version is served (a `{version}` placeholder to fill)."""
    return str(current_app.config["PUBLIC_BASE_URL"]).rstrip("/") + "/v1/consent-texts/{version}"


def with_notice(body: dict[str, Any]) -> dict[str, Any]:
    """The answer plus the notice and the scope of every consent this request disclosed under
    (42 CFR 2.32(b), 2024 text: a disclosure carries the consent or a clear explanation of its
    scope)."""
    from api.db import get_session
    from api.disclosures.services import consent_scope, disclosed_in

    url = consent_text_url()
    scopes = [consent_scope(c, text_url=url) for c in disclosed_in(get_session())]
    return {**body, "notice": redisclosure_notice(), "consent_scopes": scopes}


def add_notice_header(response: Response) -> Response:
    """after_request hook for blueprints that disclose: successful answers carry the notice."""
    if 200 <= response.status_code < 300:
        # Header values are Latin-1; a configured notice outside it is still sent, transliterated.
        text = " ".join(redisclosure_notice().split())
        response.headers[NOTICE_HEADER] = text.encode("latin-1", "replace").decode("latin-1")
    return response
