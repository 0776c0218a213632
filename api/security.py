"""Password hashing, access tokens, the current user and role guards."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app, g, request
from flask_smorest import Blueprint

from api.db import get_session
from api.errors import Forbidden, Unauthorized
from api.observability import bind_user

if TYPE_CHECKING:
    from api.auth.models import User

F = TypeVar("F", bound=Callable[..., Any])

ROLES = ("patient", "clinician", "admin")
_ALGORITHM = "HS256"


def password_hasher() -> PasswordHasher:
    cfg = current_app.config
    return PasswordHasher(
        time_cost=cfg["ARGON2_TIME_COST"],
        memory_cost=cfg["ARGON2_MEMORY_KIB"],
        parallelism=cfg["ARGON2_PARALLELISM"],
    )


def hash_password(password: str, hasher: PasswordHasher | None = None) -> str:
    return (hasher or password_hasher()).hash(password)


def verify_password(stored_hash: str, password: str, hasher: PasswordHasher) -> bool:
    try:
        return hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# A constant hash to verify against when the account does not exist, so response time does not
# tell whether an email is registered.
_DUMMY_HASH: dict[tuple[int, int, int], str] = {}


def burn_password_check(password: str, hasher: PasswordHasher) -> None:
    key = (hasher.time_cost, hasher.memory_cost, hasher.parallelism)
    if key not in _DUMMY_HASH:
        _DUMMY_HASH[key] = hasher.hash(secrets.token_urlsafe(16))
    verify_password(_DUMMY_HASH[key], password, hasher)


def hash_token(token: str) -> str:
    """Refresh tokens are random 256-bit values, so a fast hash is enough to store them safely."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_opaque_token() -> str:
    return secrets.token_urlsafe(32)


def issue_access_token(
    *, user_id: uuid.UUID, role: str, session_id: uuid.UUID, now: datetime, ttl: int
) -> str:
    cfg = current_app.config
    claims = {
        "iss": cfg["JWT_ISSUER"],
        "aud": cfg["JWT_AUDIENCE"],
        "sub": str(user_id),
        "sid": str(session_id),
        "role": role,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=ttl)).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, cfg["SECRET_KEY"], algorithm=_ALGORITHM)


def decode_access_token(token: str) -> dict[str, Any]:
    cfg = current_app.config
    previous = ",".join(cfg.get("SECRET_KEY_PREVIOUS", []))
    cache_key = (token, cfg["SECRET_KEY"] + "|" + previous, cfg["JWT_AUDIENCE"], cfg["JWT_ISSUER"])
    claims = _VERIFIED.get(cache_key)
    if claims is not None:
        # Verified before: only the expiry can have changed (revocation is checked per request).
        if claims["exp"] <= time.time():
            _VERIFIED.pop(cache_key, None)
            raise Unauthorized("The access token has expired.")
        return claims
    # The current key first; the keys it replaced still verify tokens they signed (rotation),
    # which expire within ACCESS_TOKEN_TTL of the switch.
    keys = [cfg["SECRET_KEY"], *cfg.get("SECRET_KEY_PREVIOUS", [])]
    verified: dict[str, Any] = {}
    for index, key in enumerate(keys):
        try:
            verified = jwt.decode(
                token,
                key,
                algorithms=[_ALGORITHM],
                audience=cfg["JWT_AUDIENCE"],
                issuer=cfg["JWT_ISSUER"],
                options={"require": ["exp", "iat", "sub", "sid", "iss", "aud"]},
            )
            break
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("The access token has expired.") from exc
        except jwt.InvalidSignatureError as exc:
            if index == len(keys) - 1:
                raise Unauthorized("The access token is not valid.") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthorized("The access token is not valid.") from exc
    with _VERIFIED_LOCK:
        if len(_VERIFIED) >= _VERIFIED_MAX:
            _VERIFIED.pop(next(iter(_VERIFIED)))  # oldest first: dicts keep insertion order
        _VERIFIED[cache_key] = verified
    return verified


# Signature checks of recently seen tokens (PyJWT spends a good part of a request on them). A
# token is a few hundred bytes; the cache stays small and per process.
_VERIFIED: dict[tuple[str, str, str, str], dict[str, Any]] = {}
_VERIFIED_MAX = 4096
_VERIFIED_LOCK = threading.Lock()


def _bearer_token() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send 'Authorization: Bearer <access_token>'.")
    return token.strip()


# How a token's live login and a user are found belongs to the auth feature, which sits above
# this module (it hashes and issues tokens through it): auth registers both at import
# (use_auth), the way Flask-Login takes a user_loader, so this module never imports auth.
LoginResolver = Callable[..., tuple[uuid.UUID, str]]  # (session, *, claims) -> (user id, role)
UserLoader = Callable[..., Any]  # (session, user_id) -> User | None
_auth: dict[str, Any] = {}


def use_auth(*, resolve_login: LoginResolver, load_user: UserLoader) -> None:
    _auth.update(resolve_login=resolve_login, load_user=load_user)


def _auth_hook(name: str) -> Any:
    try:
        return _auth[name]
    except KeyError:
        raise RuntimeError("api.auth has not registered with api.security (use_auth)") from None


def authenticate() -> tuple[uuid.UUID, str]:
    """Resolve the bearer token to a live login: (user id, role); raise Unauthorized."""
    claims = decode_access_token(_bearer_token())
    user_id, role = _auth_hook("resolve_login")(get_session(), claims=claims)
    g.current_user_id = user_id
    g.pop("current_user", None)  # a user loaded for an earlier token must never be reused
    g.token_claims = claims
    bind_user(user_id)
    return user_id, role


def current_user_id() -> uuid.UUID:
    """The signed-in user's id, without loading the user."""
    user_id = g.get("current_user_id")
    if user_id is None:
        raise Unauthorized()
    return user_id  # type: ignore[no-any-return]


def current_user() -> User:
    """The signed-in user, loaded on first use in the request."""
    user = g.get("current_user")
    if user is None:
        user = _auth_hook("load_user")(get_session(), current_user_id())
        if user is None:
            raise Unauthorized()
        g.current_user = user
    return user  # type: ignore[no-any-return]


def client_address() -> str:
    # Behind N trusted proxies, the client is the Nth address from the right of X-Forwarded-For.
    hops = current_app.config["TRUSTED_PROXIES"]
    if hops:
        forwarded = [a.strip() for a in request.headers.get("X-Forwarded-For", "").split(",")]
        if len(forwarded) >= hops:
            return forwarded[-hops]
    return request.remote_addr or "unknown"


AUTH_RESPONSES = {"401": "UNAUTHORIZED", "403": "FORBIDDEN"}


def auth_required(*roles: str) -> Callable[[F], F]:
    """Require a valid access token and, if given, one of the roles; documents it in OpenAPI."""
    for role in roles:
        assert role in ROLES, role

    def decorator(func: F) -> F:
        @wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            _user_id, role = authenticate()
            if roles and role not in roles:
                raise Forbidden(f"This endpoint is for the role(s): {', '.join(roles)}.")
            return func(*args, **kwargs)

        description = f"Roles: {', '.join(roles)}." if roles else "Any signed-in user."
        return Blueprint.doc(  # type: ignore[no-any-return]
            security=[{"bearerAuth": []}],
            responses=AUTH_RESPONSES,
            description=description,
            # Machine-readable for clients and for the schemathesis suite (which token to send).
            **{"x-roles": list(roles or ROLES)},
        )(wrapper)

    return decorator
