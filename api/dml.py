"""SQL whose best form differs between PostgreSQL and SQLite, behind typed functions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Insert, any_, literal
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def dialect_of(session: Session) -> str:
    return session.get_bind().dialect.name


def insert_ignoring_conflicts(
    dialect: str, entity: Any, *, index_elements: Sequence[Any] | None = None
) -> Insert:
    """`INSERT INTO entity ... ON CONFLICT (index_elements) DO NOTHING` for `dialect`
    ("postgresql" or "sqlite": each has its own Insert construct, with the same method). Without
    index_elements, a conflict on any unique constraint is skipped."""
    target = list(index_elements) if index_elements is not None else None
    if dialect == "postgresql":
        return postgresql.insert(entity).on_conflict_do_nothing(index_elements=target)
    return sqlite.insert(entity).on_conflict_do_nothing(index_elements=target)


def one_of(session: Session, column: Any, values: Iterable[Any]) -> ColumnElement[bool]:
    """`column IN (values)`; on PostgreSQL `column = ANY(:array)`: one short statement however
    many ids a batch has, which the driver parses once (an IN list of 500 placeholders is a new
    statement to parse for every batch size)."""
    items = list(values)
    if dialect_of(session) == "postgresql":
        return column == any_(literal(items, type_=postgresql.ARRAY(column.type)))
    return column.in_(items)
