"""Dialect-specific INSERT ... ON CONFLICT DO NOTHING behind one typed function."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_ignoring_conflicts(
    session: Session, entity: Any, *, index_elements: Sequence[str]
) -> Insert:
    """`INSERT INTO entity ... ON CONFLICT (index_elements) DO NOTHING` for the session's database
    (PostgreSQL or SQLite: each has its own Insert construct, with the same method)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(entity).on_conflict_do_nothing(index_elements=index_elements)
    return sqlite.insert(entity).on_conflict_do_nothing(index_elements=index_elements)
