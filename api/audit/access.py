"""`auth_required` that also audits: every attempt on a route reaching another person's health
data leaves a row, allowed or not (HIPAA 164.312(b)).

An allowed attempt is written in the view's own transaction (the view commits it with the read);
a refused or failed one is written in a named short transaction of its own (db.in_own_transaction,
which rolls the request back first), so it stays even though the request fails.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import structlog
from flask import g
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from api.audit.services import outcome_for_status, record_access
from api.db import get_session, in_own_transaction, utcnow
from api.errors import AppError
from api.security import auth_required, client_address

F = TypeVar("F", bound=Callable[..., Any])

log = structlog.get_logger("waymark.audit")


def _status_of(exc: BaseException) -> int:
    if isinstance(exc, AppError):
        return exc.status
    if isinstance(exc, HTTPException):
        return exc.code or 500
    return 500


def _record(
    session: Session,
    *,
    action: str,
    kwargs: dict[str, Any],
    patient_arg: str | None,
    target_arg: str | None,
    outcome: str,
    status: int | None,
) -> None:
    # Set by authenticate() once the token resolved to a live login (the role is the one the
    # token was issued for; roles never change).
    actor_id = g.get("current_user_id")
    actor_role = (g.get("token_claims") or {}).get("role") if actor_id is not None else None

    def _id(name: str | None) -> uuid.UUID | None:
        value = kwargs.get(name) if name else None
        return value if isinstance(value, uuid.UUID) else None

    record_access(
        session,
        actor_id=actor_id,
        actor_role=actor_role,
        action=action,
        patient_id=_id(patient_arg),
        target_id=_id(target_arg),
        outcome=outcome,
        status=status,
        request_id=g.get("request_id"),
        client_address=client_address(),
        now=utcnow(),
    )


def auth_required_audited(
    *roles: str,
    action: str,
    patient_arg: str | None = "patient_id",
    target_arg: str | None = None,
) -> Callable[[F], F]:
    """auth_required(*roles), and an audit row for the attempt. `patient_arg` and `target_arg`
    name the view arguments (path parameters) that identify the patient and the target."""

    def decorator(func: F) -> F:
        @wraps(func)
        def allowed(*args: Any, **kwargs: Any) -> Any:
            _record(
                get_session(),
                action=action,
                kwargs=kwargs,
                patient_arg=patient_arg,
                target_arg=target_arg,
                outcome="allowed",
                status=None,
            )
            return func(*args, **kwargs)  # the view commits its read and this row together

        guarded = auth_required(*roles)(allowed)

        @wraps(guarded)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            # The actor is whoever this request authenticates (an app context can outlive one
            # request, as in tests; a user left on g by an earlier request is not this actor).
            for key in ("current_user", "current_user_id", "token_claims"):
                g.pop(key, None)
            try:
                return guarded(*args, **kwargs)
            except Exception as exc:
                status = _status_of(exc)
                try:
                    in_own_transaction(
                        "audit.refused_attempt",
                        lambda session: _record(
                            session,
                            action=action,
                            kwargs=kwargs,
                            patient_arg=patient_arg,
                            target_arg=target_arg,
                            outcome=outcome_for_status(status),
                            status=status,
                        ),
                    )
                except Exception as audit_exc:  # the request fails anyway; say why it is unaudited
                    log.error("audit.write_failed", error_type=type(audit_exc).__name__)
                raise

        return wrapper  # type: ignore[return-value]

    return decorator
