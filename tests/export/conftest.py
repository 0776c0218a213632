"""Export fixtures: a private EXPORT_DIR per test and a helper to run the scheduler's job."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from jobs import bulk_export


@pytest.fixture
def export_dir(app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "exports"
    monkeypatch.setitem(app.config, "EXPORT_DIR", str(folder))
    return folder


@pytest.fixture
def run_export_job(app: Flask, session: Session, export_dir: Path) -> Callable[..., Any]:
    """What the scheduler does on its tick: claim the next queued job and run it."""

    def run(now: datetime | None = None) -> Any:
        with app.app_context():
            job = bulk_export.run_next_export(
                session,
                now=now or datetime.now(UTC),
                export_dir=str(export_dir),
                base_url=app.config["FHIR_BASE_URL"],
                ttl=app.config["BULK_EXPORT_TTL"],
            )
            session.commit()  # as jobs.__main__.run_in_transaction does
            return job

    return run
