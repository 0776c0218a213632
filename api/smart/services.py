"""SMART Backend Services: registering system clients, the client_credentials grant with a
signed JWT assertion (RS384 / ES384), and the short-lived access tokens it hands out.

An access token names the client; the FHIR routes resolve it to the clinician the client acts for,
so the client reaches exactly what that clinician's consents allow (api.consent), never more.
"""

from __future__ import annotations

import json
import re
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jwt as pyjwt
import structlog
from joserfc import jwt as jose_jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.auth.models import User
from api.errors import AppError, NotFound, Unauthorized, ValidationError
from api.security import use_system_tokens
from api.smart.models import ClientAssertion, SystemClient

log = structlog.get_logger("waymark.smart")

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALGORITHMS = ("RS384", "ES384")
# SMART Backend Services: an assertion's exp is at most five minutes ahead.
MAX_ASSERTION_LIFETIME = 300
TOKEN_TYPE = "system"
_SCOPE = re.compile(r"^system/(\*|[A-Z][A-Za-z]+)\.(read|\*|c?r?u?d?s?)$")
_JWKS_MAX_BYTES = 65536


class OAuthError(AppError):
    """An RFC 6749 token-endpoint error (`error` / `error_description`), not problem+json."""

    status = 400
    slug = "oauth"
    title = "Token request refused"

    def __init__(self, error: str, description: str, *, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.status = status


@dataclass(frozen=True)
class TokenSettings:
    token_url: str  # the `aud` an assertion must name
    issuer: str
    audience: str
    secret: str
    ttl: int
    max_skew: int


def system_audience(audience: str) -> str:
    """System tokens have an audience of their own, so no user route ever accepts one."""
    return f"{audience}:system"


def parse_scopes(raw: str | list[str]) -> list[str]:
    """SMART system scopes (v1 `system/Type.read`, v2 `system/Type.rs`); raises ValueError."""
    scopes = raw.split() if isinstance(raw, str) else list(raw)
    bad = [s for s in scopes if not _SCOPE.match(s)]
    if bad:
        raise ValueError(f"Not a SMART system scope: {', '.join(bad)}.")
    return scopes


def _reads(scope: str) -> bool:
    permission = scope.split(".", 1)[1]
    return permission in ("read", "*") or "r" in permission


def readable_types(scopes: list[str], offered: list[str]) -> list[str]:
    """The resource types the scopes let a client read, among those offered."""
    types: set[str] = set()
    for scope in scopes:
        if not _reads(scope):
            continue
        rtype = scope.split("/", 1)[1].split(".", 1)[0]
        types |= set(offered) if rtype == "*" else {rtype}
    return [t for t in offered if t in types]


def register_client(
    session: Session, *, body: dict[str, Any], admin: User, now: datetime
) -> SystemClient:
    """Raises ValidationError naming the field: no clinician with that id, bad keys or scopes."""
    clinician = session.get(User, body["clinician_id"])
    if clinician is None or clinician.role != "clinician":
        raise ValidationError({"clinician_id": ["No clinician with this id."]})
    jwks, jwks_url = body.get("jwks"), body.get("jwks_url")
    if (jwks is None) == (jwks_url is None):
        raise ValidationError({"jwks": ["Give exactly one of jwks and jwks_url."]})
    if jwks is not None:
        try:
            keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise ValidationError({"jwks": ["Not a JSON Web Key Set."]}) from exc
        if any(k.is_private for k in keys.keys):
            raise ValidationError({"jwks": ["Register public keys only."]})
    try:
        scopes = parse_scopes(body["scopes"])
    except ValueError as exc:
        raise ValidationError({"scopes": [str(exc)]}) from exc
    client = SystemClient(
        name=body["name"],
        clinician_id=clinician.id,
        jwks=jwks,
        jwks_url=jwks_url,
        scopes=scopes,
        created_at=now,
        created_by_id=admin.id,
    )
    session.add(client)
    session.flush()
    log.info("system_client.registered", client_id=str(client.id), clinician_id=str(clinician.id))
    return client


def list_clients(session: Session) -> list[SystemClient]:
    return list(session.scalars(select(SystemClient).order_by(SystemClient.created_at)))


def disable_client(session: Session, *, client_id: uuid.UUID, now: datetime) -> SystemClient:
    """Its tokens stop working at once (checked on every request). Raises NotFound."""
    client = session.get(SystemClient, client_id)
    if client is None:
        raise NotFound("No such system client.")
    client.disabled_at = client.disabled_at or now
    session.flush()
    return client


def _fetch_jwks(url: str) -> dict[str, Any]:
    if not url.startswith(("https://", "http://")):
        raise OAuthError("invalid_client", "The client's JWKS URL is not http(s).", status=401)
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 (scheme checked)
            return json.loads(answer.read(_JWKS_MAX_BYTES))  # type: ignore[no-any-return]
    except (OSError, ValueError) as exc:
        raise OAuthError(
            "invalid_client", "The client's JWKS could not be read.", status=401
        ) from exc


def _unverified_client_id(assertion: str) -> uuid.UUID:
    try:
        claims = pyjwt.decode(assertion, options={"verify_signature": False})
        return uuid.UUID(str(claims.get("iss")))
    except (pyjwt.InvalidTokenError, ValueError, TypeError) as exc:
        raise OAuthError(
            "invalid_client", "The client assertion is not a JWT.", status=401
        ) from exc


def issue_token(
    session: Session, *, form: dict[str, str], settings: TokenSettings, now: datetime
) -> dict[str, Any]:
    """The client_credentials grant of SMART Backend Services. Raises OAuthError."""
    if form.get("grant_type") != "client_credentials":
        raise OAuthError("unsupported_grant_type", "Only client_credentials is supported.")
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise OAuthError("invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}.")
    assertion = form.get("client_assertion") or ""
    client_id = _unverified_client_id(assertion)
    client = session.get(SystemClient, client_id)
    if client is None or client.disabled_at is not None:
        raise OAuthError("invalid_client", "Unknown or disabled client.", status=401)
    try:
        keys = KeySet.import_key_set(client.jwks or _fetch_jwks(client.jwks_url or ""))  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise OAuthError("invalid_client", "The client's keys are not usable.", status=401) from exc
    try:
        token = jose_jwt.decode(assertion, keys, algorithms=list(ALGORITHMS))
    except (JoseError, ValueError) as exc:
        log.info("system_token.bad_signature", client_id=str(client.id))
        raise OAuthError(
            "invalid_client", "The assertion's signature does not verify.", status=401
        ) from exc
    claims = token.claims
    stamp = int(now.timestamp())
    registry = jose_jwt.JWTClaimsRegistry(
        now=stamp,
        leeway=settings.max_skew,
        iss={"essential": True, "value": str(client.id)},
        sub={"essential": True, "value": str(client.id)},
        aud={"essential": True, "value": settings.token_url},
        exp={"essential": True},
        jti={"essential": True},
    )
    try:
        registry.validate(claims)
    except JoseError as exc:
        raise OAuthError(
            "invalid_client", f"Assertion refused: {exc.description}.", status=401
        ) from exc
    if int(claims["exp"]) > stamp + MAX_ASSERTION_LIFETIME + settings.max_skew:
        raise OAuthError(
            "invalid_client", "The assertion expires more than 5 minutes ahead.", status=401
        )
    expires = datetime.fromtimestamp(int(claims["exp"]) + settings.max_skew, tz=now.tzinfo)
    session.execute(delete(ClientAssertion).where(ClientAssertion.expires_at < now))
    try:
        with session.begin_nested():
            session.add(
                ClientAssertion(
                    client_id=client.id, jti=str(claims["jti"])[:255], expires_at=expires
                )
            )
            session.flush()
    except IntegrityError as exc:
        log.warning("system_token.replay", client_id=str(client.id))
        raise OAuthError(
            "invalid_client", "This assertion (jti) was used before.", status=401
        ) from exc
    try:
        asked = parse_scopes(form.get("scope") or "")
    except ValueError as exc:
        raise OAuthError("invalid_scope", str(exc)) from exc
    granted = [s for s in asked if s in client.scopes or _covered(s, client.scopes)]
    if not granted:
        raise OAuthError("invalid_scope", "None of the scopes asked for is allowed to this client.")
    scope = " ".join(granted)
    access = pyjwt.encode(
        {
            "iss": settings.issuer,
            "aud": system_audience(settings.audience),
            "sub": str(client.id),
            "typ": TOKEN_TYPE,
            "role": TOKEN_TYPE,
            "scope": scope,
            "iat": stamp,
            "exp": stamp + settings.ttl,
            "jti": uuid.uuid4().hex,
        },
        settings.secret,
        algorithm="HS256",
    )
    log.info("system_token.issued", client_id=str(client.id))
    return {
        "access_token": access,
        "token_type": "bearer",
        "expires_in": settings.ttl,
        "scope": scope,
    }


def _covered(scope: str, allowed: list[str]) -> bool:
    """A narrower scope than one allowed (system/Patient.read under system/*.read)."""
    rtype, permission = scope.split("/", 1)[1].split(".", 1)
    for item in allowed:
        a_type, a_perm = item.split("/", 1)[1].split(".", 1)
        if a_type not in ("*", rtype):
            continue
        if a_perm in ("*", permission) or (_reads(item) and permission in ("read", "r", "rs", "s")):
            return True
    return False


def is_system_token(token: str) -> bool:
    try:
        return pyjwt.decode(token, options={"verify_signature": False}).get("typ") == TOKEN_TYPE
    except pyjwt.InvalidTokenError:
        return False


def authenticate_system(
    session: Session, *, token: str, issuer: str, audience: str, secret: str
) -> tuple[SystemClient, User, dict[str, Any]]:
    """(client, the clinician it acts for, claims); raises Unauthorized."""
    try:
        claims = pyjwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=system_audience(audience),
            issuer=issuer,
            options={"require": ["exp", "iat", "sub", "iss", "aud", "scope"]},
        )
    except pyjwt.ExpiredSignatureError as exc:
        raise Unauthorized("The access token has expired.") from exc
    except pyjwt.InvalidTokenError as exc:
        raise Unauthorized("The access token is not valid.") from exc
    client = session.get(SystemClient, uuid.UUID(claims["sub"]))
    if client is None or client.disabled_at is not None:
        raise Unauthorized("The client is no longer registered.")
    clinician = session.get(User, client.clinician_id)
    if clinician is None or clinician.role != "clinician":
        raise Unauthorized("The client's clinician is gone.")
    return client, clinician, claims


use_system_tokens(is_system_token=is_system_token, authenticate=authenticate_system)
