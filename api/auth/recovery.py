"""Password reset by email and email verification. Services flush, never commit.

Nothing that is asked without signing in may tell whether an address has an account
(docs/contract.md): a reset or a resend by address answers the same either way and does the same
work. It only records the request; the sender job looks the address up after the answer has
gone (issue_requested_emails), so the answer's timing cannot tell either.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth import email_tokens, signals
from api.auth.email_tokens import EmailTokenSettings
from api.auth.models import EmailRequest, User
from api.auth.services import account_key, address_key, end_all_sessions, normalize_email
from api.db import OwnTransaction
from api.ratelimit import Counter, take_attempt
from api.security import hash_password

log = structlog.get_logger("waymark.auth")

# The named short transaction (docs/architecture.md): a token's use, counted before it is judged.
EMAIL_TOKEN_ATTEMPT = "auth.email_token_attempt"


@dataclass(frozen=True)
class EmailLimits:
    """Requests per client address per window (past it: 429), and emails per account per
    window (past it: nothing more is sent, and the answer does not change)."""

    max_per_address: int
    max_emails_per_account: int
    window: int


def _take(
    session: Session, counter: Counter, key: str, *, limits: EmailLimits, now: datetime
) -> None:
    take_attempt(
        session,
        counter,
        key,
        limit=limits.max_per_address,
        window=limits.window,
        now=now,
        detail="Too many requests from this address. Try again later.",
    )


def _may_email(
    session: Session,
    counter: Counter,
    *,
    action: str,
    email: str,
    limits: EmailLimits,
    now: datetime,
) -> bool:
    """Count one email to `email` for `action`; False past the per-account cap (mail bombing)."""
    counted = counter.hit(session, account_key(action, email), window=limits.window, now=now)
    return counted.count <= limits.max_emails_per_account


def _find(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == email))


def _record_request(
    session: Session,
    *,
    purpose: str,
    email: str,
    counter: Counter,
    limits: EmailLimits,
    now: datetime,
) -> None:
    """Record an email asked for by address, for the sender job to act on. The same work for
    every address: nothing here looks the address up (that happens in the job, after the
    answer), so neither the answer nor its timing can tell whether it has an account."""
    email = normalize_email(email)
    action = "reset" if purpose == email_tokens.PASSWORD_RESET else "verify"
    if _may_email(session, counter, action=action, email=email, limits=limits, now=now):
        session.add(EmailRequest(purpose=purpose, email=email, created_at=now))
        session.flush()


def request_password_reset(
    session: Session,
    *,
    email: str,
    address: str,
    counter: Counter,
    limits: EmailLimits,
    now: datetime,
) -> None:
    """Ask for a reset link to `email` (sent if it has an active account). Raises
    TooManyRequests past the per-client-address limit; otherwise the same for any address."""
    _take(session, counter, address_key("reset", address), limits=limits, now=now)
    _record_request(
        session,
        purpose=email_tokens.PASSWORD_RESET,
        email=email,
        counter=counter,
        limits=limits,
        now=now,
    )


def _wants(user: User | None, purpose: str) -> bool:
    if user is None or user.deactivated_at is not None:
        return False
    return purpose == email_tokens.PASSWORD_RESET or not user.email_verified


def issue_requested_emails(
    session: Session, *, now: datetime, settings: EmailTokenSettings, limit: int = 200
) -> int:
    """For the sender job: act on up to `limit` recorded requests, oldest first. An address with
    an account that wants the email gets a token and its email queued; every request is then
    deleted (an address without an account is kept no longer than this). A request older than
    its token's lifetime is dropped (its asker has given up). SKIP LOCKED: two schedulers never
    act on one request. Returns the tokens issued; flushes only."""
    rows = session.scalars(
        select(EmailRequest)
        .order_by(EmailRequest.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    issued = 0
    for row in rows:
        fresh = now - row.created_at < timedelta(seconds=settings.ttl(row.purpose))
        user = _find(session, row.email)
        if fresh and user is not None and _wants(user, row.purpose):
            email_tokens.issue(
                session, user_id=user.id, purpose=row.purpose, now=now, settings=settings
            )
            issued += 1
        session.delete(row)
    session.flush()
    if rows:
        log.info("auth.email_requests_done", requests=len(rows), issued=issued)
    return issued


def _count_token_attempt(
    own_transaction: OwnTransaction,
    counter: Counter,
    *,
    action: str,
    address: str,
    limits: EmailLimits,
    now: datetime,
) -> None:
    """Count a token's use per client address before it is judged, in a short transaction of
    its own (EMAIL_TOKEN_ATTEMPT): a wrong token's count stays whatever the request answers.
    Raises TooManyRequests past the limit (and then commits nothing)."""
    key = address_key(action, address)
    own_transaction(
        EMAIL_TOKEN_ATTEMPT,
        lambda own: _take(own, counter, key, limits=limits, now=now),
    )


def reset_password(
    session: Session,
    *,
    token: str,
    new_password: str,
    address: str,
    counter: Counter,
    limits: EmailLimits,
    hasher: PasswordHasher,
    now: datetime,
    own_transaction: OwnTransaction,
) -> User:
    """Set a new password with a reset token; the token is used up, every sign-in of the account
    ends and the address counts as verified (the link reached its owner). Raises
    TooManyRequests past the per-address limit, InvalidToken (counted) for a bad token."""
    _count_token_attempt(
        own_transaction,
        counter,
        action="reset-confirm",
        address=address,
        limits=limits,
        now=now,
    )
    row = email_tokens.consume(session, token=token, purpose=email_tokens.PASSWORD_RESET, now=now)
    user = session.get(User, row.user_id)
    assert user is not None  # the token row goes with the account (ON DELETE CASCADE)
    user.password_hash = hash_password(new_password, hasher)
    user.email_verified_at = user.email_verified_at or now
    # Any other reset link still out there stops working too.
    email_tokens.void(session, user_id=user.id, purpose=email_tokens.PASSWORD_RESET, now=now)
    ended = end_all_sessions(session, user_id=user.id, now=now, reason="password_reset")
    signals.password_replaced.send(session, user_id=user.id, now=now, reason="password_reset")
    session.flush()
    log.info("auth.password_reset", user_id=str(user.id), sessions_ended=ended)
    return user


def verify_email(
    session: Session,
    *,
    token: str,
    address: str,
    counter: Counter,
    limits: EmailLimits,
    now: datetime,
    own_transaction: OwnTransaction,
) -> User:
    """Mark the account's address verified. Raises TooManyRequests, InvalidToken (counted)."""
    _count_token_attempt(
        own_transaction, counter, action="verify", address=address, limits=limits, now=now
    )
    row = email_tokens.consume(session, token=token, purpose=email_tokens.VERIFY_EMAIL, now=now)
    user = session.get(User, row.user_id)
    assert user is not None
    user.email_verified_at = user.email_verified_at or now
    session.flush()
    log.info("auth.email_verified", user_id=str(user.id))
    return user


def resend_verification(
    session: Session,
    *,
    user_id: uuid.UUID | None,
    email: str | None,
    address: str,
    counter: Counter,
    limits: EmailLimits,
    settings: EmailTokenSettings,
    now: datetime,
) -> None:
    """Send a new verification link (older links stop working) to the signed-in user
    (`user_id`) at once, or record the request for the account of `email` (the sender job acts
    on it). Nothing is sent to a verified address. Raises TooManyRequests past the per-address
    limit; by address, the same for any address."""
    _take(session, counter, address_key("verify-resend", address), limits=limits, now=now)
    if user_id is None:
        assert email is not None
        _record_request(
            session,
            purpose=email_tokens.VERIFY_EMAIL,
            email=email,
            counter=counter,
            limits=limits,
            now=now,
        )
        return
    user = session.get(User, user_id)
    if user is None or not _wants(user, email_tokens.VERIFY_EMAIL):
        return
    if not _may_email(session, counter, action="verify", email=user.email, limits=limits, now=now):
        log.info("auth.verify_email_capped", user_id=str(user.id))
        return
    email_tokens.issue(
        session, user_id=user.id, purpose=email_tokens.VERIFY_EMAIL, now=now, settings=settings
    )
