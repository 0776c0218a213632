"""Backups (issue 15 item 6): scripts/backup_drill.py backs up a database of its own, restores it
into a fresh one and checks the app serves the restored data (docs/operations.md, "Backups")."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import PG_URL, ROOT


@pytest.mark.slow
@pytest.mark.postgres_only
def test_backup_restore_and_serve(backend: str) -> None:
    if backend != "postgresql" or not PG_URL:
        pytest.skip("pg_dump and pg_restore are PostgreSQL's")
    drill = subprocess.run(  # noqa: S603 - our own script
        [sys.executable, str(ROOT / "scripts" / "backup_drill.py"), PG_URL],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert drill.returncode == 0, drill.stdout[-3000:] + drill.stderr[-3000:]
    figures = json.loads(drill.stdout.strip().splitlines()[-1])
    assert figures["served"] is True
    assert figures["backup_mode"] == "0o600"  # the archive holds health data
    assert figures["backup_bytes"] > 0
