"""`flask create-admin` and `flask create-clinician`: they work, and refuse bad input cleanly."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth.models import User

PASSWORD = "correct horse battery"


@pytest.fixture
def cli(app: Flask, connection: Any) -> Any:
    runner = app.test_cli_runner()

    def invoke(*args: str, **kwargs: Any) -> Any:
        return runner.invoke(args=list(args), **kwargs)

    return invoke


def _user(session: Session, email: str) -> User | None:
    session.expire_all()
    return session.scalar(select(User).where(User.email == email))


def test_create_admin(cli: Any, session: Session, client: Any) -> None:
    result = cli("create-admin", "--email", "Root@Example.test", "--password", PASSWORD)
    assert result.exit_code == 0, result.output
    admin = _user(session, "root@example.test")
    assert admin is not None and admin.role == "admin"
    # stdout also carries the JSON log line of the event; the answer is the last line.
    assert result.output.splitlines()[-1] == f"created admin {admin.id}"
    assert PASSWORD not in result.output
    signed_in = client.post(
        "/v1/auth/token", json={"email": "root@example.test", "password": PASSWORD}
    )
    assert signed_in.status_code == 200


def test_create_admin_prompts_for_the_password(cli: Any, session: Session) -> None:
    result = cli("create-admin", "--email", "root@example.test", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert _user(session, "root@example.test") is not None


def test_create_clinician(cli: Any, session: Session) -> None:
    result = cli(
        "create-clinician",
        "--email",
        "dr@example.test",
        "--display-name",
        "Dr Lee",
        "--organization",
        "Clinic",
        "--password",
        PASSWORD,
    )
    assert result.exit_code == 0, result.output
    clinician = _user(session, "dr@example.test")
    assert clinician is not None and clinician.role == "clinician"
    assert clinician.organization == "Clinic"
    assert clinician.invite_code and f"invite_code={clinician.invite_code}" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--password", "short"], "password: Length must be between 10 and 1024."),
        (["--email", "not-an-email"], "email: Not a valid email address."),
        (["--display-name", ""], "display-name: Length must be between 1 and 100."),
    ],
)
def test_bad_input_is_one_clean_line(
    cli: Any, session: Session, args: list[str], message: str
) -> None:
    base = {"--email": "root@example.test", "--password": PASSWORD}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    result = cli("create-admin", *[x for pair in base.items() for x in pair])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output and result.exception.__class__ is SystemExit
    assert "short" not in result.output.replace("Shorter", "")  # the value is not echoed
    assert _user(session, "root@example.test") is None


def test_duplicates_are_refused_cleanly(cli: Any, session: Session, make_patient: Any) -> None:
    make_patient(email="taken@example.test")
    for command, extra in (
        ("create-admin", []),
        ("create-clinician", ["--display-name", "Dr", "--organization", "Clinic"]),
    ):
        result = cli(command, "--email", "TAKEN@example.test", "--password", PASSWORD, *extra)
        assert result.exit_code == 1, result.output
        assert result.output.strip() == "Error: An account with this email already exists."
        assert result.exception.__class__ is SystemExit  # no traceback
    user = _user(session, "taken@example.test")
    assert user is not None and user.role == "patient"


def test_reset_second_factor(
    cli: Any, session: Session, make_admin: Any, make_patient: Any, auth_headers: Any, client: Any
) -> None:
    # The admin locked out of the dashboard (lost phone) is reset from the host.
    from api.auth.models import RecoveryCode

    admin = make_admin()
    admin.totp_secret, admin.totp_enrolled_at = "sealed", admin.created_at
    session.add(RecoveryCode(user_id=admin.id, code_hash="x" * 64, created_at=admin.created_at))
    session.commit()
    headers = auth_headers(admin)
    result = cli("reset-second-factor", "--email", f"  {admin.email.upper()} ")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == (
        f"second factor reset for admin {admin.id}; 1 sign-in(s) ended"
    )
    session.expire_all()
    assert admin.totp_secret is None and admin.totp_enrolled_at is None
    assert session.scalars(select(RecoveryCode).where(RecoveryCode.user_id == admin.id)).all() == []
    assert client.get("/v1/me", headers=headers).status_code == 401
    assert admin.email not in result.output  # the address is not echoed (logs or answer)

    for email in (make_patient().email, "nobody@example.test"):
        refused = cli("reset-second-factor", "--email", email)
        assert refused.exit_code == 1
        assert "No clinician or admin account has that email." in refused.output
