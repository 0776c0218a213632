"""One owner of each transaction: only routes and jobs commit or roll back. The other writes that
must outlive a failing request go through db.in_own_transaction, a named short transaction."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.scan import calls_by_function
from tests.support.scan import offenders as scan_offenders

ROOT = Path(__file__).resolve().parent.parent

# Where a commit or rollback may be written: the request's owner (routes), the jobs, the command
# line's commands (the routes of `flask ...`), and the one helper for named short transactions.
# api/clinic/web.py is the dashboard routes' own decorator and hooks (the audited page, the
# session's idle clock): the route layer, split out of routes.py.
OWNERS = ("api/**/routes.py", "jobs/*.py", "api/cli.py", "api/export/cli.py", "api/clinic/web.py")
SHORT_TRANSACTIONS = {
    "api/db.py": {"in_own_transaction"},
    # A streamed bulk file ends its read after each chunk (nothing written), so a slow download
    # holds no snapshot or SQLite lock between chunks.
    "api/export/storage.py": {"_chunks"},
    # The idempotency lease renewer: a background thread's own short transaction on the engine,
    # never the request's session.
    "api/idempotency.py": {"renew"},
}
ENDINGS = {"commit", "rollback"}


def _is_ending(call: ast.Call) -> bool:
    return isinstance(call.func, ast.Attribute) and (
        call.func.attr in ENDINGS or call.func.attr == "begin"
    )


def _endings(path: Path) -> list[tuple[str, int]]:
    """(enclosing function, line) of every .commit()/.rollback() call and `with x.begin():`."""
    return calls_by_function(path, _is_ending)


def offenders(root: Path) -> list[str]:
    return scan_offenders(root, owners=OWNERS, allowed=SHORT_TRANSACTIONS, find=_endings)


def test_only_routes_jobs_and_named_short_transactions_end_a_transaction() -> None:
    assert offenders(ROOT) == []


def test_a_commit_hidden_in_a_service_is_found(tmp_path: Path) -> None:
    for package in ("api", "jobs"):
        (tmp_path / package).mkdir()
    (tmp_path / "api" / "db.py").write_text(
        "def in_own_transaction(name, work):\n"
        "    with maker() as session, session.begin():\n"
        "        return work(session)\n"
    )
    (tmp_path / "api" / "feature").mkdir()
    (tmp_path / "api" / "feature" / "routes.py").write_text("def view(s):\n    s.commit()\n")
    (tmp_path / "api" / "feature" / "services.py").write_text(
        "def record(s):\n    s.flush()\n\n\ndef sneaky(s):\n    s.rollback()\n"
    )
    (tmp_path / "api" / "errors.py").write_text("def handler(exc):\n    get_session().commit()\n")
    assert offenders(tmp_path) == [
        "api/errors.py:2 (handler)",
        "api/feature/services.py:6 (sneaky)",
    ]


# --- A refusal's writes: a named short transaction, never a commit on the way out -------------


def _commits_on_the_way_out(path: Path) -> list[int]:
    """Lines of commits inside an `except` handler that re-raises: a refusal (an error that
    leaves the view) whose writes the owner commits as the error passes. That is the commit
    that used to hide in errors.py, moved into the route; the writes that must outlive a
    refusal go through db.in_own_transaction instead (a counted attempt, a denied attempt's
    audit row, a revoked login)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.ExceptHandler):
            continue
        inner = list(ast.walk(node))
        if not any(isinstance(n, ast.Raise) for n in inner):
            continue  # a job settling an item and going on is not a refusal
        found += [
            n.lineno
            for n in inner
            if isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute)
            and n.func.attr == "commit"
        ]
    return found


def refusal_commits(root: Path) -> list[str]:
    problems = []
    for package in ("api", "jobs"):
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            problems += [f"{rel}:{line}" for line in _commits_on_the_way_out(path)]
    return problems


def test_no_refusal_is_committed_on_its_way_out() -> None:
    assert refusal_commits(ROOT) == []


def test_a_commit_on_the_way_out_is_found(tmp_path: Path) -> None:
    feature = tmp_path / "api" / "auth"
    feature.mkdir(parents=True)
    (tmp_path / "jobs").mkdir()
    (feature / "routes.py").write_text(
        "def create_token(body):\n"
        "    session = get_session()\n"
        "    try:\n"
        "        pair = services.login(session, **body)\n"
        "    except services.PersistingUnauthorized:\n"
        "        session.commit()  # the counted failure outlives the 401\n"
        "        raise\n"
        "    session.commit()\n"
        "    return pair\n"
    )
    (tmp_path / "jobs" / "batch.py").write_text(
        "def run(session, items):\n"
        "    for item in items:\n"
        "        try:\n"
        "            work(session, item)\n"
        "        except ItemFailed:\n"
        "            session.rollback()\n"
        "            mark_failed(session, item)\n"
        "            session.commit()\n"
    )
    assert refusal_commits(tmp_path) == ["api/auth/routes.py:6"]
