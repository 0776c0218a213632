"""`flask export-user` and `export-all`: the own export written to a folder, with progress."""

from __future__ import annotations

import json
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path

from flask import Flask
from sqlalchemy import Connection

from api.auth.models import User
from tests.export.fhir_check import bundle_errors


def test_export_user_writes_every_format(app: Flask, patient: User, tmp_path: Path) -> None:
    result = app.test_cli_runner().invoke(
        args=["export-user", "--user-id", str(patient.id), "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    folder = tmp_path / str(patient.id)
    assert json.loads((folder / "export.json").read_text())["profile"]["id"] == str(patient.id)
    assert zipfile.ZipFile(folder / "export.zip").testzip() is None
    assert bundle_errors(json.loads((folder / "export.fhir.json").read_text())) == []
    assert (folder / "export.json").stat().st_mode & 0o077 == 0  # not readable by others


def test_export_user_refuses_an_unknown_id(
    app: Flask, connection: Connection, tmp_path: Path
) -> None:
    result = app.test_cli_runner().invoke(
        args=["export-user", "--user-id", str(uuid.uuid4()), "--out", str(tmp_path)]
    )
    assert result.exit_code != 0
    assert "no such user" in result.output


def test_export_all_writes_one_folder_per_patient(
    app: Flask,
    make_patient: Callable[..., User],
    make_clinician: Callable[..., User],
    tmp_path: Path,
) -> None:
    patients = [make_patient() for _ in range(3)]
    clinician = make_clinician()
    result = app.test_cli_runner().invoke(
        args=["export-all", "--out", str(tmp_path), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    assert "Exporting patients" in result.output
    folders = {p.name for p in tmp_path.iterdir()}
    assert {str(p.id) for p in patients} <= folders
    assert str(clinician.id) not in folders
    assert not (tmp_path / str(patients[0].id) / "export.zip").exists()
