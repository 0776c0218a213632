"""The scheduler process: `python -m jobs`. The API never starts a scheduler (every gunicorn
worker would run the jobs again); this process runs beside the API, once or several times for
failover: only the leader (jobs/leader.py) runs jobs, the others wait and take over within
SCHEDULER_LEADER_RETRY seconds of its death. Settings are explained in docs/scheduler.md.
"""

from __future__ import annotations

import os

# The scheduler is one process: its metrics live in its own registry, never in the files of
# gunicorn's multiprocess mode (prometheus_client reads this when first imported, just below).
os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

import contextlib
import signal
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from api import create_app
from api.auth import recovery
from api.auth.email_tokens import EmailTokenSettings
from api.db import utcnow
from api.export.storage import storage_from_config
from api.notifications import services as outbox
from api.notifications.push import PushRouter
from jobs import (
    alerts,
    bulk_export,
    heartbeat,
    metrics,
    missed_doses,
    purge_idempotency,
    purge_rate_counters,
    reminders,
    weekly_summaries,
)
from jobs.leader import Leadership, SingleProcess, make_leadership

log = structlog.get_logger("waymark.jobs")
INSTANCE = f"{socket.gethostname()}:{os.getpid()}"


def run_in_transaction(app: Any, job: Callable[..., Any], **kwargs: Any) -> Any:
    """Run one job with its own session and commit; a failure rolls back and is logged. Every
    run is counted and timed (jobs/metrics.py)."""
    name = (
        getattr(job, "metric_name", None) or f"{job.__module__.rpartition('.')[2]}.{job.__name__}"
    )
    with app.app_context(), metrics.observe_job(name):
        session = app.extensions["db"].sessionmaker()
        try:
            result = job(session, now=utcnow(), **kwargs)
            session.commit()
        except Exception as exc:
            # A database outage must not leave the session's connection half-used: rollback
            # itself can fail then, and the next run gets a fresh connection from the pool.
            with contextlib.suppress(Exception):
                session.rollback()
            log.error("job.failed", job=name, error_type=type(exc).__name__)
            raise
        finally:
            session.close()
        metrics.count_items(name, result)
        return result


def run_dispatch(app: Any) -> int:
    """Queue every reminder that is due (committed batch by batch)."""
    return int(
        run_in_transaction(
            app,
            reminders.dispatch_reminders,
            settings=reminders.dispatch_settings(app.config),
        )
    )


def run_send(app: Any) -> dict[str, int]:
    """Deliver what the outbox holds, for at most a few send intervals."""
    cfg = app.config
    email, links = reminders.channels(cfg)
    push = push_router(app)

    def send(session: Any, *, now: Any) -> Any:
        # Password-reset and verification emails asked for by address: looked up here, after
        # the answer went out, so the request's timing tells nothing (api.auth.recovery).
        recovery.issue_requested_emails(
            session, now=now, settings=EmailTokenSettings.from_config(cfg)
        )
        session.commit()
        # Leases follow their owner: only the leader sends, one run at a time (max_instances=1),
        # so whatever is still `sending` now belongs to a run that is gone. It is sent at once,
        # not after DELIVERY_LEASE (a killed leader's claims reach the standby's first run).
        freed = outbox.release_orphaned_claims(session, now=now)
        session.commit()
        if freed:
            log.warning("deliveries.orphans_released", count=freed, instance=INSTANCE)
        return reminders.send_notifications(
            session,
            clock=utcnow,
            settings=reminders.sender_settings(cfg),
            batch_size=cfg["SEND_BATCH_SIZE"],
            email=email,
            push=push,
            links=links,
            budget_seconds=max(5 * cfg["SEND_INTERVAL"], 30),
        )

    send.__name__ = "send_notifications"
    send.metric_name = "reminders.send_notifications"  # type: ignore[attr-defined]
    return dict(run_in_transaction(app, send))


def push_router(app: Any) -> PushRouter:
    """One router per process: its access tokens, provider tokens and connections (HTTP/2 to
    APNs) are shared by every run of the sender."""
    router = app.extensions.get("push_router")
    if router is None:
        router = app.extensions["push_router"] = PushRouter.from_config(app.config)
    return router  # type: ignore[no-any-return]


def check_leadership(app: Any, leadership: Leadership, scheduler: BaseScheduler) -> None:
    """Beat as leader while the lock is ours; stop the jobs the moment it is not."""
    if not leadership.holds():
        log.warning("scheduler.leadership_lost", instance=INSTANCE)
        scheduler.shutdown(wait=False)
        return
    run_in_transaction(app, heartbeat.beat, instance=INSTANCE, is_leader=True)


def build_scheduler(
    app: Any,
    leadership: Leadership | None = None,
    scheduler_class: type[BaseScheduler] = BlockingScheduler,
) -> Any:
    """The leader's jobs. Why these job defaults: docs/scheduler.md."""
    cfg = app.config
    leadership = leadership or SingleProcess()
    scheduler = scheduler_class(
        timezone="UTC",
        job_defaults={
            # After a stall, run a periodic job once, not once per missed tick: every job works
            # off "what is due now", so one run catches up on everything.
            "coalesce": True,
            # A slow run is never overlapped by the next tick of the same job.
            "max_instances": 1,
            # A tick late by up to one interval still runs; later than that it is skipped (and
            # the next tick does the work), so a paused process does not burst on resume.
            "misfire_grace_time": cfg["DISPATCH_INTERVAL"],
        },
    )
    now = datetime.now(UTC)  # the scheduler's own clock (jobs get `now` from utcnow)
    # The leader's own check first: it stops the others the moment the lock is lost.
    scheduler.add_job(
        check_leadership,
        "interval",
        seconds=cfg["HEARTBEAT_INTERVAL"],
        args=[app, leadership, scheduler],
        id="heartbeat",
        next_run_time=now,
    )
    for job in JOBS:
        call, args = (job.call, [app]) if job.call else (run_in_transaction, [app, job.job])
        scheduler.add_job(
            call,
            "interval",
            **job.every(cfg),
            args=args,
            kwargs=job.kwargs(cfg),
            id=job.id,
            **({"next_run_time": now} if job.at_start else {}),
        )
    return scheduler


