"""Password reset by email and email verification over HTTP (issue 13 item 4; contract:
"Password reset and email verification")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.auth import recovery
from api.auth.email_tokens import EmailTokenSettings, derive_token
from api.auth.models import EmailRequest, EmailToken, User
from api.notifications.models import Delivery, Notification
from tests.auth.test_routes import bearer, login, register
from tests.support.queries import TEST_TRANSACTION

EMAIL = "ana@example.test"
NEW_PASSWORD = "a fresh passphrase 2"


def run_job(app: Flask, session: Session, now: datetime | None = None) -> int:
    """What the sender job does first: act on the requests recorded by address."""
    settings = EmailTokenSettings.from_config(app.config)
    issued = recovery.issue_requested_emails(
        session, now=now or datetime.now(UTC), settings=settings
    )
    session.commit()
    return issued


def emails(app: Flask, session: Session, kind: str) -> list[Notification]:
    """The emails of `kind` queued so far (after the job acted on the requests)."""
    run_job(app, session)
    session.expire_all()
    return list(
        session.scalars(
            select(Notification).where(Notification.kind == kind).order_by(Notification.created_at)
        )
    )


def token_of(app: Flask, notification: Notification) -> str:
    """The token the sender writes into this email (tests/notifications checks it does)."""
    key = app.config["SECRET_KEY"].encode()
    return derive_token(key, purpose=notification.kind, notification_id=notification.id)


def last_token(app: Flask, session: Session, kind: str) -> str:
    return token_of(app, emails(app, session, kind)[-1])


def ask_reset(client: FlaskClient, email: str = EMAIL, **kw: Any) -> Any:
    return client.post("/v1/auth/password-reset", json={"email": email}, **kw)


def confirm(client: FlaskClient, token: str, password: str = NEW_PASSWORD) -> Any:
    return client.post(
        "/v1/auth/password-reset/confirm", json={"token": token, "new_password": password}
    )


def assert_bad_token(answer: Any) -> None:
    assert answer.status_code == 400, answer.json
    assert answer.mimetype == "application/problem+json"
    assert answer.json["type"].endswith("/invalid-token")
    assert list(answer.json["errors"]) == ["token"]


def test_a_reset_request_answers_the_same_for_any_address(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    register(client)
    known = ask_reset(client, "ANA@example.test")
    unknown = ask_reset(client, "nobody@example.test")
    assert (known.status_code, unknown.status_code) == (202, 202)
    assert known.json == unknown.json
    assert {k for k, _ in known.headers} == {k for k, _ in unknown.headers}
    # Only the account's owner gets an email; only its hash is stored.
    [notification] = emails(app, session, "password_reset")
    [row] = session.scalars(select(EmailToken).where(EmailToken.purpose == "password_reset"))
    assert row.user_id == notification.user_id
    token = token_of(app, notification)
    assert token not in row.token_hash and len(row.token_hash) == 64
    [delivery] = session.scalars(
        select(Delivery).where(Delivery.notification_id == notification.id)
    )
    assert (delivery.channel, delivery.status) == ("email", "queued")


@pytest.mark.parametrize("path", ["/v1/auth/password-reset", "/v1/auth/verify-email/resend"])
def test_a_request_by_address_does_the_same_work_for_any_address(
    app: Flask,
    client: FlaskClient,
    session: Session,
    count_queries: Any,
    path: str,
) -> None:
    # "About the same time": the request runs the very same statements whether or not the
    # address has an account; the lookup happens in the sender job, after the answer.
    register(client, email="held@example.test")
    register(client, email="other@example.test")
    run_job(app, session)  # nothing pending from the registrations
    statements = {}
    for email in ("held@example.test", "free@example.test"):
        with count_queries(session, skip=TEST_TRANSACTION) as seen:
            assert client.post(path, json={"email": email}).status_code == 202
        statements[email] = [" ".join(q.split()) for q in seen]
    assert statements["held@example.test"] == statements["free@example.test"]
    assert not any("FROM users" in q for q in statements["held@example.test"])
    # Both were recorded; the job keeps neither, and emails only the account's owner.
    assert session.scalar(select(func.count()).select_from(EmailRequest)) == 2
    assert run_job(app, session) == 1
    assert session.scalar(select(func.count()).select_from(EmailRequest)) == 0


def test_the_job_drops_a_request_its_asker_gave_up_on(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    register(client)
    run_job(app, session)  # the verification link
    ask_reset(client)
    later = datetime.now(UTC) + timedelta(seconds=app.config["PASSWORD_RESET_TTL"] + 1)
    assert run_job(app, session, now=later) == 0
    assert session.scalar(select(func.count()).select_from(EmailRequest)) == 0
    assert emails(app, session, "password_reset") == []


def test_a_reset_sets_the_password_and_ends_every_sign_in(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    register(client)
    pair = login(client).json
    assert ask_reset(client).status_code == 202
    token = last_token(app, session, "password_reset")

    done = confirm(client, token)
    assert done.status_code == 204, done.json
    assert login(client).status_code == 401
    assert login(client, password=NEW_PASSWORD).status_code == 200
    # The earlier login is over: its access token and its refresh token are refused.
    assert client.get("/v1/me", headers=bearer(pair["access_token"])).status_code == 401
    again = client.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert again.status_code == 401
    # Single use.
    assert_bad_token(confirm(client, token, "yet another passphrase"))
    assert login(client, password=NEW_PASSWORD).status_code == 200


def test_a_reset_token_expires(app: Flask, client: FlaskClient, session: Session) -> None:
    register(client)
    start = datetime.now(UTC)
    with time_machine.travel(start, tick=False):
        ask_reset(client)
    run_job(app, session, now=start)
    token = last_token(app, session, "password_reset")
    ttl = app.config["PASSWORD_RESET_TTL"]
    with time_machine.travel(start + timedelta(seconds=ttl + 1), tick=False):
        answer = confirm(client, token)
    assert_bad_token(answer)
    assert "expired" in answer.json["detail"]
    assert login(client).status_code == 200  # unchanged
    with time_machine.travel(start + timedelta(seconds=ttl - 5), tick=False):
        assert confirm(client, token).status_code == 204


@pytest.mark.parametrize(
    "token",
    [
        "not-a-token",
        "x" * 43,
        derive_token(
            b"another key", purpose="password_reset", notification_id=__import__("uuid").uuid4()
        ),
    ],
)
def test_an_unknown_token_is_a_problem_naming_the_field(client: FlaskClient, token: str) -> None:
    register(client)
    assert_bad_token(confirm(client, token))


def test_only_the_newest_reset_link_works(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    register(client)
    ask_reset(client)
    ask_reset(client)
    older, newer = (token_of(app, n) for n in emails(app, session, "password_reset"))
    assert_bad_token(confirm(client, older))
    assert confirm(client, newer).status_code == 204


def test_a_verification_token_does_not_reset_a_password(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    register(client)
    assert_bad_token(confirm(client, last_token(app, session, "verify_email")))


def test_the_new_password_follows_the_registration_rules(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    register(client)
    ask_reset(client)
    token = last_token(app, session, "password_reset")
    short = confirm(client, token, "too short")
    assert short.status_code == 422 and list(short.json["errors"]) == ["new_password"]
    assert confirm(client, token).status_code == 204  # the refused attempt did not use it


def test_reset_requests_are_throttled_per_address_and_emails_per_account(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    register(client)
    cap = app.config["EMAIL_TOKEN_MAX_PER_ACCOUNT"]
    limit = app.config["EMAIL_TOKEN_MAX_PER_ADDRESS"]
    assert cap < limit
    answers = [ask_reset(client) for _ in range(limit)]
    assert {a.status_code for a in answers} == {202}
    assert len({a.get_data() for a in answers}) == 1  # capped or not, the same answer
    assert len(emails(app, session, "password_reset")) == cap  # no mail bombing
    refused = ask_reset(client)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    # Another client address is not held up, but the account's cap still holds.
    other = ask_reset(client, environ_base={"REMOTE_ADDR": "198.51.100.7"})
    assert other.status_code == 202
    assert len(emails(app, session, "password_reset")) == cap


def test_wrong_tokens_are_throttled(app: Flask, client: FlaskClient, session: Session) -> None:
    register(client)
    ask_reset(client)
    token = last_token(app, session, "password_reset")
    for n in range(app.config["EMAIL_TOKEN_MAX_PER_ADDRESS"]):
        assert_bad_token(confirm(client, f"guess-{n}"))
    assert confirm(client, token).status_code == 429  # the counted guesses were kept


def test_a_deactivated_account_gets_no_reset_email(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    register(client)
    user = session.scalars(select(User)).one()
    user.deactivated_at = datetime.now(UTC)
    session.commit()
    assert ask_reset(client).status_code == 202
    assert emails(app, session, "password_reset") == []


def test_registration_sends_a_verification_link(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    register(client)
    headers = bearer(login(client).json["access_token"])  # by default unverified may sign in
    assert client.get("/v1/me", headers=headers).json["email_verified"] is False
    token = last_token(app, session, "verify_email")
    assert client.post("/v1/auth/verify-email", json={"token": token}).status_code == 204
    assert client.get("/v1/me", headers=headers).json["email_verified"] is True
    assert_bad_token(client.post("/v1/auth/verify-email", json={"token": token}))
    assert_bad_token(client.post("/v1/auth/verify-email", json={"token": "nonsense"}))


def test_a_password_reset_proves_the_address(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    register(client)
    ask_reset(client)
    assert confirm(client, last_token(app, session, "password_reset")).status_code == 204
    headers = bearer(login(client, password=NEW_PASSWORD).json["access_token"])
    assert client.get("/v1/me", headers=headers).json["email_verified"] is True


def test_sign_in_can_require_a_verified_address(
    app: Flask, client: FlaskClient, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "REQUIRE_EMAIL_VERIFICATION", True)
    register(client)
    refused = login(client)
    assert refused.status_code == 403
    assert refused.json["type"].endswith("/email-not-verified")
    assert login(client, password="wrong password!").status_code == 401  # tells nothing more
    for _ in range(app.config["LOGIN_MAX_FAILURES_PER_ACCOUNT"]):
        login(client)  # a right password never counts towards the lockout
    token = last_token(app, session, "verify_email")
    assert client.post("/v1/auth/verify-email", json={"token": token}).status_code == 204
    assert login(client).status_code == 200


def test_resend_by_email_answers_the_same_for_any_address(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    register(client)
    first = last_token(app, session, "verify_email")
    known = client.post("/v1/auth/verify-email/resend", json={"email": EMAIL})
    unknown = client.post("/v1/auth/verify-email/resend", json={"email": "nobody@example.test"})
    assert (known.status_code, unknown.status_code) == (202, 202)
    assert known.json == unknown.json
    assert len(emails(app, session, "verify_email")) == 2
    # Only the newest link works.
    assert_bad_token(client.post("/v1/auth/verify-email", json={"token": first}))
    newest = last_token(app, session, "verify_email")
    assert client.post("/v1/auth/verify-email", json={"token": newest}).status_code == 204
    # A verified address gets nothing more, and the answer is the same.
    again = client.post("/v1/auth/verify-email/resend", json={"email": EMAIL})
    assert again.status_code == 202 and again.json == known.json
    assert len(emails(app, session, "verify_email")) == 2


def test_resend_when_signed_in_goes_to_the_account(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    register(client)
    headers = bearer(login(client).json["access_token"])
    answer = client.post("/v1/auth/verify-email/resend", json={}, headers=headers)
    assert answer.status_code == 202
    [_, newest] = emails(app, session, "verify_email")
    assert newest.user_id == session.scalars(select(User.id)).one()
    # Without a sign-in the address is required; with a bad token the answer is 401.
    missing = client.post("/v1/auth/verify-email/resend", json={})
    assert missing.status_code == 422 and list(missing.json["errors"]) == ["email"]
    bad = client.post("/v1/auth/verify-email/resend", json={}, headers=bearer("nonsense"))
    assert bad.status_code == 401


def test_tokens_stay_out_of_the_logs(
    app: Flask, client: FlaskClient, session: Session, capsys: pytest.CaptureFixture[str]
) -> None:
    register(client)
    ask_reset(client)
    tokens = [last_token(app, session, "verify_email"), last_token(app, session, "password_reset")]
    client.post("/v1/auth/verify-email", json={"token": tokens[0]})
    confirm(client, tokens[1])
    out = capsys.readouterr()
    for secret in (*tokens, EMAIL, NEW_PASSWORD):
        assert secret not in out.out + out.err
    assert session.scalar(select(func.count()).select_from(EmailToken)) == 2


def test_an_account_an_admin_made_counts_as_verified(
    app: Flask,
    client: FlaskClient,
    make_user: Any,
    auth_headers: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The admin vouched for the address: REQUIRE_EMAIL_VERIFICATION never locks a clinician out.
    monkeypatch.setitem(app.config, "REQUIRE_EMAIL_VERIFICATION", True)
    admin = make_user(role="admin")
    made = client.post(
        "/v1/admin/clinicians",
        json={
            "email": "dr@example.test",
            "password": "clinician password 1",
            "display_name": "Dr. Rivera",
            "organization": "Eastside Clinic",
        },
        headers=auth_headers(admin),
    )
    assert made.status_code == 201 and made.json["email_verified"] is True
    assert (
        login(client, email="dr@example.test", password="clinician password 1").status_code == 200
    )


def test_a_reset_ends_the_dashboard_sign_ins_too(
    app: Flask, client: FlaskClient, session: Session, make_clinician: Any
) -> None:
    from api.clinic import sessions as clinic_sessions
    from api.clinic.models import ClinicSession

    clinician = make_clinician(email="dr@example.test")
    _, dashboard = clinic_sessions.start(session, user=clinician, now=datetime.now(UTC))
    session.commit()
    ask_reset(client, "dr@example.test")
    assert confirm(client, last_token(app, session, "password_reset")).status_code == 204
    row = session.get(ClinicSession, dashboard.id, populate_existing=True)
    assert row is not None and row.ended_at is not None
    assert row.ended_reason == "password_reset"


def test_a_password_change_ends_the_dashboard_sign_ins_too(
    client: FlaskClient, session: Session, make_clinician: Any, auth_headers: Any
) -> None:
    from api.clinic import sessions as clinic_sessions
    from api.clinic.models import ClinicSession

    clinician = make_clinician(email="dr@example.test", password="clinician password 1")
    _, dashboard = clinic_sessions.start(session, user=clinician, now=datetime.now(UTC))
    session.commit()
    changed = client.post(
        "/v1/me/password",
        json={"current_password": "clinician password 1", "new_password": "a brand new phrase"},
        headers=auth_headers(clinician),
    )
    assert changed.status_code == 204, changed.json
    row = session.get(ClinicSession, dashboard.id, populate_existing=True)
    assert row is not None and row.ended_at is not None
    assert row.ended_reason == "password_change"
