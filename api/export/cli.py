"""`flask --app wsgi export-user` and `export-all`: own-export files written to a folder (admin)."""

from __future__ import annotations

import uuid
from pathlib import Path

import click
from flask import Flask, current_app
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.auth.models import User
from api.db import get_session, utcnow
from api.export import writers
from api.export.services import FORMATS, fhir_context, own_sections

FORMAT_CHOICES = [*FORMATS, "all"]


def write_user_export(
    session: Session, *, user_id: uuid.UUID, out: Path, formats: list[str], base_url: str
) -> list[Path]:
    """Write the user's export in each format under out/<user_id>/; returns the files."""
    now = utcnow()
    folder = out / str(user_id)
    folder.mkdir(parents=True, exist_ok=True)
    sections = own_sections()
    written = []
    for fmt in formats:
        if fmt == "json":
            chunks = writers.json_document(session, user_id=user_id, sections=sections, now=now)
        elif fmt == "csv":
            chunks = writers.csv_zip(session, user_id=user_id, sections=sections, now=now)
        else:
            ctx = fhir_context(base_url=base_url, now=now, disclosed=False)
            chunks = writers.fhir_bundle(
                session, user_id=user_id, sections=sections, ctx=ctx, bundle_id=str(uuid.uuid4())
            )
        path = folder / f"export.{FORMATS[fmt][1]}"
        with path.open("wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
        path.chmod(0o600)
        written.append(path)
    return written


def _formats(choice: str) -> list[str]:
    return list(FORMATS) if choice == "all" else [choice]


def register_export_cli(app: Flask) -> None:
    @app.cli.command("export-user")
    @click.option("--user-id", required=True, type=click.UUID)
    @click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
    @click.option("--format", "fmt", type=click.Choice(FORMAT_CHOICES), default="all")
    def export_user(user_id: uuid.UUID, out: Path, fmt: str) -> None:
        """Export one user's data (JSON, CSV zip, FHIR Bundle) into OUT/<user id>/."""
        session = get_session()
        if session.get(User, user_id) is None:
            raise click.BadParameter("no such user", param_hint="--user-id")
        formats = _formats(fmt)
        with click.progressbar(formats, label="Exporting") as bar:
            for one in bar:
                write_user_export(
                    session,
                    user_id=user_id,
                    out=out,
                    formats=[one],
                    base_url=current_app.config["FHIR_BASE_URL"],
                )
        click.echo(f"wrote {out / str(user_id)}")

    @app.cli.command("export-all")
    @click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
    @click.option("--format", "fmt", type=click.Choice(FORMAT_CHOICES), default="all")
    def export_all(out: Path, fmt: str) -> None:
        """Export every patient's data into OUT/<user id>/ (admin use), with a progress bar."""
        session = get_session()
        total = session.scalar(select(func.count()).where(User.role == "patient")) or 0
        ids = session.scalars(select(User.id).where(User.role == "patient").order_by(User.id)).all()
        with click.progressbar(ids, length=total, label="Exporting patients") as bar:
            for user_id in bar:
                write_user_export(
                    session,
                    user_id=user_id,
                    out=out,
                    formats=_formats(fmt),
                    base_url=current_app.config["FHIR_BASE_URL"],
                )
                # Each user in its own short read transaction, so a long run holds no snapshot.
                session.rollback()
        click.echo(f"exported {total} patient(s) to {out}")
