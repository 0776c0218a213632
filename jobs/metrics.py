"""The scheduler's Prometheus metrics, served on SCHEDULER_METRICS_ADDR (its own port: the API's
/metrics shows the web side). docs/operations.md lists them and gives example alert rules.

Job runs, failures, durations and items come from this process. The delivery pipeline and bulk
export gauges are read from the database at scrape time, so leader and standby report the same
numbers and a restart loses nothing; `waymark_scheduler_leader` says which instance leads.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import structlog
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.db import utcnow
from api.export.models import ExportJob
from api.notifications.models import STATUSES, Delivery, Notification

log = structlog.get_logger("waymark.jobs.metrics")

JOB_RUNS = Counter("waymark_job_runs_total", "Scheduler job runs", ["job"])
JOB_FAILURES = Counter("waymark_job_failures_total", "Scheduler job runs that raised", ["job"])
JOB_DURATION = Histogram(
    "waymark_job_duration_seconds",
    "Scheduler job run time",
    ["job"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 1800),
)
# What a run did, as the job reports it: alerts raised, summaries built and delivered, rules
# dispatched, deliveries sent/retried/failed, exports completed.
JOB_ITEMS = Counter("waymark_job_items_total", "Items a job run handled", ["job", "outcome"])
JOB_LAST_SUCCESS = Gauge(
    "waymark_job_last_success_timestamp_seconds", "When a job last finished without error", ["job"]
)
LEADER = Gauge(
    "waymark_scheduler_leader",
    "1 while this scheduler instance leads (runs the jobs)",
    ["instance"],
)


@contextmanager
def observe_job(job: str) -> Iterator[None]:
    """Count and time one run of `job`; a run that raises counts as a failure."""
    JOB_RUNS.labels(job).inc()
    started = time.perf_counter()
    try:
        yield
    except BaseException:
        JOB_FAILURES.labels(job).inc()
        raise
    else:
        JOB_LAST_SUCCESS.labels(job).set(time.time())
    finally:
        JOB_DURATION.labels(job).observe(time.perf_counter() - started)


def count_items(job: str, result: Any) -> None:
    """Record what a job returned: an int (items), or a mapping of outcome to count."""
    if isinstance(result, bool) or result is None:
        return
    if isinstance(result, int):
        if result:
            JOB_ITEMS.labels(job, "done").inc(result)
        return
    if isinstance(result, Mapping):
        for outcome, count in result.items():
            if isinstance(count, int) and not isinstance(count, bool) and count > 0:
                JOB_ITEMS.labels(job, str(outcome)).inc(count)
        return
    if isinstance(result, ExportJob):
        JOB_ITEMS.labels(job, result.status).inc()


class DatabaseCollector(Collector):
    """Gauges read from the database when scraped: the outbox and the bulk export queue."""

    def __init__(self, sessionmaker: Callable[[], Session], clock: Callable[[], datetime]) -> None:
        self.sessionmaker = sessionmaker
        self.clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        deliveries = GaugeMetricFamily(
            "waymark_deliveries", "Outbox rows by channel and status", labels=["channel", "status"]
        )
        oldest = GaugeMetricFamily(
            "waymark_delivery_oldest_due_age_seconds",
            "How long the oldest queued or sending delivery has been due (0: none)",
            labels=["channel"],
        )
        exports = GaugeMetricFamily(
            "waymark_bulk_exports", "Bulk export jobs by status", labels=["status"]
        )
        up = GaugeMetricFamily(
            "waymark_scheduler_database_up", "1 if the last scrape could read the database"
        )
        try:
            with self.sessionmaker() as session:
                now = self.clock()
                counts = session.execute(
                    select(Delivery.channel, Delivery.status, func.count()).group_by(
                        Delivery.channel, Delivery.status
                    )
                ).all()
                due = session.execute(
                    select(Delivery.channel, func.min(Notification.due_at))
                    .join(Notification, Notification.id == Delivery.notification_id)
                    .where(Delivery.status.in_(("queued", "sending")))
                    .group_by(Delivery.channel)
                ).all()
                jobs = session.execute(
                    select(ExportJob.status, func.count()).group_by(ExportJob.status)
                ).all()
        except Exception as exc:  # a scrape must answer even with the database down
            log.warning("metrics.database_unavailable", error_type=type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        seen = {(channel, status): n for channel, status, n in counts}
        for channel in ("inbox", "email", "push"):
            for status in STATUSES:
                deliveries.add_metric([channel, status], seen.get((channel, status), 0))
        oldest_due = dict(due.__iter__())
        for channel in ("inbox", "email", "push"):
            first = oldest_due.get(channel)
            oldest.add_metric([channel], max((now - first).total_seconds(), 0) if first else 0)
        by_status = dict(jobs.__iter__())
        for status in ("queued", "running", "completed", "failed", "cancelled", "expired"):
            exports.add_metric([status], by_status.get(status, 0))
        up.add_metric([], 1)
        yield deliveries
        yield oldest
        yield exports
        yield up


def serve(
    address: str,
    sessionmaker: Callable[[], Session],
    registry: CollectorRegistry = REGISTRY,
) -> Any:
    """Start the metrics HTTP server on "host:port" (a daemon thread); returns the server."""
    from prometheus_client import start_http_server

    host, _, port = address.rpartition(":")
    registry.register(DatabaseCollector(sessionmaker, utcnow))
    server, _thread = start_http_server(int(port), addr=host or "127.0.0.1", registry=registry)
    log.info("metrics.serving", address=address)
    return server
