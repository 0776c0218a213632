"""The one query counter of the test suite (also the `count_queries` fixture in conftest)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

# The statements of the test's own outer transaction (conftest's "join an external transaction").
TEST_TRANSACTION = ("SAVEPOINT", "RELEASE", "ROLLBACK")


@contextmanager
def count_queries(
    target: Any, *, only: str | None = None, skip: tuple[str, ...] = ()
) -> Iterator[list[str]]:
    """The SQL statements run on `target` (an Engine, a Connection, or a Session: its bind) while
    the block runs, in order; `only` keeps those that start with it (e.g. "SELECT"), `skip`
    leaves out those that start with any of these (e.g. TEST_TRANSACTION)."""
    bind = target.get_bind() if isinstance(target, Session) else target
    statements: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        head = statement.lstrip().upper()
        if (only is None or head.startswith(only)) and not (skip and head.startswith(skip)):
            statements.append(statement)

    event.listen(bind, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(bind, "before_cursor_execute", before)
