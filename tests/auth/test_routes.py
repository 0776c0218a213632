"""Accounts and tokens over HTTP (contract: "Accounts and tokens")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.auth import recovery, services
from api.auth.email_tokens import EmailTokenSettings
from api.auth.models import EmailRequest, User
from api.notifications.models import Delivery, Notification

PASSWORD = "correct horse battery"


def register(client: FlaskClient, **overrides: Any) -> Any:
    body = {
        "email": "ana@example.test",
        "password": PASSWORD,
        "display_name": "Ana",
        "timezone": "Europe/Lisbon",
    }
    body.update(overrides)
    return client.post("/v1/auth/register", json=body)


def login(client: FlaskClient, email: str = "ana@example.test", password: str = PASSWORD) -> Any:
    return client.post("/v1/auth/token", json={"email": email, "password": password})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_register_token_me_refresh_reuse_logout(client: FlaskClient) -> None:
    created = register(client)
    assert created.status_code == 202
    assert set(created.json) == {"email", "detail"}

    pair = login(client)
    assert pair.status_code == 200
    assert pair.json["token_type"] == "Bearer"
    assert pair.json["expires_in"] > 0

    me = client.get("/v1/me", headers=bearer(pair.json["access_token"]))
    assert me.status_code == 200
    assert me.json["email"] == "ana@example.test"
    assert me.json["timezone"] == "Europe/Lisbon"
    assert me.json["quiet_hours"] is None
    assert me.json["discreet_notifications"] is False

    rotated = client.post("/v1/auth/refresh", json={"refresh_token": pair.json["refresh_token"]})
    assert rotated.status_code == 200
    assert rotated.json["refresh_token"] != pair.json["refresh_token"]

    # The spent token again after the grace window: 401, and the whole family (the new pair too)
    # is revoked.
    with time_machine.travel(datetime.now(UTC) + timedelta(seconds=31)):
        reuse = client.post("/v1/auth/refresh", json={"refresh_token": pair.json["refresh_token"]})
    assert reuse.status_code == 401
    assert reuse.headers["Content-Type"] == "application/problem+json"
    assert "WWW-Authenticate" in reuse.headers
    again = client.post("/v1/auth/refresh", json={"refresh_token": rotated.json["refresh_token"]})
    assert again.status_code == 401
    assert client.get("/v1/me", headers=bearer(rotated.json["access_token"])).status_code == 401


def test_logout_ends_the_login(client: FlaskClient) -> None:
    register(client)
    pair = login(client).json
    assert (
        client.post("/v1/auth/logout", json={"refresh_token": pair["refresh_token"]}).status_code
        == 204
    )
    assert client.get("/v1/me", headers=bearer(pair["access_token"])).status_code == 401
    refreshed = client.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refreshed.status_code == 401


def test_password_change_ends_every_login(client: FlaskClient) -> None:
    register(client)
    first, second = login(client).json, login(client).json
    changed = client.post(
        "/v1/me/password",
        json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
        headers=bearer(first["access_token"]),
    )
    assert changed.status_code == 204
    for pair in (first, second):
        assert client.get("/v1/me", headers=bearer(pair["access_token"])).status_code == 401
    assert login(client).status_code == 401
    assert login(client, password="a brand new passphrase").status_code == 200


def test_register_refuses_duplicates_and_mass_assignment(client: FlaskClient) -> None:
    assert register(client).status_code == 202
    smuggled = register(
        client, email="bo@example.test", role="admin", id="00000000-0000-0000-0000-000000000001"
    )
    assert smuggled.status_code == 422
    assert set(smuggled.json["errors"]) == {"role", "id"}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"password": "short"}, "password"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": "../../etc/passwd"}, "timezone"),
        ({"email": "not-an-email"}, "email"),
        ({"display_name": 42}, "display_name"),
    ],
)
def test_register_validation_names_the_field(
    client: FlaskClient, overrides: dict[str, Any], field: str
) -> None:
    response = register(client, **overrides)
    assert response.status_code == 422
    assert response.headers["Content-Type"] == "application/problem+json"
    assert field in response.json["errors"]
    assert response.json["request_id"]


def test_wrong_password_then_throttle(client: FlaskClient, app: Any) -> None:
    register(client)
    limit = app.config["LOGIN_MAX_FAILURES_PER_ACCOUNT"]
    for _ in range(limit):
        assert login(client, password="wrong password!").status_code == 401
    throttled = login(client)  # even the right password waits out the window
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) > 0


def test_unknown_email_is_401_not_404(client: FlaskClient) -> None:
    response = login(client, email="nobody@example.test")
    assert response.status_code == 401
    assert "nobody" not in response.get_data(as_text=True)


def test_patch_me(client: FlaskClient) -> None:
    register(client)
    token = login(client).json["access_token"]
    patched = client.patch(
        "/v1/me",
        json={
            "quiet_hours": {"start": "22:00", "end": "07:00"},
            "discreet_notifications": True,
            "timezone": "Asia/Tokyo",
        },
        headers=bearer(token),
    )
    assert patched.status_code == 200
    assert patched.json["quiet_hours"] == {"start": "22:00", "end": "07:00"}
    assert patched.json["discreet_notifications"] is True
    assert patched.json["timezone"] == "Asia/Tokyo"
    bad = client.patch("/v1/me", json={"role": "admin"}, headers=bearer(token))
    assert bad.status_code == 422
    assert client.get("/v1/me", headers=bearer(token)).json["role"] == "patient"
    bad_time = client.patch(
        "/v1/me", json={"quiet_hours": {"start": "25:00", "end": "07:00"}}, headers=bearer(token)
    )
    assert bad_time.status_code == 422
    assert "quiet_hours.start" in bad_time.json["errors"]


def test_admin_creates_clinician_with_invite_code(
    client: FlaskClient, make_admin: Any, make_patient: Any, auth_headers: Any
) -> None:
    admin, patient = make_admin(), make_patient()
    body = {
        "email": "dr@example.test",
        "display_name": "Dr Lee",
        "organization": "Clinic",
        "password": PASSWORD,
    }
    assert (
        client.post("/v1/admin/clinicians", json=body, headers=auth_headers(patient)).status_code
        == 403
    )
    created = client.post("/v1/admin/clinicians", json=body, headers=auth_headers(admin))
    assert created.status_code == 201
    assert created.json["role"] == "clinician"
    assert len(created.json["invite_code"]) == 10


def test_tampered_and_expired_tokens(
    client: FlaskClient, app: Any, patient: Any, auth_headers: Any
) -> None:
    import jwt

    headers = auth_headers(patient)
    token = headers["Authorization"].split()[1]
    claims = jwt.decode(token, options={"verify_signature": False})
    forged = jwt.encode(
        {**claims, "role": "admin"},
        "another-secret-that-is-long-enough-for-hs256",
        algorithm="HS256",
    )
    assert client.get("/v1/me", headers=bearer(forged)).status_code == 401
    expired = jwt.encode(
        {**claims, "exp": claims["iat"] - 10}, app.config["SECRET_KEY"], algorithm="HS256"
    )
    assert client.get("/v1/me", headers=bearer(expired)).status_code == 401
    wrong_aud = jwt.encode(
        {**claims, "aud": "elsewhere"}, app.config["SECRET_KEY"], algorithm="HS256"
    )
    assert client.get("/v1/me", headers=bearer(wrong_aud)).status_code == 401
    assert client.get("/v1/me").status_code == 401


def test_a_retried_refresh_within_the_grace_window_gets_the_same_successor(
    client: FlaskClient,
) -> None:
    register(client)
    pair = login(client).json
    first = client.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert first.status_code == 200

    # The answer was lost; the phone retries with the spent token, 29 s later.
    with time_machine.travel(datetime.now(UTC) + timedelta(seconds=29)):
        retry = client.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        assert retry.status_code == 200
        assert retry.json["refresh_token"] == first.json["refresh_token"]
        assert client.get("/v1/me", headers=bearer(retry.json["access_token"])).status_code == 200

        # The login lives on: the successor rotates as usual.
        nxt = client.post("/v1/auth/refresh", json={"refresh_token": retry.json["refresh_token"]})
        assert nxt.status_code == 200
        # Once the successor was used, the first token is a theft signal even within the window.
        late = client.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        assert late.status_code == 401
        assert client.get("/v1/me", headers=bearer(nxt.json["access_token"])).status_code == 401


def test_password_change_is_throttled_like_erasure(client: FlaskClient) -> None:
    # Issue 11 item 11: a stolen access token must not guess the current password.
    from api.auth.services import PASSWORD_MAX_FAILURES

    register(client)
    first, second = login(client).json, login(client).json
    headers = bearer(first["access_token"])
    for _ in range(PASSWORD_MAX_FAILURES):
        wrong = client.post(
            "/v1/me/password",
            json={"current_password": "not the password", "new_password": "a brand new phrase"},
            headers=headers,
        )
        assert wrong.status_code == 401
    right = client.post(
        "/v1/me/password",
        json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
        headers=headers,
    )
    assert right.status_code == 429
    assert int(right.headers["Retry-After"]) > 0
    # Nothing changed: the other login lives, the old password still signs in.
    assert client.get("/v1/me", headers=bearer(second["access_token"])).status_code == 200


@pytest.mark.parametrize(
    "lookalike",
    [
        "ana\u200b@example.test",  # zero-width space
        "\uff41\uff4e\uff41@example.test",  # fullwidth a n a
        "ANA@EXAMPLE.TEST.",
        "ana@ex\u0430mple.test",  # Cyrillic a in the domain
        "\u0430na@example.test",  # Cyrillic a in the local part
        "ana@example.test\u00a0",
    ],
)
def test_lookalike_emails_cannot_make_a_second_account(
    client: FlaskClient, session: Session, lookalike: str
) -> None:
    # Issue 11 item 13: normalized (NFKC, lower case, IDNA domain) or refused, never a new row.
    assert register(client).status_code == 202
    again = register(client, email=lookalike)
    assert again.status_code in (202, 422), again.status_code
    if again.status_code == 422:
        assert "email" in again.json["errors"]
    assert session.scalar(select(func.count()).select_from(User)) == 1


def test_a_fullwidth_spelling_signs_in_to_the_same_account(client: FlaskClient) -> None:
    assert register(client).status_code == 202
    assert login(client, email="\uff41\uff4e\uff41@EXAMPLE.test").status_code == 200


def test_registration_answers_the_same_whether_or_not_the_email_has_an_account(
    client: FlaskClient, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 11 item 10: having an account here is itself sensitive. Same status, same body, and
    # the same work (the password is hashed in both branches, so the same time).
    hashed: list[str] = []
    real_hash = services.hash_password
    monkeypatch.setattr(
        services,
        "hash_password",
        lambda password, hasher: hashed.append(password) or real_hash(password, hasher),
    )
    new = register(client, password="first passphrase!")
    again = register(client, email="ANA@example.test", password="second passphrase")
    assert (new.status_code, again.status_code) == (202, 202)
    assert new.json == again.json
    assert {k for k, _ in new.headers} == {k for k, _ in again.headers}
    assert hashed == ["first passphrase!", "second passphrase"]

    # One account, its password unchanged. The new account's verification link is left to the
    # sender job (recorded, one row); the taken address's owner is told by a queued notice.
    [user] = session.scalars(select(User)).all()
    assert login(client, password="first passphrase!").status_code == 200
    [request] = session.scalars(select(EmailRequest)).all()
    assert (request.purpose, request.email) == ("verify_email", user.email)
    assert [n.kind for n in session.scalars(select(Notification))] == ["account_exists"]
    settings = EmailTokenSettings.from_config(client.application.config)
    recovery.issue_requested_emails(session, now=datetime.now(UTC), settings=settings)
    queued = session.execute(
        select(Notification, Delivery)
        .join(Delivery, Delivery.notification_id == Notification.id)
        .order_by(Notification.created_at)
    ).all()
    assert [n.kind for n, _ in queued] == ["account_exists", "verify_email"]
    for notification, delivery in queued:
        assert notification.user_id == user.id
        assert (delivery.channel, delivery.status) == ("email", "queued")
        assert notification.inbox_at is None  # not an inbox item, not a push


def test_the_account_exists_email_is_neutral() -> None:
    from api.notifications.texts import email_text

    for discreet in (True, False):
        text = email_text(discreet=discreet, link="https://app.example", kind="account_exists")
        assert "https://app.example" in text.body and "already has one" in text.body
        for word in ("dose", "medication", "check", "recovery", "opioid"):
            assert word not in (text.title + text.body).lower()
    assert "Waymark" not in email_text(discreet=True, link="x", kind="account_exists").title


def test_registration_is_throttled_per_client_address(client: FlaskClient, app: Flask) -> None:
    limit = app.config["REGISTER_MAX_PER_ADDRESS"]
    for n in range(limit):
        assert register(client, email=f"p{n}@example.test").status_code == 202
    refused = register(client, email="one-more@example.test")
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    # Another client address is not held up.
    other = client.post(
        "/v1/auth/register",
        json={
            "email": "elsewhere@example.test",
            "password": PASSWORD,
            "display_name": "Eli",
            "timezone": "UTC",
        },
        environ_base={"REMOTE_ADDR": "192.0.2.7"},
    )
    assert other.status_code == 202
