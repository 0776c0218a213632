"""Benchmark: one dispatcher run with 10,000 reminders due, against 1,000,000 rules vs 10,000.

Side by side, the naive design: one APScheduler job per reminder in a SQLAlchemyJobStore
(10,000 and 100,000 jobs): the time to put the jobs in the store, the time to fire the 10,000 due
ones, and the scheduler process's memory. Every measurement runs in a fresh child process, so its
RSS is its own.

    .venv/bin/python -m bench.reminders_dispatch                  # full size (a few minutes)
    .venv/bin/python -m bench.reminders_dispatch --rules 200000 --users 20000 --naive 10000

PostgreSQL only; a throwaway database is created and dropped. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

ROOT = Path(__file__).resolve().parent.parent
ZONES = [
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Australia/Sydney",
    "UTC",
]
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0  # pragma: no cover


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sa_url(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# ------------------------------------------------------------------------------------ set-up


def create_database(admin_url: str) -> str:
    name = f"waymark_bench_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    url = sa_url(admin_url, name)
    cfg = AlembicConfig(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, "head")
    return url


def drop_database(admin_url: str, url: str) -> None:
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    engine.dispose()


def load(url: str, *, users: int, rules: int, due: int, seed: int = 7) -> list[uuid.UUID]:
    """COPY `users` users and `rules` check-in rules; `due` of them due in the last 10 minutes,
    the rest later today or tomorrow. Returns the ids of the due rules."""
    rng = random.Random(seed)
    user_ids = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(users)]
    zones = {name: ZoneInfo(name) for name in ZONES}
    user_zone = [rng.choice(ZONES) for _ in range(users)]
    due_ids: list[uuid.UUID] = []

    def rule_rows() -> Iterator[tuple[Any, ...]]:
        for i in range(rules):
            u = i % users
            zone = zones[user_zone[u]]
            if i < due:
                fire = NOW - timedelta(seconds=rng.randint(1, 600))
            else:
                fire = NOW + timedelta(seconds=rng.randint(60, 36 * 3600))
            fire = fire.replace(microsecond=0)
            local = fire.astimezone(zone)
            rule_id = uuid.UUID(int=rng.getrandbits(128))
            if i < due:
                due_ids.append(rule_id)
            yield (
                rule_id,
                user_ids[u],
                "checkin",
                local.strftime("%H:%M"),
                True,
                False,
                True,
                user_zone[u],
                local.date(),
                fire,
                fire,
                NOW,
                NOW,
            )

    with psycopg.connect(libpq(url)) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY users (id, email, password_hash, display_name, role, timezone,"
            " discreet_notifications, created_at, updated_at) FROM STDIN"
        ) as copy:
            for n, user_id in enumerate(user_ids):
                copy.write_row(
                    (
                        user_id,
                        f"u{n}@bench.invalid",
                        "x",
                        f"U{n}",
                        "patient",
                        user_zone[n],
                        False,
                        NOW,
                        NOW,
                    )
                )
        with cur.copy(
            "COPY reminder_rules (id, user_id, kind, local_time, push, email, enabled, timezone,"
            " next_local_date, next_occurrence_at, next_fire_at, created_at, updated_at)"
            " FROM STDIN"
        ) as copy:
            for row in rule_rows():
                copy.write_row(row)
        conn.commit()
    vacuum(url)
    return due_ids


def vacuum(url: str) -> None:
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE users, reminder_rules, notifications, notification_deliveries")


def reset(url: str) -> None:
    """Put the dispatched rules back where they were and empty the outbox, for another run."""
    with psycopg.connect(libpq(url)) as conn:
        conn.execute(
            "UPDATE reminder_rules SET next_fire_at = last_occurrence_at,"
            " next_occurrence_at = last_occurrence_at, next_local_date = last_local_date,"
            " last_occurrence_at = NULL, last_local_date = NULL"
            " WHERE last_occurrence_at IS NOT NULL"
        )
        conn.execute("DELETE FROM notifications")
        conn.commit()
    vacuum(url)


def truncate(url: str) -> None:
    with psycopg.connect(libpq(url)) as conn:
        conn.execute(
            "TRUNCATE notification_deliveries, notifications, reminder_rules, users CASCADE"
        )
        conn.commit()


# ------------------------------------------------------------------------------------ children


def child_dispatch(url: str, batch_size: int) -> dict[str, Any]:
    """One dispatcher run at NOW, as the scheduler's job does it."""
    import api.all_models  # noqa: F401 - mappers
    from api.db import make_engine
    from api.reminders.dispatch import DispatchSettings
    from jobs.reminders import dispatch_reminders

    engine = make_engine(url)
    session = sessionmaker(bind=engine, expire_on_commit=False)()
    session.execute(sa.text("SELECT 1"))  # connect before the clock starts
    session.commit()
    before = rss_mb()
    cpu = time.process_time()
    started = time.perf_counter()
    rules = dispatch_reminders(
        session,
        now=NOW,
        settings=DispatchSettings(grace=timedelta(minutes=30), batch_size=batch_size),
    )
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    notifications = session.scalar(sa.text("SELECT count(*) FROM notifications"))
    session.close()
    engine.dispose()
    return {
        "rules": rules,
        "notifications": notifications,
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu, 3),
        "rss_mb": round(rss_mb(), 1),
        "rss_before_mb": round(before, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


FIRED = 0
_FIRED_LOCK = threading.Lock()


def naive_reminder(rule_id: str) -> None:  # noqa: ARG001 - the job's argument, as stored
    """What a per-reminder job would do; here it only counts."""
    global FIRED  # noqa: PLW0603 - a counter the benchmark reads
    with _FIRED_LOCK:
        FIRED += 1


def child_naive(url: str, jobs: int, due: int) -> dict[str, Any]:
    """One APScheduler job per reminder in a SQLAlchemyJobStore: schedule, then fire `due`."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    table = f"apscheduler_jobs_{jobs}"
    store = SQLAlchemyJobStore(url=url, tablename=table)
    scheduler = BackgroundScheduler(jobstores={"default": store}, timezone="UTC")
    scheduler.start(paused=True)
    base = datetime.now(UTC)
    rss_start = rss_mb()
    cpu = time.process_time()
    started = time.perf_counter()
    for i in range(jobs):
        # Due ones a second from now (so they are not misfires when the scheduler resumes);
        # the rest tomorrow.
        when = base + timedelta(seconds=1) if i < due else base + timedelta(days=1, seconds=i)
        scheduler.add_job(
            naive_reminder,
            "date",
            run_date=when,
            args=[str(uuid.UUID(int=i))],
            id=f"r{i}",
            misfire_grace_time=None,
            coalesce=True,
        )
    scheduled = time.perf_counter() - started
    schedule_cpu = time.process_time() - cpu
    rss_loaded = rss_mb()
    time.sleep(max(0.0, (base + timedelta(seconds=1) - datetime.now(UTC)).total_seconds()))
    cpu = time.process_time()
    started = time.perf_counter()
    scheduler.resume()
    while due > FIRED and time.perf_counter() - started < 1800:
        time.sleep(0.05)
    fired = time.perf_counter() - started
    # The store deletes each fired date job; wait until it is done with them.
    engine = sa.create_engine(url)
    while time.perf_counter() - started < 1800:
        with engine.connect() as conn:
            left = conn.scalar(sa.text(f"SELECT count(*) FROM {table}"))
        if left <= jobs - due:
            break
        time.sleep(0.05)
    settled = time.perf_counter() - started
    fire_cpu = time.process_time() - cpu
    rss_fired = rss_mb()
    scheduler.shutdown(wait=True)
    engine.dispose()
    return {
        "jobs": jobs,
        "fired": FIRED,
        "schedule_seconds": round(scheduled, 2),
        "schedule_cpu_seconds": round(schedule_cpu, 2),
        "fire_seconds": round(fired, 2),
        "fire_and_remove_seconds": round(settled, 2),
        "fire_cpu_seconds": round(fire_cpu, 2),
        "rss_start_mb": round(rss_start, 1),
        "rss_loaded_mb": round(rss_loaded, 1),
        "rss_after_fire_mb": round(rss_fired, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def run_child(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.reminders_dispatch", *args],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "LOG_LEVEL": "WARNING"},
    )
    last = [line for line in out.stdout.splitlines() if line.startswith("{")][-1]
    return json.loads(last)


# ------------------------------------------------------------------------------------ main


def measure_dispatch(url: str, runs: int, batch_size: int) -> list[dict[str, Any]]:
    results = []
    for n in range(runs):
        if n:
            reset(url)
        results.append(run_child("--child", "dispatch", "--url", url, "--batch", str(batch_size)))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--rules", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--naive", default="10000,100000", help="job counts; empty to skip")
    parser.add_argument("--child", choices=["dispatch", "naive"])
    parser.add_argument("--url")
    parser.add_argument("--jobs", type=int)
    args = parser.parse_args()

    if args.child == "dispatch":
        print(json.dumps(child_dispatch(args.url, args.batch)))
        return
    if args.child == "naive":
        print(json.dumps(child_naive(args.url, args.jobs, args.due)))
        return

    url = create_database(args.pg_url)
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_at_start": os.getloadavg(),
    }
    try:
        started = time.perf_counter()
        load(url, users=args.users, rules=args.rules, due=args.due)
        report["load_seconds"] = round(time.perf_counter() - started, 1)
        big = measure_dispatch(url, args.runs, args.batch)
        report["big"] = {"rules": args.rules, "users": args.users, "runs": big}

        truncate(url)
        small_users = max(1, args.users * args.due // args.rules)
        load(url, users=small_users, rules=args.due, due=args.due)
        small = measure_dispatch(url, args.runs, args.batch)
        report["small"] = {"rules": args.due, "users": small_users, "runs": small}

        big_median = statistics.median(r["seconds"] for r in big)
        small_median = statistics.median(r["seconds"] for r in small)
        report["median_seconds"] = {"big": big_median, "small": small_median}
        report["median_cpu_seconds"] = {
            "big": statistics.median(r["cpu_seconds"] for r in big),
            "small": statistics.median(r["cpu_seconds"] for r in small),
        }
        report["ratio_big_to_small"] = round(big_median / small_median, 2)

        report["naive"] = [
            run_child("--child", "naive", "--url", url, "--jobs", n, "--due", str(args.due))
            for n in filter(None, args.naive.split(","))
        ]
    finally:
        drop_database(args.pg_url, url)
    report["load_average_at_end"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
