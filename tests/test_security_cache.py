"""Verified access tokens are remembered per process; expiry and sign-out still apply at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from api import security
from api.auth.models import AuthSession
from api.security import issue_access_token


def _token(app: Flask, session: Session, user: Any, *, ttl: int) -> dict[str, str]:
    now = datetime.now(UTC)
    login = AuthSession(user_id=user.id, created_at=now)
    session.add(login)
    session.commit()
    with app.app_context():
        token = issue_access_token(
            user_id=user.id, role=user.role, session_id=login.id, now=now, ttl=ttl
        )
    return {"Authorization": f"Bearer {token}"}


def test_a_remembered_token_still_expires(
    app: Flask, client: FlaskClient, session: Session, patient: Any
) -> None:
    headers = _token(app, session, patient, ttl=60)
    assert client.get("/v1/me", headers=headers).status_code == 200
    assert any(key[0] == headers["Authorization"][7:] for key in security._VERIFIED)
    with time_machine.travel(datetime.now(UTC) + timedelta(seconds=61)):
        expired = client.get("/v1/me", headers=headers)
    assert expired.status_code == 401
    assert "expired" in expired.json["detail"]


def test_a_remembered_token_of_an_ended_login_is_refused(
    app: Flask, client: FlaskClient, session: Session, patient: Any
) -> None:
    headers = _token(app, session, patient, ttl=600)
    assert client.get("/v1/checkins", headers=headers).status_code == 200
    login = session.query(AuthSession).filter_by(user_id=patient.id).one()
    login.revoked_at = datetime.now(UTC)
    session.commit()
    assert client.get("/v1/checkins", headers=headers).status_code == 401


def test_a_token_signed_with_another_key_is_not_taken_from_the_cache(
    app: Flask, client: FlaskClient, session: Session, patient: Any
) -> None:
    headers = _token(app, session, patient, ttl=600)
    assert client.get("/v1/me", headers=headers).status_code == 200
    original = app.config["SECRET_KEY"]
    app.config["SECRET_KEY"] = "rotated-" + "y" * 40
    try:
        assert client.get("/v1/me", headers=headers).status_code == 401
    finally:
        app.config["SECRET_KEY"] = original


def test_rotation_keeps_tokens_of_the_previous_key_valid_until_they_expire(
    app: Flask, client: FlaskClient, session: Session, patient: Any
) -> None:
    headers = _token(app, session, patient, ttl=600)
    original = app.config["SECRET_KEY"]
    app.config["SECRET_KEY"] = "rotated-" + "z" * 40
    app.config["SECRET_KEY_PREVIOUS"] = [original]
    try:
        assert client.get("/v1/me", headers=headers).status_code == 200
        # New tokens are signed with the new key only.
        fresh = _token(app, session, patient, ttl=600)
        app.config["SECRET_KEY_PREVIOUS"] = []
        assert client.get("/v1/me", headers=fresh).status_code == 200
        # Once the old key is dropped (a token lifetime later), its tokens are refused.
        assert client.get("/v1/me", headers=headers).status_code == 401
    finally:
        app.config["SECRET_KEY"] = original
        app.config["SECRET_KEY_PREVIOUS"] = []
