"""Password hashing (argon2id, OWASP minimum, rehash on sign-in) and access-token claims."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from argon2 import PasswordHasher, Type, extract_parameters
from flask import Flask
from flask.testing import FlaskClient
from jwt.warnings import InsecureKeyLengthWarning
from sqlalchemy.orm import Session

from api.auth.models import User
from api.config import Config
from api.security import decode_access_token, hash_password, issue_access_token, password_hasher

PASSWORD = "correct horse battery"


def test_default_argon2_parameters_meet_the_owasp_minimum(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("ARGON2_MEMORY_KIB", "ARGON2_TIME_COST", "ARGON2_PARALLELISM"):
        monkeypatch.delenv(name, raising=False)
    defaults = Config().as_flask()
    # OWASP Password Storage Cheat Sheet: argon2id, m >= 19 MiB, t >= 2, p = 1.
    assert defaults["ARGON2_MEMORY_KIB"] >= 19 * 1024
    assert defaults["ARGON2_TIME_COST"] >= 2
    assert defaults["ARGON2_PARALLELISM"] == 1
    for key in ("ARGON2_MEMORY_KIB", "ARGON2_TIME_COST", "ARGON2_PARALLELISM"):
        monkeypatch.setitem(app.config, key, defaults[key])
    with app.app_context():
        stored = hash_password(PASSWORD, password_hasher())
    params = extract_parameters(stored)
    assert stored.startswith("$argon2id$")
    assert params.type is Type.ID
    assert (params.memory_cost, params.time_cost, params.parallelism) == (19456, 2, 1)


def test_a_weaker_stored_hash_is_upgraded_at_the_next_sign_in(
    app: Flask, client: FlaskClient, session: Session, make_patient: Any
) -> None:
    user = make_patient(email="old@example.test", password=PASSWORD)
    weak = PasswordHasher(time_cost=1, memory_cost=512, parallelism=2, type=Type.I)
    user.password_hash = weak.hash(PASSWORD)  # as an older release stored it
    session.commit()
    current = (app.config["ARGON2_MEMORY_KIB"], app.config["ARGON2_TIME_COST"])

    def stored() -> str:
        session.expire_all()
        return session.get(User, user.id).password_hash  # type: ignore[union-attr]

    wrong = {"email": "old@example.test", "password": "not the password"}
    assert client.post("/v1/auth/token", json=wrong).status_code == 401
    assert extract_parameters(stored()).type is Type.I  # a failed sign-in changes nothing

    right = {"email": "old@example.test", "password": PASSWORD}
    assert client.post("/v1/auth/token", json=right).status_code == 200
    upgraded = extract_parameters(stored())
    assert upgraded.type is Type.ID
    assert (upgraded.memory_cost, upgraded.time_cost, upgraded.parallelism) == (*current, 1)
    unchanged = stored()
    assert client.post("/v1/auth/token", json=right).status_code == 200
    assert stored() == unchanged  # already current: not hashed again


def _token(app: Flask, **claims: Any) -> str:
    now = datetime.now(UTC)
    base = {
        "iss": app.config["JWT_ISSUER"],
        "aud": app.config["JWT_AUDIENCE"],
        "sub": str(uuid.uuid4()),
        "sid": str(uuid.uuid4()),
        "role": "patient",
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
    }
    base.update(claims)
    return jwt.encode(
        {k: v for k, v in base.items() if v is not None}, app.config["SECRET_KEY"], "HS256"
    )


def test_access_token_claims(app: Flask) -> None:
    user_id, session_id = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    with app.test_request_context():
        token = issue_access_token(
            user_id=user_id, role="patient", session_id=session_id, now=now, ttl=900
        )
        claims = decode_access_token(token)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert isinstance(claims["sub"], str) and claims["sub"] == str(user_id)
    assert claims["iss"] == app.config["JWT_ISSUER"]
    assert claims["aud"] == app.config["JWT_AUDIENCE"]
    assert claims["exp"] - claims["iat"] == 900


@pytest.mark.parametrize(
    "claims",
    [
        {"iss": "someone-else"},
        {"iss": None},
        {"aud": "another-api"},
        {"aud": None},
        {"exp": None},
        {"exp": int((datetime.now(UTC) - timedelta(seconds=5)).timestamp())},
        {"sub": None},
        {"sub": 12345},  # not a string
        {"sid": None},
    ],
    ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()),
)
def test_tokens_with_a_wrong_or_missing_claim_are_refused(
    app: Flask, claims: dict[str, Any]
) -> None:
    from api.errors import Unauthorized

    with app.test_request_context(), pytest.raises(Unauthorized):
        decode_access_token(_token(app, **claims))


def test_other_algorithms_are_refused(app: Flask) -> None:
    from api.errors import Unauthorized

    signed = _token(app)
    good = jwt.decode(signed, options={"verify_signature": False}, algorithms=["HS256"])
    unsigned = jwt.encode(good, key=None, algorithm="none")
    with pytest.warns(InsecureKeyLengthWarning):  # the secret is sized for HS256
        hs512 = jwt.encode(good, app.config["SECRET_KEY"], algorithm="HS512")
    with app.test_request_context():
        assert decode_access_token(signed)["sub"] == good["sub"]
        for token in (unsigned, hs512):
            with pytest.raises(Unauthorized):
                decode_access_token(token)


def test_a_valid_token_for_an_ended_login_is_refused(
    client: FlaskClient, app: Flask, patient: Any
) -> None:
    # Signed and in date, but no such login: the revocation check, not only the signature.
    token = _token(app, sub=str(patient.id))
    response = client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_api_keeps_no_cookie_session(app: Flask, client: FlaskClient) -> None:
    """Bearer tokens only: flask.session is a NullSession (writes refused), and no answer sets a
    cookie (Flask's cookie session would also cost a signing serializer per request)."""
    from flask import session
    from flask.sessions import NullSession

    with app.test_request_context("/"):
        assert isinstance(session._get_current_object(), NullSession)  # type: ignore[attr-defined]
        with pytest.raises(RuntimeError):
            session["user_id"] = "x"
    response = client.get("/healthz")
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
