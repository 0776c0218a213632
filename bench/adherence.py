"""Adherence benchmark (on demand, not part of the suite).

A patient with three regimens (once, twice and three times a day) and one year of dose logs
(most taken, some late, some skipped, some never logged) in a throwaway PostgreSQL database;
times `queries.adherence_report` and `GET /v1/adherence` for one year, and counts the queries of
one month against one year.

    .tools/bin/uv run --frozen python -m bench.adherence [--runs 30] [--write docs/benchmarks.md]

BENCH_DATABASE_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test) names the
server; a database `waymark_bench_<random>` is created there and dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy.engine import make_url

from api import create_app
from api.auth.models import AuthSession, User
from api.config import Config
from api.medications import queries, services
from api.medications.models import Dose
from api.medications.schedule import regimen_doses
from api.security import issue_access_token
from tests.support.queries import count_queries

ROOT = Path(__file__).resolve().parent.parent
SERVER = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REGIMENS = [
    ("once daily", ["08:00"]),
    ("twice daily", ["08:00", "20:00"]),
    ("three times daily", ["08:00", "14:00", "20:00"]),
]


@contextmanager
def throwaway_database() -> Iterator[str]:
    name = f"waymark_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(SERVER, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(SERVER).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


class BenchConfig(Config):
    def __init__(self, url: str) -> None:
        super().__init__()
        self.SECRET_KEY = "bench-secret-" + "x" * 40
        self.DATABASE_URL = url
        self.LOG_LEVEL = "WARNING"


def seed(session: Any, now: datetime) -> tuple[User, int]:
    """The patient, three regimens from a year ago, and their dose logs; returns (user, logs)."""
    rng = random.Random(20261126)
    user = User(
        email="bench@example.test",
        password_hash="not-a-hash",  # noqa: S106 - never signs in; the bench issues a token
        display_name="Bench",
        timezone="America/New_York",
    )
    session.add(user)
    session.flush()
    start = (now - timedelta(days=366)).date()
    rows: list[dict[str, Any]] = []
    for name, times in REGIMENS:
        medication, _ = services.create_medication(
            session,
            user_id=user.id,
            timezone=user.timezone,
            body={
                "id": None,
                "name": name,
                "dose": 8.0,
                "unit": "mg",
                "times": times,
                "days_of_week": None,
                "start_date": start,
                "end_date": None,
                "as_needed": False,
                "rxnorm_code": None,
            },
            now=now - timedelta(days=366),
        )
        for slot in regimen_doses(medication, now - timedelta(days=367), now - timedelta(hours=2)):
            roll = rng.random()
            if roll < 0.12:
                continue  # never logged: missed
            status, taken_at = "skipped", None
            if roll >= 0.20:
                status = "taken"
                late = rng.random() < 0.25
                minutes = rng.randint(61, 240) if late else rng.randint(-30, 45)
                taken_at = slot + timedelta(minutes=minutes)
            rows.append(
                {
                    "id": uuid.uuid4(),
                    "user_id": user.id,
                    "medication_id": medication.id,
                    "status": status,
                    "source": "user",
                    "scheduled_for": slot,
                    "taken_at": taken_at,
                    "dose_at": slot,
                    "note": None,
                    "create_fingerprint": None,
                    "created_at": slot,
                    "updated_at": slot,
                }
            )
    session.execute(sa.insert(Dose), rows)
    # And what the job would have stored for the last week.
    services.mark_missed_doses(session, now=now)
    session.commit()
    return user, len(rows)


def timed(fn: Callable[[], Any], runs: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU milliseconds of `runs` calls after 3 warm-ups."""
    for _ in range(3):
        fn()
    wall, cpu = [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    return wall, cpu


def summary(samples: list[float]) -> tuple[float, float]:
    return statistics.median(samples), statistics.quantiles(samples, n=20)[18]


def migrate(url: str) -> None:
    cfg = AlembicConfig(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, "head")


def measure(url: str, runs: int) -> dict[str, Any]:
    app = create_app(BenchConfig(url))
    db = app.extensions["db"]
    now = datetime.now(UTC).replace(microsecond=0)
    with app.app_context():
        session = db.sessionmaker()
        user, logs = seed(session, now)
        login = AuthSession(user_id=user.id, created_at=now)
        session.add(login)
        session.commit()
        token = issue_access_token(
            user_id=user.id, role="patient", session_id=login.id, now=now, ttl=3600
        )
        stored = session.scalar(sa.select(sa.func.count()).select_from(Dose))
        session.close()

    year = (now - timedelta(days=365), now)
    month = (now - timedelta(days=30), now)

    def service(period: tuple[datetime, datetime]) -> dict[str, Any]:
        with db.sessionmaker() as s:
            return queries.adherence_report(
                s, user_id=user.id, now=now, start=period[0], end=period[1]
            )

    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    url_path = f"/v1/adherence?from={year[0].strftime(stamp)}&to={year[1].strftime(stamp)}"

    def route() -> None:
        response = client.get(url_path, headers=headers)
        assert response.status_code == 200, response.json

    results: dict[str, Any] = {"logs": logs, "stored": stored}
    results["service"] = timed(lambda: service(year), runs)
    results["route"] = timed(route, runs)
    for label, period in (("month", month), ("year", year)):
        with count_queries(db.engine) as seen:
            service(period)
        results[f"queries_{label}"] = len(seen)
    with count_queries(db.engine) as seen:
        route()
    results["queries_route"] = len(seen)
    results["overall"] = service(year)["overall"]
    db.engine.dispose()
    return results


def render(r: dict[str, Any], runs: int) -> str:
    s_med, s_p95 = summary(r["service"][0])
    r_med, r_p95 = summary(r["route"][0])
    s_cpu, _ = summary(r["service"][1])
    r_cpu, _ = summary(r["route"][1])
    overall = r["overall"]
    load = os.getloadavg()[0]
    today = datetime.now(UTC).date().isoformat()
    return f"""
## Adherence

`bench/adherence.py`, run on demand: `.tools/bin/uv run --frozen python -m bench.adherence`.
Machine: 2-core, PostgreSQL on loopback, load average {load:.1f} during the run; date: {today}.
One patient, three regimens (1, 2 and 3 times a day) over one year: {overall["scheduled"]}
scheduled doses, {r["logs"]} dose logs (about 80% taken, a quarter of those late, 8% skipped,
12% never logged) plus the last week's stored missed rows ({r["stored"]} rows in `doses`);
dose_adherence {overall["dose_adherence"]}, pdc {overall["pdc"]}. {runs} timed runs after 3
warm-ups; CPU is the process's own time (what other load on the machine does not inflate).

| one year | median | p95 | median CPU |
|---|---|---|---|
| `queries.adherence_report` (service, new session each run) | {s_med:.1f} ms | {s_p95:.1f} ms \
| {s_cpu:.1f} ms |
| `GET /v1/adherence` (test client, auth included) | {r_med:.1f} ms | {r_p95:.1f} ms \
| {r_cpu:.1f} ms |

Queries: the service makes {r["queries_month"]} for 1 month and {r["queries_year"]} for 1 year;
the route {r["queries_route"]} (auth included). Target: under 100 ms for one year, and a query
count that does not grow with the period.
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--write", type=Path, help="append the figures to this markdown file")
    args = parser.parse_args()
    with throwaway_database() as url:
        migrate(url)
        results = measure(url, args.runs)
    text = render(results, args.runs)
    print(text)
    if args.write:
        existing = args.write.read_text() if args.write.exists() else "# Benchmarks\n"
        args.write.write_text(existing.rstrip("\n") + "\n" + text)


if __name__ == "__main__":
    main()
