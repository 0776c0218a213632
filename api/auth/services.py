"""Accounts, sign-in, token rotation and sign-out. Services flush, never commit."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, cast

import structlog
from argon2 import PasswordHasher
from sqlalchemy import CursorResult, Result, bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api import fields
from api.auth import email_tokens, mfa, signals
from api.auth.models import AuthSession, EmailRequest, RefreshToken, User
from api.db import OwnTransaction
from api.errors import Conflict, Forbidden, TooManyRequests, Unauthorized
from api.ratelimit import Counter, take_attempt
from api.security import (
    burn_password_check,
    hash_password,
    hash_token,
    issue_access_token,
    new_opaque_token,
    use_auth,
    verify_password,
)

log = structlog.get_logger("waymark.auth")

_INVALID_LOGIN = "The email or password is not correct."
MFA_REQUIRED = "This account uses a second factor: send totp_code (or a recovery code)."
# Wrong current passwords allowed per window on POST /v1/me/password (as for erasure).
PASSWORD_MAX_FAILURES = 5
PASSWORD_FAILURE_WINDOW = 900


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"


@dataclass(frozen=True)
class TokenSettings:
    access_ttl: int
    refresh_ttl: int
    # Seconds after a rotation during which the spent token may be presented again (a lost
    # answer, a retry) and gets the same successor; 0 turns the grace off (docs/contract.md).
    reuse_grace: int = 0
    # Keys the successor derivation below; the app's SECRET_KEY.
    successor_key: bytes = b""


@dataclass(frozen=True)
class ThrottleSettings:
    max_per_account: int
    max_per_address: int
    window: int


# The named short transactions of sign-in (db.in_own_transaction, passed in as
# `own_transaction`): writes that outlive a refused request, never committed by the route.
SIGN_IN_ATTEMPT = "auth.sign_in_attempt"  # the attempt, counted before it is judged
REFUSED_SIGN_IN = "auth.refused_sign_in"  # a wrong second factor: one more failure
ATTEMPT_GIVEN_BACK = "auth.attempt_given_back"  # refused, but not a guess (a missing factor)
REFRESH_REUSE = "auth.refresh_reuse"  # a spent refresh token again: its login revoked


class EmailNotVerified(Forbidden):
    """Sign-in refused until the address is verified (REQUIRE_EMAIL_VERIFICATION): only told
    after the password was right, so it reveals nothing to someone who does not know it."""

    slug = "email-not-verified"
    title = "Email address not verified"


def normalize_email(email: str) -> str:
    return fields.normalize_email(email)


def find_user_by_email(session: Session, email: str) -> User | None:
    """The account holding `email` in any of its spellings (case, spaces)."""
    return session.scalar(select(User).where(User.email == normalize_email(email)))


def new_invite_code() -> str:
    # 10 characters of an unambiguous alphabet: ~50 bits, plenty against guessing with throttling.
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(10))


def create_user(
    session: Session,
    *,
    email: str,
    password: str,
    display_name: str,
    timezone: str,
    hasher: PasswordHasher,
    role: str = "patient",
    organization: str | None = None,
) -> User:
    """An account made by an administrator (clinician, admin): its address counts as verified,
    the administrator vouched for it. Raises Conflict if the email is taken."""
    email = normalize_email(email)
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict("An account with this email already exists.")
    user = User(
        email=email,
        password_hash=hash_password(password, hasher),
        display_name=display_name.strip(),
        timezone=timezone,
        role=role,
        organization=organization,
        invite_code=new_invite_code() if role == "clinician" else None,
    )
    session.add(user)
    session.flush()
    user.email_verified_at = user.created_at  # verified as it is made (created_at's default)
    session.flush()
    log.info("user.created", user_id=str(user.id), role=role)
    return user


@dataclass(frozen=True)
class Registration:
    """What a registration did: made `user`, or found `existing_user_id` holding the address.
    The route answers the same in both cases; only the owner of an existing account is told."""

    user: User | None
    existing_user_id: uuid.UUID | None


def register_patient(
    session: Session,
    *,
    email: str,
    password: str,
    display_name: str,
    timezone: str,
    hasher: PasswordHasher,
    address: str,
    counter: Counter,
    limit: int,
    window: int,
    now: datetime,
) -> Registration:
    """Create a patient account unless the address has one. Raises TooManyRequests past `limit`
    registrations from one client address per `window` seconds.

    Having an account here is itself sensitive (a recovery program), so a taken address must not
    show: the password is hashed in both branches (the hash is most of the time a registration
    takes) and the caller answers the same way. Either way one email is queued: to the owner of
    a taken address, or the new account's verification link."""
    take_attempt(
        session,
        counter,
        f"register:addr:{address[:100]}",
        limit=limit,
        window=window,
        now=now,
        detail="Too many registrations from this address. Try again later.",
    )
    email = normalize_email(email)
    password_hash = hash_password(password, hasher)
    existing = session.scalar(select(User.id).where(User.email == email))
    if existing is not None:
        return _address_taken(session, existing, now=now)
    user = User(
        email=email,
        password_hash=password_hash,
        display_name=display_name.strip(),
        timezone=timezone,
        role="patient",
    )
    try:
        # A savepoint: a registration of the same address committed since the lookup (a double
        # tap on the button) makes the insert fail, and that answers as a taken address does,
        # not as a 409 that would tell the two apart.
        with session.begin_nested():
            session.add(user)
            session.flush()
    except IntegrityError:
        existing = session.scalar(select(User.id).where(User.email == email))
        if existing is None:
            raise
        return _address_taken(session, existing, now=now)
    log.info("user.created", user_id=str(user.id), role="patient")
    # The verification link is issued by the sender job (api.auth.recovery), as for a resend by
    # address: one insert here, close to the taken branch's two (its notice), so the answer's
    # timing says as little as its body.
    session.add(EmailRequest(purpose=email_tokens.VERIFY_EMAIL, email=email, created_at=now))
    session.flush()
    return Registration(user=user, existing_user_id=None)


