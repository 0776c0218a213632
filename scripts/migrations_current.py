"""Exit 0 when the default development database (SQLite under instance/) is already at the
migrations' head, so `make run` can skip starting Alembic on a restart (its imports take seconds).

Standard library only, read-only. Anything else (DATABASE_URL set, no database yet, an unreadable
revision file) exits 1, and the caller runs `alembic upgrade head` as usual.
"""

from __future__ import annotations

import ast
import os
import sqlite3
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _assignments(path: Path) -> dict[str, object]:
    values: dict[str, object] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
            values[node.target.id] = ast.literal_eval(node.value)
        elif (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return values


def heads() -> set[str]:
    """The revisions no other revision builds on."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (ROOT / "migrations" / "versions").glob("*.py"):
        values = _assignments(path)
        revisions.add(str(values["revision"]))
        down = values.get("down_revision")
        if isinstance(down, str):
            parents.add(down)
        elif isinstance(down, list | tuple):
            parents.update(str(d) for d in down)
    return revisions - parents


def current() -> bool:
    if os.environ.get("DATABASE_URL"):
        return False  # only the default development database is checked here
    instance = Path(os.environ.get("WAYMARK_INSTANCE_DIR", ROOT / "instance"))
    database = instance / "waymark.sqlite3"
    if not database.exists():
        return False
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        stamped = {row[0] for row in conn.execute("SELECT version_num FROM alembic_version")}
    return bool(stamped) and stamped == heads()


if __name__ == "__main__":
    try:
        sys.exit(0 if current() else 1)
    except Exception:  # any doubt means: let Alembic decide
        sys.exit(1)