Config = Mapping[str, Any]


def _seconds(key: str) -> Callable[[Config], dict[str, int]]:
    return lambda cfg: {"seconds": cfg[key]}


def _every(**interval: int) -> Callable[[Config], dict[str, int]]:
    return lambda _cfg: interval


def _none(_cfg: Config) -> dict[str, Any]:
    return {}


def _config(cfg: Config) -> dict[str, Any]:
    return {"config": cfg}


@dataclass(frozen=True)
class Job:
    """One row of the leader's schedule: `job` runs in a transaction of its own
    (run_in_transaction) with `kwargs(config)`, or `call(app)` runs as it is; every
    `every(config)`, and also at once when the leader starts if `at_start`."""

    id: str
    every: Callable[[Config], dict[str, int]]
    job: Callable[..., Any] | None = None
    kwargs: Callable[[Config], dict[str, Any]] = _none
    at_start: bool = False
    call: Callable[[Any], Any] | None = None


# Why these intervals and defaults: docs/scheduler.md. Bulk exports run here, never in a web
# worker; max_instances=1 keeps one at a time per scheduler, SKIP LOCKED two schedulers apart.
JOBS: tuple[Job, ...] = (
    Job("dispatch_reminders", _seconds("DISPATCH_INTERVAL"), call=run_dispatch, at_start=True),
    Job("send_notifications", _seconds("SEND_INTERVAL"), call=run_send, at_start=True),
    Job(
        "missed_doses",
        _seconds("MISSED_DOSES_INTERVAL"),
        missed_doses.run,
        kwargs=lambda cfg: {
            "window_minutes": cfg["ADHERENCE_ON_TIME_WINDOW_MINUTES"],
            "lookback_days": cfg["MISSED_DOSES_LOOKBACK_DAYS"],
        },
        at_start=True,
    ),
    Job("purge_idempotency", _every(hours=1), purge_idempotency.purge),
    Job("purge_rate_counters", _every(hours=1), purge_rate_counters.purge, kwargs=_config),
    Job("alerts", _seconds("ALERT_INTERVAL"), alerts.evaluate_alerts, _config, at_start=True),
    Job(
        "weekly_summaries",
        _seconds("WEEKLY_SUMMARY_INTERVAL"),
        weekly_summaries.run,
        kwargs=_config,
        at_start=True,
    ),
    Job(
        "bulk_export",
        _seconds("BULK_EXPORT_POLL_INTERVAL"),
        bulk_export.run_next_export,
        kwargs=lambda cfg: {
            "export_dir": storage_from_config(cfg),
            "base_url": cfg["FHIR_BASE_URL"],
            "ttl": cfg["BULK_EXPORT_TTL"],
            "clock": utcnow,
            "leader": True,
        },
    ),
    Job(
        "expire_exports",
        _every(minutes=5),
        bulk_export.expire_exports,
        kwargs=lambda cfg: {"export_dir": storage_from_config(cfg)},
    ),
)


def serve(app: Any, leadership: Leadership, stop: threading.Event) -> None:
    """Wait for leadership (beating as standby), lead until the lock is lost, repeat until stop."""
    current: dict[str, BlockingScheduler] = {}

    def _on_signal(signum: int, _frame: Any) -> None:
        log.info("scheduler.signal", signal=signum, instance=INSTANCE)
        stop.set()
        if "scheduler" in current and current["scheduler"].running:
            current["scheduler"].shutdown(wait=False)

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    retry = app.config["SCHEDULER_LEADER_RETRY"]
    while not stop.is_set():
        if not leadership.try_acquire():
            # A standby keeps waiting through database hiccups (run_in_transaction logs them).
            with contextlib.suppress(Exception):
                run_in_transaction(app, heartbeat.beat, instance=INSTANCE, is_leader=False)
            stop.wait(retry)
            continue
        log.info("scheduler.leader", instance=INSTANCE, lock=leadership.kind)
        metrics.LEADER.labels(INSTANCE).set(1)
        try:
            run_in_transaction(app, heartbeat.take_leadership, instance=INSTANCE)
            scheduler = build_scheduler(app, leadership)
            current["scheduler"] = scheduler
            scheduler.start()  # blocks until shutdown: a signal, or the lock was lost
        except Exception as exc:  # the database went away while taking over: stand by again
            log.error("scheduler.lead_failed", instance=INSTANCE, error_type=type(exc).__name__)
            stop.wait(retry)
        finally:
            metrics.LEADER.labels(INSTANCE).set(0)
            leadership.release()
        log.info("scheduler.stopped_leading", instance=INSTANCE)


def main() -> None:
    app = create_app()
    push_router(app)  # a push setting that is filled in but unusable stops us here, named
    leadership = make_leadership(app.config["DATABASE_URL"], key=app.config["SCHEDULER_LOCK_KEY"])
    log.info("scheduler.start", instance=INSTANCE, lock=leadership.kind)
    metrics.LEADER.labels(INSTANCE).set(0)
    if app.config["SCHEDULER_METRICS_ADDR"]:
        metrics.serve(app.config["SCHEDULER_METRICS_ADDR"], app.extensions["db"].sessionmaker)
    try:
        serve(app, leadership, threading.Event())
    finally:
        leadership.dispose()
        log.info("scheduler.stop", instance=INSTANCE)


if __name__ == "__main__":
    main()
