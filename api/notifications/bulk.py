"""Set-based writes for the dispatcher's hot path.

PostgreSQL: one statement per batch, the rows passed as one array per column and unpacked with
unnest() (`INSERT ... SELECT FROM unnest(...)`, `UPDATE ... FROM unnest(...)`): one parse, one
round trip, whatever the batch size. Elsewhere (SQLite): executemany of one compiled statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Table, bindparam, insert, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

_PG = postgresql.dialect()


def _is_pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


@lru_cache(maxsize=256)
def _arrays(table: Table, columns: tuple[str, ...]) -> str:
    return ", ".join(
        f"CAST(:{name} AS {table.c[name].type.compile(dialect=_PG)}[])" for name in columns
    )


def insert_rows(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    on_conflict_do_nothing: Sequence[str] | None = None,
    returning: str | None = None,
) -> list[Any]:
    """Insert rows (every row with the same keys); skip conflicts on the given unique columns.
    Returns the `returning` column of the rows inserted (not of those skipped)."""
    if not rows:
        return []
    columns = tuple(rows[0])
    if _is_pg(session):
        sql = (
            f"INSERT INTO {table.name} ({', '.join(columns)}) "  # noqa: S608 - names are ours
            f"SELECT * FROM unnest({_arrays(table, columns)})"
        )
        if on_conflict_do_nothing:
            sql += f" ON CONFLICT ({', '.join(on_conflict_do_nothing)}) DO NOTHING"
        if returning:
            sql += f" RETURNING {returning}"
        params = {name: [row[name] for row in rows] for name in columns}
        result = session.execute(text(sql), params)
        return list(result.scalars()) if returning else []
    stmt: Any = sqlite_insert(table) if on_conflict_do_nothing else insert(table)
    if on_conflict_do_nothing:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(on_conflict_do_nothing))
    if returning:
        return list(session.execute(stmt.returning(table.c[returning]), list(rows)).scalars())
    session.execute(stmt, list(rows))
    return []


def update_by_id(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Set each row's columns where id = row["id"] (every row with the same keys)."""
    if not rows:
        return
    columns = tuple(name for name in rows[0] if name != "id")
    if _is_pg(session):
        names = ("id", *columns)
        sql = (
            f"UPDATE {table.name} AS t SET "  # noqa: S608 - names are ours
            + ", ".join(f"{name} = v.{name}" for name in columns)
            + f" FROM unnest({_arrays(table, names)}) AS v({', '.join(names)}) WHERE t.id = v.id"
        )
        session.execute(text(sql), {name: [row[name] for row in rows] for name in names})
        return
    stmt = (
        update(table)
        .where(table.c.id == bindparam("_id"))
        .values({name: bindparam(f"_{name}") for name in columns})
    )
    session.execute(stmt, [{f"_{k}": v for k, v in row.items()} for row in rows])
