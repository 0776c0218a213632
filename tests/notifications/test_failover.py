"""A scheduler SIGKILLed while it holds claimed deliveries (issue 15): the standby sends them
within 30 seconds of the kill, once each. The leader's mail server never answers, so its claims
are stuck in `sending` when it dies, as a crash mid-batch leaves them.

Two real `python -m jobs` processes: on PostgreSQL they elect the leader with the advisory lock,
on SQLite with the file lock; both free it when the process dies.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from api.auth.models import User
from api.notifications.models import Delivery
from api.ops.models import SchedulerHeartbeat
from tests.notifications.test_sender import queue
from tests.servers import Mailbox

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def silent_smtp() -> Iterator[int]:
    """Accepts connections and never says a word (a mail server that hangs)."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    listener.close()


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_the_standby_sends_a_killed_leaders_claims_within_30_seconds(
    database_url: str,
    committed_db: sa.Engine,
    smtp_server: tuple[Mailbox, int],
    mailbox: Mailbox,
    silent_smtp: int,
    tmp_path: Path,
) -> None:
    make = sessionmaker(bind=committed_db, expire_on_commit=False)
    now = datetime.now(UTC).replace(microsecond=0)
    with make() as session:
        for n in range(3):
            user = User(
                email=f"fo{n}@example.test", password_hash="x", display_name="F", timezone="UTC"
            )
            session.add(user)
            session.commit()
            queue(session, user, push=False, due=now)
    base = {
        **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
        "DATABASE_URL": database_url,
        "WAYMARK_INSTANCE_DIR": str(tmp_path),
        "LOG_LEVEL": "WARNING",
        "SEND_INTERVAL": "1",
    }
    leader_env = {**base, "SMTP_PORT": str(silent_smtp), "SMTP_TIMEOUT": "300"}
    standby_env = {**base, "SMTP_PORT": str(smtp_server[1])}

    def sending() -> int:
        with make() as session:
            return (
                session.scalar(
                    select(func.count())
                    .select_from(Delivery)
                    .where(Delivery.channel == "email", Delivery.status == "sending")
                )
                or 0
            )

    def start(env: dict[str, str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "jobs"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    leader = start(leader_env)
    standby: subprocess.Popen[bytes] | None = None
    try:
        _wait(lambda: sending() == 3, 120, "the leader to claim the three emails")
        standby = start(standby_env)
        suffix = f":{standby.pid}"

        def standing_by() -> bool:
            with make() as session:
                rows = session.scalars(select(SchedulerHeartbeat)).all()
                return any(r.instance.endswith(suffix) and not r.is_leader for r in rows)

        _wait(standing_by, 120, "the standby to start")
        leader.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        _wait(lambda: len(mailbox.messages) >= 3, 30, "the standby to send the claimed emails")
        took = time.monotonic() - killed_at
        time.sleep(2)  # a few more ticks: nothing else may arrive
        assert sorted(m["To"] for m in mailbox.messages) == [
            f"fo{n}@example.test" for n in range(3)
        ]
        assert took < 30
        with make() as session:
            statuses = set(
                session.scalars(select(Delivery.status).where(Delivery.channel == "email"))
            )
        assert statuses == {"sent"}
    finally:
        for proc in (leader, standby):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(15)
