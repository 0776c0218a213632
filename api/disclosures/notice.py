"""The 42 CFR part 2 redisclosure notice that travels with every response carrying disclosed
data: a `notice` field in the body and the `X-Redisclosure-Notice` header."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app

NOTICE_HEADER = "X-Redisclosure-Notice"


def redisclosure_notice() -> str:
    return str(current_app.config["REDISCLOSURE_NOTICE"])


def with_notice(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "notice": redisclosure_notice()}


def add_notice_header(response: Response) -> Response:
    """after_request hook for blueprints that disclose: successful answers carry the notice."""
    if 200 <= response.status_code < 300:
        # Header values are Latin-1; a configured notice outside it is still sent, transliterated.
        text = " ".join(redisclosure_notice().split())
        response.headers[NOTICE_HEADER] = text.encode("latin-1", "replace").decode("latin-1")
    return response
