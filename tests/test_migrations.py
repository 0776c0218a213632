"""Alembic is the only source of schema: models and migrations agree, and the chain round-trips."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

import api.all_models  # noqa: F401
from api.db import Base, make_engine
from tests.conftest import _ran_on, alembic_config


def _fresh_url(database_url: str, tmp_path) -> tuple[str, object]:
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'migrate.sqlite3'}", lambda: None
    from tests.conftest import _create_pg_database

    return _create_pg_database()


def test_models_and_migrations_agree(engine: Engine, backend: str) -> None:
    _ran_on.add(backend)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], f"models differ from migrations: {diff}"


def test_single_head() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1


def test_file_names_follow_the_chain() -> None:
    """Reading the folder in name order is reading the chain from base to head (revision ids
    stay as they were; a new migration takes a number above the head's file)."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    chain = [rev.path for rev in reversed(list(script.walk_revisions()))]
    names = [path.rsplit("/", 1)[-1] for path in chain]
    numbers = [int(name.split("_", 1)[0]) for name in names]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers), names


@pytest.mark.slow
def test_upgrade_downgrade_upgrade(database_url: str, backend: str, tmp_path) -> None:
    _ran_on.add(backend)
    url, drop = _fresh_url(database_url, tmp_path)
    try:
        cfg = alembic_config(url)
        command.upgrade(cfg, "head")
        command.downgrade(cfg, "base")
        eng = make_engine(url)
        with eng.connect() as conn:
            tables = set(conn.dialect.get_table_names(conn)) - {"alembic_version"}
        eng.dispose()
        assert tables == set()
        command.upgrade(cfg, "head")
    finally:
        drop()
