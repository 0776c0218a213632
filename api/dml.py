"""Dialect-specific INSERT ... ON CONFLICT DO NOTHING behind one typed function."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Insert
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
