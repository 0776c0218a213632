"""The scheduler process: `python -m jobs`. The API never starts a scheduler (every gunicorn
worker would run the jobs again); this process is run once, beside the API."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Callable
from typing import Any

import structlog
from apscheduler.schedulers.blocking import BlockingScheduler

from api import create_app
from api.db import utcnow
from jobs import bulk_export, heartbeat, missed_doses, purge_idempotency

log = structlog.get_logger("waymark.jobs")
INSTANCE = f"{socket.gethostname()}:{os.getpid()}"


def run_in_transaction(app: Any, job: Callable[..., Any], **kwargs: Any) -> Any:
    """Run one job with its own session and commit; a failure rolls back and is logged."""
    with app.app_context():
        session = app.extensions["db"].sessionmaker()
        try:
            result = job(session, now=utcnow(), **kwargs)
            session.commit()
            return result
        except Exception as exc:
            session.rollback()
            log.error("job.failed", job=job.__name__, error_type=type(exc).__name__)
            raise
        finally:
            session.close()


def build_scheduler(app: Any) -> BlockingScheduler:
    # coalesce: after a stall, run a periodic job once, not once per missed tick;
    # max_instances=1: a slow run is never overlapped by the next;
    # misfire_grace_time: a tick late by less than this still runs (the jobs themselves catch up
    # on anything due, so a skipped tick loses nothing).
    scheduler = BlockingScheduler(
        timezone="UTC",
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
    )
    scheduler.add_job(
        run_in_transaction,
        "interval",
        seconds=30,
        args=[app, heartbeat.beat],
        kwargs={"instance": INSTANCE, "is_leader": True},
        id="heartbeat",
        next_run_time=utcnow(),
    )
    scheduler.add_job(
        run_in_transaction,
        "interval",
        seconds=app.config["MISSED_DOSES_INTERVAL"],
        args=[app, missed_doses.run],
        kwargs={
            "window_minutes": app.config["ADHERENCE_ON_TIME_WINDOW_MINUTES"],
            "lookback_days": app.config["MISSED_DOSES_LOOKBACK_DAYS"],
        },
        id="missed_doses",
        next_run_time=utcnow(),
    )
    scheduler.add_job(
        run_in_transaction,
        "interval",
        hours=1,
        args=[app, purge_idempotency.purge],
        id="purge_idempotency",
    )
    _add_export_jobs(scheduler, app)
    return scheduler


def _add_export_jobs(scheduler: BlockingScheduler, app: Any) -> None:
    cfg = app.config
    # Bulk exports run here, never in a web worker; max_instances=1 keeps one at a time per
    # scheduler, and SKIP LOCKED keeps two schedulers off the same job.
    scheduler.add_job(
        run_in_transaction,
        "interval",
        seconds=cfg["BULK_EXPORT_POLL_INTERVAL"],
        args=[app, bulk_export.run_next_export],
        kwargs={
            "export_dir": cfg["EXPORT_DIR"],
            "base_url": cfg["FHIR_BASE_URL"],
            "ttl": cfg["BULK_EXPORT_TTL"],
            "clock": utcnow,
        },
        id="bulk_export",
    )
    scheduler.add_job(
        run_in_transaction,
        "interval",
        minutes=5,
        args=[app, bulk_export.expire_exports],
        kwargs={"export_dir": cfg["EXPORT_DIR"]},
        id="expire_exports",
    )


def _exit_on_term(_signum: int, _frame: Any) -> None:
    raise SystemExit(0)


def main() -> None:
    app = create_app()
    scheduler = build_scheduler(app)
    # TERM (a supervisor, or `make run` stopping) ends the process like Ctrl-C does: a job that is
    # running finishes and commits, and no new one starts.
    signal.signal(signal.SIGTERM, _exit_on_term)
    log.info("scheduler.start", instance=INSTANCE)
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        if scheduler.running:
            scheduler.shutdown(wait=True)
        log.info("scheduler.stop", instance=INSTANCE)


if __name__ == "__main__":
    main()