def _address_taken(session: Session, user_id: uuid.UUID, *, now: datetime) -> Registration:
    log.info("auth.register_existing", user_id=str(user_id))
    # The owner is told by email (queued in this transaction, sent after it commits).
    signals.send_address_taken(session, user_id=user_id, now=now)
    return Registration(user=None, existing_user_id=user_id)


def account_key(action: str, email: str) -> str:
    """A throttle key for an address, whether or not it has an account: a hash of the email in
    its one spelling, never the email itself."""
    digest = hashlib.sha256(normalize_email(email).encode()).hexdigest()[:32]
    return f"{action}:acct:{digest}"


def address_key(action: str, address: str) -> str:
    """A throttle key for a client address (IPv6 is at most 45 characters)."""
    return f"{action}:addr:{address[:100]}"


def _throttle_keys(email: str, address: str) -> tuple[str, str]:
    return account_key("login", email), address_key("login", address)


def count_attempt(
    session: Session,
    *,
    email: str,
    address: str,
    now: datetime,
    counter: Counter,
    throttle: ThrottleSettings,
) -> None:
    """Count a sign-in attempt against the account and the address, before it is judged
    (atomically: the limit holds under parallel clients). Raises TooManyRequests past either
    limit; run as SIGN_IN_ATTEMPT, which then commits nothing of it."""
    acct_key, addr_key = _throttle_keys(email, address)
    for key, limit in ((acct_key, throttle.max_per_account), (addr_key, throttle.max_per_address)):
        try:
            take_attempt(
                session,
                counter,
                key,
                limit=limit,
                window=throttle.window,
                now=now,
                detail="Too many failed sign-ins. Try again later.",
            )
        except TooManyRequests:
            log.warning("auth.login_throttled", scope=key.split(":")[1])
            raise


def give_back_attempt(session: Session, *, email: str, address: str, counter: Counter) -> None:
    """A counted attempt refused for something other than a wrong guess (a second factor not
    sent yet, one not enrolled, the wrong kind of account): not a failure, so it is given back."""
    for key in _throttle_keys(email, address):
        counter.undo(session, key)


def check_credentials(
    session: Session,
    *,
    email: str,
    password: str,
    address: str,
    now: datetime,
    hasher: PasswordHasher,
    counter: Counter,
    throttle: ThrottleSettings,
    own_transaction: OwnTransaction,
) -> User:
    """The first factor, for the API's and the dashboard's sign-in alike. The attempt is counted
    first, in a short transaction of its own (SIGN_IN_ATTEMPT), so it stays whatever the request
    answers; `forgive_attempt` gives it back once every factor passed. Raises TooManyRequests
    when throttled, Unauthorized on bad credentials or a deactivated account."""
    own_transaction(
        SIGN_IN_ATTEMPT,
        partial(
            count_attempt,
            email=email,
            address=address,
            now=now,
            counter=counter,
            throttle=throttle,
        ),
    )
    user = session.scalar(select(User).where(User.email == normalize_email(email)))
    if user is None:
        burn_password_check(password, hasher)
        ok = False
    else:
        ok = verify_password(user.password_hash, password, hasher)
    if not ok:
        log.info("auth.login_failed", user_id=str(user.id) if user else None)
        raise Unauthorized(_INVALID_LOGIN)

    assert user is not None
    if user.deactivated_at is not None:
        log.info("auth.login_deactivated", user_id=str(user.id))
        raise Unauthorized("This account is deactivated. Ask your administrator.")
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password, hasher)
        log.info("auth.password_rehashed", user_id=str(user.id))
    return user


