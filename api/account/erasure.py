"""Erasure (GDPR Art. 17): `DELETE /v1/me` removes the account and its health data at once.

What stays, by law, is listed in docs/export.md ("Erasure"): the disclosure ledger keeps who
received which categories of data when, without any health value.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

import structlog
from argon2 import PasswordHasher
from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from api.auth.models import User
from api.db import OwnTransaction
from api.errors import Forbidden
from api.export import services as export_services
from api.export.models import ExportJob
from api.export.storage import ExportPlace
from api.ratelimit import DatabaseCounter, RateCounter, take_attempt
from api.security import verify_password

log = structlog.get_logger("waymark.erasure")

# Wrong passwords allowed per window before 429, so a stolen access token cannot guess it.
MAX_FAILURES = 5
FAILURE_WINDOW = 900

# Each feature's eraser: (session, user_id, now) -> None. Run before the users row is deleted,
# in this order; the rest goes by ON DELETE CASCADE from users.
Eraser = Callable[[Session, uuid.UUID, datetime], None]
ERASERS: list[Eraser] = []


class WrongPassword(Forbidden):
    """A wrong password: 403 (the token is fine; the proof is not). Its attempt was counted
    before, in a short transaction of its own (ERASE_ATTEMPT), so it is kept."""


# The named short transaction (db.in_own_transaction) of an erasure's counted attempt.
ERASE_ATTEMPT = "account.erase_attempt"


def _failure_key(user_id: uuid.UUID) -> str:
    return f"erase:{user_id}"


def _check_password(
    *,
    user: User,
    password: str,
    hasher: PasswordHasher,
    now: datetime,
    own_transaction: OwnTransaction,
) -> None:
    # Counted in the database whatever REDIS_URL says: the row goes with the erasure.
    counter = DatabaseCounter()
    key = _failure_key(user.id)
    own_transaction(
        ERASE_ATTEMPT,
        lambda own: take_attempt(
            own,
            counter,
            key,
            limit=MAX_FAILURES,
            window=FAILURE_WINDOW,
            now=now,
            detail="Too many wrong passwords. Try again later.",
        ),
    )
    if not verify_password(user.password_hash, password, hasher):
        log.info("account.erase_refused", user_id=str(user.id))
        raise WrongPassword("The password is not correct.")


def erase_account(
    session: Session,
    *,
    user: User,
    password: str,
    hasher: PasswordHasher,
    export_dir: ExportPlace,
    now: datetime,
    own_transaction: OwnTransaction,
) -> None:
    """Raises WrongPassword (403) or TooManyRequests; otherwise erases everything of the account."""
    _check_password(
        user=user, password=password, hasher=hasher, now=now, own_transaction=own_transaction
    )
    erase_user_data(session, user_id=user.id, export_dir=export_dir, now=now)
    session.expunge(user)
    log.info("account.erased", user_id=str(user.id))


def erase_user_data(
    session: Session, *, user_id: uuid.UUID, export_dir: ExportPlace, now: datetime
) -> None:
    """Delete the user's rows everywhere (and export files that hold them); keep the ledger."""
    # Bulk export files that hold this patient, and the user's own bulk export files.
    export_services.erase_patient_exports(session, patient_id=user_id, export_dir=export_dir)
    for job_id in session.scalars(select(ExportJob.id).where(ExportJob.requester_id == user_id)):
        export_services.remove_files(export_dir, job_id, session)
    for eraser in ERASERS:
        eraser(session, user_id, now)
    # Counters keyed by the user's id (export rate, erase attempts).
    session.execute(
        delete(RateCounter).where(
            or_(*(RateCounter.key.like(f"%{form}%") for form in (str(user_id), user_id.hex)))
        )
    )
    # Logins, refresh tokens, the change feed, export jobs: ON DELETE CASCADE from users.
    session.execute(delete(User).where(User.id == user_id))
    session.flush()
