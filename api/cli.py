"""Command-line tasks: `flask --app wsgi create-admin` and `create-clinician`."""

from __future__ import annotations

from typing import Any

import click
from flask import Flask
from marshmallow import Schema
from marshmallow import ValidationError as SchemaError

from api.auth import services as auth_services
from api.auth.schemas import ClinicianCreateSchema, RegisterSchema
from api.db import get_session, utcnow
from api.errors import AppError
from api.security import password_hasher


def register_cli(app: Flask) -> None:
    from api.export.cli import register_export_cli

    register_export_cli(app)

    @app.cli.command("create-admin")
    @click.option("--email", required=True)
    @click.option("--display-name", default="Administrator", show_default=True)
    @click.password_option(help="Prompted for (twice) when not given.")
    def create_admin(email: str, display_name: str, password: str) -> None:
        """Create an admin account (the first one is made this way)."""
        body = {"email": email, "display_name": display_name, "password": password}
        _create(RegisterSchema(), {**body, "timezone": "UTC"}, role="admin")

    @app.cli.command("create-clinician")
    @click.option("--email", required=True)
    @click.option("--display-name", required=True)
    @click.option("--organization", required=True)
    @click.password_option(help="Prompted for (twice) when not given.")
    def create_clinician(email: str, display_name: str, organization: str, password: str) -> None:
        """Create a clinician account; prints its id and invite code."""
        body = {
            "email": email,
            "display_name": display_name,
            "organization": organization,
            "password": password,
        }
        _create(ClinicianCreateSchema(), body, role="clinician")

    @app.cli.command("reset-second-factor")
    @click.option("--email", required=True)
    def reset_second_factor(email: str) -> None:
        """Forget a clinician's or admin's second factor (a lost phone) and end their sign-ins;
        the next sign-in enrols a new one. For the admin who cannot reach the dashboard's own
        reset; check who is asking first."""
        from api.auth import mfa
        from api.clinic import sessions

        session = get_session()
        user = auth_services.find_user_by_email(session, email)
        if user is None or user.role == "patient":
            raise click.ClickException("No clinician or admin account has that email.")
        now = utcnow()
        mfa.reset(session, user=user)
        ended = auth_services.end_all_sessions(
            session, user_id=user.id, now=now, reason="second_factor_reset"
        )
        ended += sessions.end_all(session, user_id=user.id, now=now, reason="second_factor_reset")
        session.commit()
        click.echo(f"second factor reset for {user.role} {user.id}; {ended} sign-in(s) ended")


def _create(schema: Schema, raw: dict[str, Any], *, role: str) -> None:
    """The same rules as the API (email, lengths, password >= 10); errors as one clean line."""
    try:
        body = schema.load(raw)
    except SchemaError as exc:
        # Field names and rule messages only: the values (a password) are never echoed.
        fields = sorted(exc.messages) if isinstance(exc.messages, dict) else []
        details = "; ".join(
            f"{name.replace('_', '-')}: {' '.join(map(str, exc.messages[name]))}"  # type: ignore[index]
            for name in fields
        )
        raise click.UsageError(details or "invalid input") from None
    session = get_session()
    try:
        user = auth_services.create_user(session, hasher=password_hasher(), role=role, **body)
        session.commit()
    except AppError as exc:  # an email already taken
        session.rollback()
        raise click.ClickException(exc.detail) from None
    click.echo(
        f"created {role} {user.id}"
        + (f" invite_code={user.invite_code}" if user.invite_code else "")
    )