def count_failure(
    session: Session,
    *,
    email: str,
    address: str,
    now: datetime,
    counter: Counter,
    throttle: ThrottleSettings,
) -> None:
    """A failed sign-in (password or second factor) against the account and the address."""
    for key in _throttle_keys(email, address):
        counter.hit(session, key, window=throttle.window, now=now)


def forgive_attempt(session: Session, *, email: str, address: str, counter: Counter) -> None:
    """A sign-in that succeeded (every factor): its counted attempt is given back."""
    acct_key, addr_key = _throttle_keys(email, address)
    counter.reset(session, acct_key)
    counter.undo(session, addr_key)


def check_second_factor(
    session: Session,
    *,
    user: User,
    code: str | None,
    address: str,
    now: datetime,
    counter: Counter,
    throttle: ThrottleSettings,
    box: mfa.SecretBox,
    own_transaction: OwnTransaction,
) -> None:
    """For a user who enrolled TOTP: a current code or an unused recovery code. A wrong code
    counts as a failed sign-in (REFUSED_SIGN_IN, a short transaction of its own). Raises
    Unauthorized (missing or wrong)."""
    if user.totp_enrolled_at is None:
        return
    if not code:
        raise Unauthorized(MFA_REQUIRED, mfa_required=True)
    if mfa.verify_totp(session, user=user, code=code, now=now, box=box) or mfa.use_recovery_code(
        session, user=user, code=code, now=now, box=box
    ):
        return
    user_id = user.id  # read first: the short transaction rolls this session back
    own_transaction(
        REFUSED_SIGN_IN,
        partial(
            count_failure,
            email=user.email,
            address=address,
            now=now,
            counter=counter,
            throttle=throttle,
        ),
    )
    log.info("auth.second_factor_failed", user_id=str(user_id))
    raise Unauthorized("The second-factor code is not correct.", mfa_required=True)


def login(
    session: Session,
    *,
    email: str,
    password: str,
    address: str,
    now: datetime,
    hasher: PasswordHasher,
    counter: Counter,
    throttle: ThrottleSettings,
    tokens: TokenSettings,
    box: mfa.SecretBox,
    totp_code: str | None = None,
    own_transaction: OwnTransaction,
    require_verified_email: bool = False,
) -> TokenPair:
    """Sign in to the API. Raises TooManyRequests when throttled, Unauthorized on bad
    credentials, a wrong second factor (both counted) or a missing one, Forbidden for a
    clinician without one when an admin requires it (neither of the last two is a guess: the
    attempt is given back, ATTEMPT_GIVEN_BACK), EmailNotVerified for an unverified address when
    `require_verified_email` (after the password: it tells nothing to who does not know it)."""
    user = check_credentials(
        session,
        email=email,
        password=password,
        address=address,
        now=now,
        hasher=hasher,
        counter=counter,
        throttle=throttle,
        own_transaction=own_transaction,
    )
    refusal: Unauthorized | Forbidden | None = None
    if user.totp_enrolled_at is not None and not totp_code:
        refusal = Unauthorized(MFA_REQUIRED, mfa_required=True)
    elif user.totp_enrolled_at is None and user.role == "clinician" and mfa.totp_required(session):
        refusal = Forbidden(
            "Your administrator requires a second factor: enrol it in the dashboard (/clinic/)."
        )
    if refusal is not None:
        own_transaction(
            ATTEMPT_GIVEN_BACK,
            partial(give_back_attempt, email=email, address=address, counter=counter),
        )
        raise refusal
    check_second_factor(
        session,
        user=user,
        code=totp_code,
        address=address,
        now=now,
        counter=counter,
        throttle=throttle,
        box=box,
        own_transaction=own_transaction,
    )
    if require_verified_email and not user.email_verified:
        # Every factor was right: not a guess, so the counted attempt is given back.
        own_transaction(
            ATTEMPT_GIVEN_BACK,
            partial(give_back_attempt, email=email, address=address, counter=counter),
        )
        log.info("auth.login_unverified", user_id=str(user.id))
        raise EmailNotVerified(
            "Verify your email address first: open the link we sent you, or ask for a new one "
            "(POST /v1/auth/verify-email/resend)."
        )
    forgive_attempt(session, email=email, address=address, counter=counter)
    login_session = AuthSession(user_id=user.id, created_at=now)
    session.add(login_session)
    session.flush()
    log.info("auth.login", user_id=str(user.id), session_id=str(login_session.id))
    return _issue_pair(session, user=user, login_session=login_session, now=now, tokens=tokens)


