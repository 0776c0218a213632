"""Tooling: `make run` skips Alembic only when the dev database is at head; CI fails when any
test ran on SQLite but not on PostgreSQL."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from alembic import command
from alembic.script import ScriptDirectory

from tests import conftest
from tests.conftest import ROOT, alembic_config


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "migrations_current", ROOT / "scripts" / "migrations_current.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_heads_agree_with_alembic() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert _load().heads() == set(script.get_heads())


def test_current_only_for_an_up_to_date_default_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checker = _load()
    monkeypatch.setenv("WAYMARK_INSTANCE_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert checker.current() is False  # no database yet
    url = f"sqlite:///{tmp_path / 'waymark.sqlite3'}"
    command.upgrade(alembic_config(url), "head")
    assert checker.current() is True
    command.downgrade(alembic_config(url), "base")
    assert checker.current() is False  # behind: Alembic must run
    command.upgrade(alembic_config(url), "head")
    monkeypatch.setenv("DATABASE_URL", url)
    assert checker.current() is False  # a configured database is always left to Alembic


def test_ci_finds_tests_that_passed_on_sqlite_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "_passed", {})
    for nodeid, params in [
        ("t.py::test_a[sqlite]", {"database_url": "sqlite"}),
        ("t.py::test_a[postgresql]", {"database_url": "postgresql"}),
        ("t.py::test_b[sqlite-args0]", {"database_url": "sqlite", "args": 0}),
        ("t.py::test_b[postgresql-args1]", {"database_url": "postgresql", "args": 1}),
        # "sqlite" in another parameter's id does not make a backend twin
        ("t.py::test_c[sqlite:///x-sqlite]", {"database_url": "sqlite", "url": "sqlite:///x"}),
        (
            "t.py::test_c[sqlite:///x-postgresql]",
            {"database_url": "postgresql", "url": "sqlite:///x"},
        ),
        ("t.py::test_pg_only[postgresql]", {"database_url": "postgresql"}),
        ("t.py::test_no_backend[sqlite-file]", {"name": "sqlite-file"}),
    ]:
        conftest._record_pass(nodeid, params, {})
    assert conftest._missing_on_postgresql() == ["t.py::test_b [('args', '0')]"]


def test_sqlite_only_tests_are_not_expected_on_postgresql(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "_passed", {})
    conftest._record_pass(
        "t.py::test_pragmas[sqlite]", {"database_url": "sqlite"}, {"sqlite_only": 1}
    )
    assert conftest._missing_on_postgresql() == []
    conftest._record_pass("t.py::test_pragmas[sqlite]", {"database_url": "sqlite"}, {})
    assert conftest._missing_on_postgresql() == ["t.py::test_pragmas []"]


def test_make_run_installs_no_dev_tools() -> None:
    """`make run` (and migrate, jobs) set up the venv as the image does: without the dev group."""
    import subprocess

    for target in ("run", "migrate", "jobs"):
        planned = subprocess.run(  # noqa: S603 - fixed arguments
            ["make", "-n", "-B", target],  # noqa: S607 - make from PATH, as a developer runs it
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        syncs = [line for line in planned.splitlines() if " sync " in line]
        assert syncs, planned
        assert all("--no-dev" in line for line in syncs), syncs
        assert "uv run" not in planned  # uv run would sync the default (dev) group back in
