"""Command-line tasks: `flask --app wsgi create-admin` and `create-clinician`."""

from __future__ import annotations

import click
from flask import Flask

from api.auth import services as auth_services
from api.db import get_session
from api.security import password_hasher


def register_cli(app: Flask) -> None:
    from api.export.cli import register_export_cli

    register_export_cli(app)

    @app.cli.command("create-admin")
    @click.option("--email", required=True)
    @click.option("--display-name", default="Administrator", show_default=True)
    @click.password_option()
    def create_admin(email: str, display_name: str, password: str) -> None:
        """Create an admin account (the first one is made this way)."""
        _create(email=email, display_name=display_name, password=password, role="admin")

    @app.cli.command("create-clinician")
    @click.option("--email", required=True)
    @click.option("--display-name", required=True)
    @click.option("--organization", required=True)
    @click.password_option()
    def create_clinician(email: str, display_name: str, organization: str, password: str) -> None:
        """Create a clinician account; prints its id and invite code."""
        _create(
            email=email,
            display_name=display_name,
            password=password,
            role="clinician",
            organization=organization,
        )


def _create(*, email: str, display_name: str, password: str, role: str, **extra: str) -> None:
    if len(password) < 10:
        raise click.BadParameter("at least 10 characters", param_hint="password")
    session = get_session()
    user = auth_services.create_user(
        session,
        email=email,
        password=password,
        display_name=display_name,
        timezone="UTC",
        hasher=password_hasher(),
        role=role,
        **extra,
    )
    session.commit()
    click.echo(
        f"created {role} {user.id}"
        + (f" invite_code={user.invite_code}" if user.invite_code else "")
    )