def _successor_of(refresh_token: str, tokens: TokenSettings) -> str:
    """The token a rotation hands out for `refresh_token`. Derived (HMAC keyed by the server's
    secret) rather than random, so that the spent token presented again within the grace window
    yields the same successor while only hashes are stored; without the key and the spent token
    (256 random bits) it cannot be computed."""
    mac = hmac.new(tokens.successor_key, b"refresh-successor:" + refresh_token.encode(), "sha256")
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def _issue_pair(
    session: Session,
    *,
    user: User,
    login_session: AuthSession,
    now: datetime,
    tokens: TokenSettings,
    refresh: str | None = None,
) -> TokenPair:
    refresh = refresh or new_opaque_token()
    session.add(
        RefreshToken(
            session_id=login_session.id,
            token_hash=hash_token(refresh),
            issued_at=now,
            expires_at=now + timedelta(seconds=tokens.refresh_ttl),
        )
    )
    access = issue_access_token(
        user_id=user.id, role=user.role, session_id=login_session.id, now=now, ttl=tokens.access_ttl
    )
    session.flush()
    return TokenPair(access_token=access, refresh_token=refresh, expires_in=tokens.access_ttl)


def refresh(
    session: Session,
    *,
    refresh_token: str,
    now: datetime,
    tokens: TokenSettings,
    own_transaction: OwnTransaction,
) -> TokenPair:
    """Rotate a refresh token. A spent token presented again within `tokens.reuse_grace` seconds
    of its rotation answers with the same successor (a retried request); later, or when that
    successor was itself used, it revokes the whole login (theft detection)."""
    row = session.scalar(
        select(RefreshToken)
        .where(RefreshToken.token_hash == hash_token(refresh_token))
        .with_for_update()
    )
    if row is None:
        raise Unauthorized("The refresh token is not valid.")
    login_session = session.get(AuthSession, row.session_id)
    assert login_session is not None
    if not login_session.is_live():
        raise Unauthorized("This sign-in has ended. Sign in again.")
    if row.spent_at is not None:
        return _replay_or_revoke(
            session,
            row,
            login_session=login_session,
            refresh_token=refresh_token,
            now=now,
            tokens=tokens,
            own_transaction=own_transaction,
        )
    if row.expires_at <= now:
        raise Unauthorized("The refresh token has expired. Sign in again.")
    # Conditional update: of two concurrent refreshes with the same token only one rotates; the
    # other is a reuse like any other (within the grace window it gets the same successor).
    won = _rowcount(
        session.execute(
            update(RefreshToken)
            .where(RefreshToken.id == row.id, RefreshToken.spent_at.is_(None))
            .values(spent_at=now)
        )
    )
    if won != 1:
        session.refresh(row)
        return _replay_or_revoke(
            session,
            row,
            login_session=login_session,
            refresh_token=refresh_token,
            now=now,
            tokens=tokens,
            own_transaction=own_transaction,
        )
    user = session.get(User, login_session.user_id)
    assert user is not None
    return _issue_pair(
        session,
        user=user,
        login_session=login_session,
        now=now,
        tokens=tokens,
        refresh=_successor_of(refresh_token, tokens) if tokens.successor_key else None,
    )


