"""Security headers on every response, set once here rather than per route.

Nearly every answer of this API carries health data or could (a problem body can quote a field
name of a health record; a 404 tells whether a record exists), so every response is `no-store`
and `nosniff`. HTML (the clinician summary, the docs page) also gets a Content-Security-Policy that
runs no script and loads nothing from elsewhere, and may not be framed. A view that needs other
values sets them itself (`/docs` allows the Swagger UI it loads); the defaults fill in only what a
view left unset.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response, current_app, request

# No script, no plugin, no remote anything; inline style only (the summary's own <style> and
# matplotlib's inline SVG); images only as data: URIs; no forms, no <base>, no framing.
STRICT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)


def _docs_csp() -> str:
    # Swagger UI: its bundle and stylesheet from SWAGGER_UI_URL's origin, an inline start-up
    # script, and fetches of /openapi.json from here. Still no framing.
    parts = urlsplit(current_app.config.get("OPENAPI_SWAGGER_UI_URL") or "")
    origin = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
    sources = f"'self' {origin}".strip()
    return (
        f"default-src 'none'; script-src {sources} 'unsafe-inline'; "
        f"style-src {sources} 'unsafe-inline'; img-src {sources} data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def _is_html(response: Response) -> bool:
    return (response.mimetype or "").lower() in ("text/html", "application/xhtml+xml")


# The only answers any cache may keep: the same for everyone, no sign-in, no health data (the
# deployment's crisis lines; Swagger UI's own files). Their views set Cache-Control themselves.
PUBLIC_CACHEABLE = frozenset({"crisis.list_crisis_resources", "docs_asset"})


def _publicly_cacheable(response: Response, cache_control: str) -> bool:
    ok = request.method in ("GET", "HEAD") and response.status_code in (200, 304)
    ok = ok and request.endpoint in PUBLIC_CACHEABLE
    return ok and "public" in cache_control


def secure_headers(response: Response) -> Response:
    headers = response.headers
    # The names the view set, read in one pass: werkzeug's `in`, `get` and `setdefault` on a
    # missing header build and catch a BadRequestKeyError each (three per request here).
    present: dict[str, str] = {}
    for name, value in headers.items():
        present.setdefault(name.lower(), value)  # the first of a repeated name, as headers[] reads
    cache_control = present.get("cache-control")
    if cache_control is None:
        headers.add("Cache-Control", "no-store")
    elif "no-store" not in cache_control and not _publicly_cacheable(response, cache_control):
        headers["Cache-Control"] = "no-store"
    if "x-content-type-options" in present:
        headers["X-Content-Type-Options"] = "nosniff"
    else:
        headers.add("X-Content-Type-Options", "nosniff")
    if "referrer-policy" not in present:
        headers.add("Referrer-Policy", "no-referrer")
    if _is_html(response):
        is_docs = request.endpoint == "api-docs.openapi_swagger_ui"
        headers.setdefault("Content-Security-Policy", _docs_csp() if is_docs else STRICT_CSP)
        headers["X-Frame-Options"] = "DENY"
    return response


def init_app(app: Flask) -> None:
    app.after_request(secure_headers)
