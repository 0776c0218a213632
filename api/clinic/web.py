"""The dashboard's request plumbing: the session cookie, CSRF, role guards with the audit row,
security headers and HTML error pages. The views are in api.clinic.routes."""

from __future__ import annotations

import hmac
import secrets
import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

import structlog
from flask import current_app, g, redirect, render_template, request, url_for
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from api.audit.services import outcome_for_status, record_access
from api.auth.models import User
from api.clinic import sessions
from api.clinic.models import ClinicSession
from api.db import get_session, in_own_transaction, utcnow
from api.errors import AppError, Forbidden
from api.security import client_address

F = TypeVar("F", bound=Callable[..., Any])
log = structlog.get_logger("waymark.clinic")

COOKIE = "waymark_clinic"
LOGIN_CSRF_COOKIE = "waymark_clinic_login"
COOKIE_PATH = "/clinic"

# No inline script or style, nothing from another origin; charts are data: images.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def limits() -> sessions.Limits:
    cfg = current_app.config
    return sessions.Limits(idle=cfg["CLINIC_IDLE_TIMEOUT"], absolute=cfg["CLINIC_ABSOLUTE_TIMEOUT"])


def secure_cookies() -> bool:
    # Plain http is allowed only for local development (and the test client).
    return current_app.config["ENV"] != "development"


def set_cookie(response: Response, name: str, value: str, *, max_age: int | None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="Strict",
        secure=secure_cookies(),
    )


def clear_cookie(response: Response, name: str) -> None:
    response.delete_cookie(
        name, path=COOKIE_PATH, httponly=True, samesite="Strict", secure=secure_cookies()
    )


def load_session() -> None:
    """before_request: the live dashboard session, if the cookie names one (committed at once,
    so an idle session stays ended and the idle clock moves even when the view fails)."""
    g.clinic_session = None
    g.clinic_user = None
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 100:
        return
    db = get_session()
    found = sessions.load(db, token=token, now=utcnow(), limits=limits())
    db.commit()
    if found is not None:
        g.clinic_session, g.clinic_user = found


def current() -> tuple[ClinicSession, User]:
    row, user = g.get("clinic_session"), g.get("clinic_user")
    if row is None or user is None:
        raise SignInRequired
    return row, user


class SignInRequired(Exception):
    """No signed-in session: the handler redirects to the sign-in page, keeping the target."""


class CsrfRefused(Exception):
    pass


def check_csrf() -> None:
    """before_request: every state-changing request carries the session's (or, before sign-in,
    the sign-in form's) token in the form."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    sent = request.form.get("csrf_token", "")
    row = g.get("clinic_session")
    expected = row.csrf_token if row is not None else request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not sent or not expected or not hmac.compare_digest(sent, expected):
        raise CsrfRefused


def csrf_token() -> str:
    """For templates: the token the next form must carry."""
    row = g.get("clinic_session")
    if row is not None:
        return str(row.csrf_token)
    token = g.get("login_csrf")
    if token is None:
        token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
        g.login_csrf = token
    return str(token)


def after(response: Response) -> Response:
    """after_request: headers for every dashboard answer, and the pre-sign-in CSRF cookie."""
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    if g.get("login_csrf") and request.cookies.get(LOGIN_CSRF_COOKIE) != g.login_csrf:
        set_cookie(response, LOGIN_CSRF_COOKIE, g.login_csrf, max_age=3600)
    return response


def safe_next(target: str | None) -> str | None:
    """A dashboard path to return to after sign-in, or None: never another host or scheme."""
    if not target or len(target) > 2000:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target or not target.startswith("/clinic/"):
        return None
    if target.startswith("//"):
        return None
    return target


def page(
    *roles: str,
    action: str | None = None,
    patient_arg: str | None = "patient_id",
    target_arg: str | None = None,
) -> Callable[[F], F]:
    """A signed-in (second factor done) page for these roles. With `action`, every attempt
    leaves an audit row as on the API (api.audit.access): allowed in the view's transaction,
    refused or failed in one of its own after the rollback."""

    def decorator(func: F) -> F:
        @wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            row, user = current()
            if row.stage != "full":
                raise SignInRequired
            # Read now: a refusal's short transaction rolls the request's session back first.
            actor = (user.id, user.role)
            try:
                if user.role not in roles:
                    raise Forbidden("This page is not for your role.")
                if action:
                    _audit(get_session(), actor, action, kwargs, patient_arg, target_arg, "allowed")
                result = func(*args, **kwargs)
                db = get_session()
                if db.in_transaction():
                    db.commit()
                return result
            except Exception as exc:
                if action:
                    status = _status_of(exc)
                    try:
                        # The denied attempt's row outlives the refusal: a named short
                        # transaction of its own, as the API's audited views do.
                        in_own_transaction(
                            "audit.refused_attempt",
                            lambda own: _audit(
                                own, actor, action, kwargs, patient_arg, target_arg, None, status
                            ),
                        )
                    except Exception as audit_exc:  # the request fails anyway
                        log.error("audit.write_failed", error_type=type(audit_exc).__name__)
                raise

        return wrapper  # type: ignore[return-value]

    return decorator


def _status_of(exc: BaseException) -> int:
    if isinstance(exc, AppError):
        return exc.status
    if isinstance(exc, HTTPException):
        return exc.code or 500
    return 500


def _audit(  # noqa: PLR0917 - the decorator's own helper, called twice
    session: Session,
    actor: tuple[uuid.UUID, str],
    action: str,
    kwargs: dict[str, Any],
    patient_arg: str | None,
    target_arg: str | None,
    outcome: str | None,
    status: int | None = None,
) -> None:
    record_access(
        session,
        actor_id=actor[0],
        actor_role=actor[1],
        action=action,
        patient_id=kwargs.get(patient_arg) if patient_arg else None,
        target_id=kwargs.get(target_arg) if target_arg else None,
        outcome=outcome or outcome_for_status(status or 500),
        status=status,
        request_id=g.get("request_id"),
        client_address=client_address(),
        now=utcnow(),
    )


def error_page(status: int, title: str, detail: str) -> tuple[str, int]:
    return render_template("clinic/error.html", status=status, title=title, detail=detail), status


def handle_app_error(exc: AppError) -> Any:
    get_session().rollback()
    titles = {403: "Not allowed", 404: "Not found", 422: "Check the form", 429: "Slow down"}
    body, status = error_page(exc.status, titles.get(exc.status, exc.title), exc.detail)
    return Response(body, status=status, headers=exc.headers, mimetype="text/html")


def handle_sign_in_required(_exc: SignInRequired) -> Any:
    target = request.full_path if request.method == "GET" else None
    target = safe_next(target.rstrip("?") if target else None)
    return redirect(url_for("clinic.login", next=target) if target else url_for("clinic.login"))


def handle_csrf(_exc: CsrfRefused) -> Any:
    return error_page(
        400,
        "Form expired",
        "This form could not be accepted (its security token is missing or old). "
        "Go back, reload the page and try again.",
    )
