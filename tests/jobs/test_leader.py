"""One scheduler at a time: advisory lock (PostgreSQL), flock (SQLite), and a real failover."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from api.ops.models import SchedulerHeartbeat
from jobs import __main__ as scheduler_main
from jobs.leader import FileLock, PostgresAdvisoryLock, SingleProcess, make_leadership

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.postgres_only
def test_advisory_lock_admits_one_and_passes_on_when_the_session_dies(
    database_url: str, backend: str, engine: sa.Engine
) -> None:
    if backend != "postgresql":
        pytest.skip("advisory locks are PostgreSQL's")
    key = random.randint(1, 2**40)
    first, second = (PostgresAdvisoryLock(database_url, key=key) for _ in range(2))
    try:
        assert first.try_acquire() is True
        assert second.try_acquire() is False
        assert first.holds() is True and second.holds() is False
        # the leader's database session dies (process killed, network gone)
        with engine.connect() as admin:
            pids = admin.execute(
                sa.text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = :lo"
                    " AND classid = :hi AND granted"
                ),
                {"lo": key & 0xFFFFFFFF, "hi": key >> 32},
            ).scalars()
            for pid in pids:
                admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        assert first.holds() is False  # it notices, and stops leading
        assert second.try_acquire() is True
        second.release()
        assert first.try_acquire() is True  # a clean release passes it on too
    finally:
        first.dispose()
        second.dispose()


def test_file_lock_admits_one_process(tmp_path: Path) -> None:
    path = str(tmp_path / "db.sqlite3.scheduler.lock")
    first, second = FileLock(path), FileLock(path)
    assert first.try_acquire() is True
    assert second.try_acquire() is False
    first.release()
    assert second.try_acquire() is True
    second.release()


def test_file_lock_is_freed_when_its_holder_is_killed(tmp_path: Path) -> None:
    path = str(tmp_path / "db.sqlite3.scheduler.lock")
    holder = subprocess.Popen(  # noqa: S603 - our own interpreter and code
        [
            sys.executable,
            "-c",
            "import sys, time; from jobs.leader import FileLock; "
            f"lock = FileLock({path!r}); assert lock.try_acquire(); print('held', flush=True); "
            "time.sleep(60)",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        mine = FileLock(path)
        assert mine.try_acquire() is False
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        assert mine.try_acquire() is True
        mine.release()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


def test_the_lock_kind_follows_the_database(tmp_path: Path) -> None:
    assert isinstance(make_leadership(f"sqlite:///{tmp_path}/x.db", key=1), FileLock)
    assert isinstance(make_leadership("sqlite://", key=1), SingleProcess)
    pg = make_leadership("postgresql+psycopg://postgres@127.0.0.1:5432/test", key=1)
    assert isinstance(pg, PostgresAdvisoryLock)
    pg.dispose()


class _Scheduler:
    def __init__(self) -> None:
        self.stopped = False

    def shutdown(self, wait: bool = True) -> None:
        self.stopped = True


class _Lost:
    kind = "test"

    def holds(self) -> bool:
        return False


def test_a_leader_that_lost_the_lock_stops_its_jobs(app: Any, connection: Any) -> None:
    scheduler = _Scheduler()
    scheduler_main.check_leadership(app, _Lost(), scheduler)  # type: ignore[arg-type]
    assert scheduler.stopped


def test_job_defaults_are_set_on_purpose(app: Any) -> None:
    scheduler = scheduler_main.build_scheduler(
        app, SingleProcess(), scheduler_class=BackgroundScheduler
    )
    scheduler.start(paused=True)  # defaults are applied when jobs really join the scheduler
    try:
        jobs = {job.id: job for job in scheduler.get_jobs()}
    finally:
        scheduler.shutdown(wait=False)
    expected = {"heartbeat", "dispatch_reminders", "send_notifications", "missed_doses"}
    expected |= {
        "purge_idempotency",
        "purge_rate_counters",
        "alerts",
        "weekly_summaries",
        "bulk_export",
        "expire_exports",
    }
    assert expected == set(jobs)
    for job in jobs.values():
        assert job.coalesce is True
        assert job.max_instances == 1
        assert job.misfire_grace_time == app.config["DISPATCH_INTERVAL"]
    assert jobs["dispatch_reminders"].trigger.interval.total_seconds() <= 60


def _leaders(make: Any) -> dict[str, bool]:
    with make() as session:
        return {row.instance: row.is_leader for row in session.scalars(select(SchedulerHeartbeat))}


@pytest.mark.slow
@pytest.mark.postgres_only
def test_a_standby_takes_over_within_seconds_when_the_leader_is_killed(
    database_url: str, backend: str, committed_db: sa.Engine, tmp_path: Path
) -> None:
    if backend != "postgresql":
        pytest.skip("the advisory lock failover is PostgreSQL's")
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "WAYMARK_INSTANCE_DIR": str(tmp_path),
        "SCHEDULER_LEADER_RETRY": "1",
        "HEARTBEAT_INTERVAL": "1",
        "DISPATCH_INTERVAL": "2",
        "SEND_INTERVAL": "2",
        "SCHEDULER_LOCK_KEY": str(random.randint(1, 2**40)),
        "LOG_LEVEL": "WARNING",
    }
    make = sessionmaker(bind=committed_db)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "jobs"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    try:
        by_pid = {p.pid: p for p in procs}
        deadline = time.monotonic() + 30
        leaders: list[str] = []
        while time.monotonic() < deadline:
            rows = _leaders(make)
            leaders = [i for i, lead in rows.items() if lead]
            if len(rows) == 2 and len(leaders) == 1:
                break
            time.sleep(0.3)
        assert len(leaders) == 1, rows
        leader_pid = int(leaders[0].rsplit(":", 1)[1])
        by_pid[leader_pid].send_signal(signal.SIGKILL)
        by_pid[leader_pid].wait(10)
        killed_at = time.monotonic()
        (standby,) = [i for i in rows if i != leaders[0]]
        while time.monotonic() - killed_at < 20:
            if _leaders(make).get(standby):
                break
            time.sleep(0.2)
        took = time.monotonic() - killed_at
        assert _leaders(make) == {standby: True, leaders[0]: False}
        assert took < 10, took
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
