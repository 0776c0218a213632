"""Alembic environment: the only way the schema changes. The URL comes from DATABASE_URL."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection

import api.all_models  # noqa: F401 - registers every table on Base.metadata
from api.config import Config
from api.db import Base, make_engine
from api.observability import configure_logging

config = context.config
if config.attributes.get("configure_logger", True):
    # The same JSON lines on stdout as the API and the scheduler (api.observability), at
    # LOG_LEVEL: "Running upgrade 0011 -> 0012, ..." is INFO.
    configure_logging(os.environ.get("LOG_LEVEL", "INFO"))

target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode rebuilds tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        compare_server_default=True,
    )


def run_migrations_online() -> None:
    # Tests hand in their own connection; the CLI and the app's start-up use DATABASE_URL.
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.get_main_option("sqlalchemy.url") or Config().DATABASE_URL
    engine = make_engine(url)
    with engine.connect() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url") or Config().DATABASE_URL,
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