def _replay_or_revoke(
    session: Session,
    row: RefreshToken,
    *,
    login_session: AuthSession,
    refresh_token: str,
    now: datetime,
    tokens: TokenSettings,
    own_transaction: OwnTransaction,
) -> TokenPair:
    spent_at = row.spent_at
    if tokens.reuse_grace > 0 and tokens.successor_key and spent_at is not None:
        successor = _successor_of(refresh_token, tokens)
        next_row = session.scalar(
            select(RefreshToken).where(
                RefreshToken.token_hash == hash_token(successor),
                RefreshToken.session_id == login_session.id,
            )
        )
        in_grace = now - spent_at <= timedelta(seconds=tokens.reuse_grace)
        if in_grace and next_row is not None and next_row.spent_at is None:
            log.info("auth.refresh_replayed", session_id=str(login_session.id))
            access = issue_access_token(
                user_id=login_session.user_id,
                role=login_session.user.role,
                session_id=login_session.id,
                now=now,
                ttl=tokens.access_ttl,
            )
            return TokenPair(
                access_token=access, refresh_token=successor, expires_in=tokens.access_ttl
            )
    # The revocation outlives the 401: a short transaction of its own (REFRESH_REUSE), which
    # rolls this session back first (its objects are expired: the id is read before).
    login_id = login_session.id
    own_transaction(REFRESH_REUSE, partial(revoke_login, session_id=login_id, now=now))
    log.warning("auth.refresh_reuse", session_id=str(login_id))
    raise Unauthorized("The refresh token was already used; this sign-in has ended.")


def revoke_login(
    session: Session, *, session_id: uuid.UUID, now: datetime, reason: str = "refresh_reuse"
) -> None:
    """End a login by its id (a spent refresh token presented again); an ended one stays as
    it ended. Flushes only."""
    session.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
        .execution_options(synchronize_session=False)
    )


def _revoke(session: Session, login_session: AuthSession, *, now: datetime, reason: str) -> None:
    if login_session.revoked_at is None:
        login_session.revoked_at = now
        login_session.revoked_reason = reason
    session.flush()


def logout(session: Session, *, refresh_token: str, now: datetime) -> None:
    """End the login the token belongs to. Unknown tokens are ignored (nothing to end)."""
    row = session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == hash_token(refresh_token))
    )
    if row is None:
        return
    login_session = session.get(AuthSession, row.session_id)
    assert login_session is not None
    _revoke(session, login_session, now=now, reason="logout")
    log.info("auth.logout", session_id=str(login_session.id))


def end_all_sessions(session: Session, *, user_id: uuid.UUID, now: datetime, reason: str) -> int:
    return _rowcount(
        session.execute(
            update(AuthSession)
            .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason=reason)
        )
    )


def _rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE matched (typed: Session.execute() is declared to return a plain Result)."""
    return cast("CursorResult[Any]", result).rowcount


_users, _logins = User.__table__, AuthSession.__table__
# Plain Core on the tables: no ORM entity to build on the path every request takes.
_LIVE_LOGIN = (
    select(_users.c.role)
    .join(_logins, _logins.c.user_id == _users.c.id)
    .where(
        _users.c.id == bindparam("user_id"),
        _logins.c.id == bindparam("session_id"),
        _logins.c.revoked_at.is_(None),
    )
)


def role_for_access_token(session: Session, *, claims: dict[str, Any]) -> tuple[uuid.UUID, str]:
    """(user id, role) behind a decoded access token if that login is still live; else
    Unauthorized. One small query per request: the full user is loaded only when a view asks."""
    try:
        user_id = uuid.UUID(claims["sub"])
        session_id = uuid.UUID(claims["sid"])
    except (KeyError, ValueError) as exc:
        raise Unauthorized("The access token is not valid.") from exc
    params = {"user_id": user_id, "session_id": session_id}
    role = session.connection().execute(_LIVE_LOGIN, params).scalar()
    if role is None:
        raise Unauthorized("This sign-in has ended. Sign in again.")
    return user_id, role


def rotate_invite_code(session: Session, *, user: User) -> User:
    user.invite_code = new_invite_code()
    session.flush()
    return user


def set_active(session: Session, *, user: User, active: bool, now: datetime) -> User:
    """Deactivate (every API sign-in of the account ends at once; consents and the ledger stay)
    or reactivate an account."""
    if active:
        user.deactivated_at = None
    elif user.deactivated_at is None:
        user.deactivated_at = now
        ended = end_all_sessions(session, user_id=user.id, now=now, reason="deactivated")
        log.info("user.deactivated", user_id=str(user.id), sessions_ended=ended)
    session.flush()
    return user


def load_user(session: Session, user_id: uuid.UUID) -> User | None:
    return session.get(User, user_id)


# The request layer (api.security) finds logins and users through these (it sits below auth).
use_auth(resolve_login=role_for_access_token, load_user=load_user)
