"""The source scans behind the architecture rules (tests/test_clock.py, tests/test_transactions.py):
which calls each function of `api/` and `jobs/` makes, outside the files that own them."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path


def calls_by_function(
    path: Path, matches: Callable[[ast.Call], bool], *, lambdas: bool = False
) -> list[tuple[str, int]]:
    """(enclosing function, line) of every call in the file that `matches`; with `lambdas`, a
    call inside a lambda is the lambda's ("<lambda>"), not its enclosing function's."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = None
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = child.name
            elif lambdas and isinstance(child, ast.Lambda):
                name = "<lambda>"
            if isinstance(child, ast.Call) and matches(child):
                found.append((function, child.lineno))
            visit(child, name or function)

    visit(ast.parse(path.read_text(), str(path)), "<module>")
    return found


def offenders(
    root: Path,
    *,
    owners: Iterable[str],
    allowed: Mapping[str, set[str]],
    find: Callable[[Path], list[tuple[str, int]]],
) -> list[str]:
    """`path:line (function)` of every call `find` reports in api/ and jobs/, outside the files
    matching `owners` and the functions `allowed` names per file."""
    owned = {p for pattern in owners for p in root.glob(pattern)}
    problems = []
    for package in ("api", "jobs"):
        for path in sorted((root / package).rglob("*.py")):
            if path in owned:
                continue
            rel = path.relative_to(root).as_posix()
            names = allowed.get(rel, set())
            problems += [f"{rel}:{line} ({fn})" for fn, line in find(path) if fn not in names]
    return problems
