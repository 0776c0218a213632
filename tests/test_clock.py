"""`now` is passed in: the clock is read by routes, jobs and the command line (and the few named
places below), never by a service, model, schema or query. A model property or a schema field
that read the clock itself answered differently from the instant its route wrote at (a consent
revoked at t shown `active` when dumped at an earlier read, a regimen's `active` judged at
another instant than the write), and made jobs and tests depend on the wall clock."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.scan import calls_by_function
from tests.support.scan import offenders as scan_offenders

ROOT = Path(__file__).resolve().parent.parent

# Where the clock may be read: the request's owners (routes), the jobs, the command line.
OWNERS = ("api/**/routes.py", "jobs/*.py", "api/cli.py", "api/export/cli.py")
# The other places, each by function, with why it is not domain code.
NAMED = {
    # The clock itself (`utcnow`) and the timestamp columns' defaults.
    "api/db.py": {"utcnow", "<lambda>"},
    # The dashboard routes' own decorator and hooks (the route layer, split out of routes.py).
    "api/clinic/web.py": {"load_session", "_audit"},
    # `auth_required_audited`, a view decorator: it stamps the audit row of the attempt.
    "api/audit/access.py": {"_record"},
    # Request hooks around a view (the claim's instant) and the lease renewer thread.
    "api/idempotency.py": {"_before", "renew"},
    # A token's expiry against its own `exp` claim (seconds since the epoch): the protocol's clock.
    "api/security.py": {"decode_access_token"},
    # The edge's bound on dates a client sends (at most YEARS_AHEAD years from today).
    "api/fields.py": {"latest_date"},
    # Push providers' protocol clocks: an OAuth token's life, a VAPID JWT's expiry, Retry-After.
    "api/notifications/push/fcm.py": {"<lambda>"},
    "api/notifications/push/base.py": {"retry_after"},
    "api/notifications/push/webpush.py": {"authorization"},
}
# datetime.now(), datetime.utcnow(), datetime.today(), date.today(), time.time(), utcnow().
CLOCK_ATTRIBUTES = {("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today")}
CLOCK_ATTRIBUTES |= {("date", "today"), ("time", "time")}
CLOCK_NAMES = {"utcnow"}


def _is_clock_read(call: ast.Call) -> bool:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id in CLOCK_NAMES
    if isinstance(func, ast.Attribute):
        if func.attr in CLOCK_NAMES:  # db.utcnow()
            return True
        return isinstance(func.value, ast.Name) and (func.value.id, func.attr) in CLOCK_ATTRIBUTES
    return False


def _reads(path: Path) -> list[tuple[str, int]]:
    """(enclosing function, line) of every clock read in a file."""
    return calls_by_function(path, _is_clock_read, lambdas=True)


def offenders(root: Path) -> list[str]:
    return scan_offenders(root, owners=OWNERS, allowed=NAMED, find=_reads)


def test_only_routes_jobs_and_named_places_read_the_clock() -> None:
    assert offenders(ROOT) == []


def test_every_named_place_still_reads_the_clock() -> None:
    """A name left in NAMED after its read moved would let a new read there pass unseen."""
    for rel, functions in NAMED.items():
        found = {fn for fn, _line in _reads(ROOT / rel)}
        assert functions <= found, (rel, functions - found)


def test_a_clock_read_in_domain_code_is_found(tmp_path: Path) -> None:
    for package in ("api", "jobs"):
        (tmp_path / package).mkdir()
    (tmp_path / "api" / "db.py").write_text("def utcnow():\n    return datetime.now(UTC)\n")
    feature = tmp_path / "api" / "feature"
    feature.mkdir()
    (feature / "routes.py").write_text("def view():\n    return run(now=utcnow())\n")
    (feature / "models.py").write_text(
        "class Regimen:\n"
        "    @property\n"
        "    def active(self):\n"
        "        return self.is_active(datetime.now(UTC))\n"
    )
    (feature / "schemas.py").write_text(
        "def _status(self, consent):\n    return consent.status_at(db.utcnow())\n"
    )
    (feature / "services.py").write_text(
        "def due(rows, *, now):\n"
        "    return [r for r in rows if r.at <= now]\n\n\n"
        "def today():\n    return date.today()\n\n\n"
        "def stamp():\n    return time.time()\n"
    )
    (tmp_path / "jobs" / "tick.py").write_text("def run():\n    return utcnow()\n")
    assert offenders(tmp_path) == [
        "api/feature/models.py:4 (active)",
        "api/feature/schemas.py:2 (_status)",
        "api/feature/services.py:6 (today)",
        "api/feature/services.py:10 (stamp)",
    ]
