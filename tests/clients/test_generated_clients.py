"""Issue 13's "done when": a Python client generated from the served document with
openapi-python-client, a scripted flow type-checked with mypy --strict against it, and run
against a live server. The document is used as served: no patching, no casts in the flow."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command

from api import create_app
from tests.conftest import TestConfig, alembic_config
from tests.livesite import serve

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
GENERATOR = BIN / "openapi-python-client"
ADMIN = ("admin@example.test", "admin password 12")


@pytest.mark.skipif(not GENERATOR.exists(), reason="openapi-python-client is a dev dependency")
def test_generated_python_client_runs_the_phone_flow(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'live.sqlite3'}"
    command.upgrade(alembic_config(url), "head")
    app = create_app(TestConfig(url))
    cli = app.test_cli_runner().invoke(
        args=["create-admin", "--email", ADMIN[0], "--password", ADMIN[1]]
    )
    assert cli.exit_code == 0, cli.output

    with serve(app) as base:
        document = tmp_path / "openapi.json"
        with app.test_client() as client:
            document.write_text(json.dumps(client.get("/openapi.json").get_json()))
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        generated = subprocess.run(  # noqa: S603 - our own tools, fixed arguments
            [
                str(GENERATOR),
                "generate",
                "--path",
                str(document),
                "--meta",
                "none",
                "--output-path",
                str(tmp_path / "waymark_client"),
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert generated.returncode == 0, generated.stdout + generated.stderr

        flow = tmp_path / "flow.py"
        shutil.copy(HERE / "flow.py", flow)
        typed = subprocess.run(  # noqa: S603
            [
                sys.executable,
                "-m",
                "mypy",
                "--strict",
                "--follow-imports=silent",
                "--no-incremental",
                "--cache-dir",
                os.devnull,
                str(flow),
            ],
            cwd=tmp_path,
            env={**env, "MYPYPATH": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert typed.returncode == 0, typed.stdout + typed.stderr

        ran = subprocess.run(  # noqa: S603
            [sys.executable, str(flow), base, *ADMIN],
            cwd=tmp_path,
            env={**env, "PYTHONPATH": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "flow ok" in ran.stdout
