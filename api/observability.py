"""JSON logs (structlog) with request id, user id and route; request ids; Prometheus metrics."""

from __future__ import annotations

import hmac
import logging
import os
import re
import sys
import threading
import time
import traceback
import uuid
from typing import Any

import orjson
import structlog
from flask import Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from werkzeug.exceptions import NotFound

from api.errors import Unauthorized

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REQUESTS = Counter("waymark_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "waymark_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
# Batch jobs (jobs/isolation.py, the reminder dispatcher) skip an item whose processing fails.
ITEM_FAILURES = Counter(
    "waymark_job_item_failures_total",
    "Items (patients, regimens, consents, reminder rules) a batch job skipped because they failed",
    ["job"],
)


def item_failed(job: str, exc: BaseException, **ids: object) -> None:
    """Log (ids and the error's type and frames, never its message) and count one failed item."""
    ITEM_FAILURES.labels(job).inc()
    structlog.get_logger("waymark.jobs").error(
        "job.item_failed", job=job, exc_info=exc, **{k: str(v) for k, v in ids.items()}
    )


def _exception_without_values(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """Render an exception as its type and frames (file:line:function), never its message or
    locals: a database or parsing error quotes the values that were sent."""
    exc_info = event.pop("exc_info", None)
    if exc_info is True:
        exc_info = sys.exc_info()
    elif isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    if isinstance(exc_info, tuple) and exc_info[0] is not None:
        event["error_type"] = exc_info[0].__name__
        event["frames"] = [
            f"{f.filename}:{f.lineno}:{f.name}" for f in traceback.extract_tb(exc_info[2])
        ]
    return event


def _dumps(event: dict[str, Any], **_kw: Any) -> str:
    # orjson renders a log line in a fraction of json.dumps' time (one line per request); a value
    # it cannot serialize is logged as its repr, as structlog's own fallback does.
    return orjson.dumps(event, default=repr, option=orjson.OPT_NON_STR_KEYS).decode()


_RENDERER = structlog.processors.JSONRenderer(serializer=_dumps)

_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    _exception_without_values,
]


def json_formatter() -> logging.Formatter:
    """A stdlib formatter that writes the same JSON lines as structlog (for other libraries'
    loggers: gunicorn, APScheduler, SQLAlchemy), with the logger's name."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *_SHARED],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _RENDERER,
        ],
    )


class _StdoutLogger:
    """structlog's PrintLogger, but writing to whatever sys.stdout is at the time of the line
    (tests swap it), flushed at once as a container's log collector expects."""

    def __init__(self, *_args: Any) -> None:
        pass

    _lock = threading.Lock()  # one line at a time under threaded workers, as PrintLogger does

    def msg(self, message: str) -> None:
        out = sys.stdout
        with self._lock:
            out.write(message + "\n")
            out.flush()

    log = debug = info = warn = warning = error = critical = exception = fatal = failure = msg


def configure_logging(level: str = "INFO") -> None:
    """Log one JSON object a line on stdout, ours and every library's; idempotent so tests and
    workers can call it again."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(json_formatter())
    logging.basicConfig(handlers=[handler], level=level, force=True)
    # APScheduler logs two INFO lines per job run ("Running job", "executed successfully"):
    # some 24 a minute that say nothing the job metrics do not. Its warnings and errors (a missed
    # or failed run) stay; LOG_LEVEL=DEBUG shows everything.
    quiet = logging.DEBUG if logging.getLevelName(level) == logging.DEBUG else logging.WARNING
    for name in ("apscheduler.executors", "apscheduler.scheduler"):
        logging.getLogger(name).setLevel(quiet)
    structlog.configure(
        processors=[*_SHARED, _RENDERER],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=_StdoutLogger,
        # A bound logger is built once per get_logger() proxy, not on every call (one call per
        # request). _StdoutLogger looks sys.stdout up per line, so a swapped stdout still works.
        cache_logger_on_first_use=True,
    )


def _request_id(environ: dict[str, Any]) -> str:
    # From the environ: request.headers.get() would build and catch a KeyError when it is absent.
    supplied = environ.get("HTTP_X_REQUEST_ID", "")
    return supplied if supplied and _REQUEST_ID.match(supplied) else str(uuid.uuid4())


def bind_user(user_id: Any) -> None:
    structlog.contextvars.bind_contextvars(user_id=str(user_id))


def init_app(app: Flask) -> None:
    log = structlog.get_logger("waymark.http")
    # Metric children by label values: `labels()` validates and hashes its arguments on every
    # call; the set of (method, route, status) a process sees is small and fixed by the routes.
    counted: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    @app.before_request
    def _start() -> None:
        req = request._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup
        ctx_g = g._get_current_object()  # type: ignore[attr-defined]
        ctx_g.request_id = request_id = _request_id(req.environ)
        ctx_g.started = time.perf_counter()
        structlog.contextvars.clear_contextvars()
        rule = req.url_rule
        structlog.contextvars.bind_contextvars(
            request_id=request_id, route=rule.rule if rule else None
        )

    @app.after_request
    def _finish(response: Response) -> Response:
        req = request._get_current_object()  # type: ignore[attr-defined]
        ctx_g = g._get_current_object()  # type: ignore[attr-defined]
        response.headers["X-Request-ID"] = ctx_g.get("request_id") or _request_id(req.environ)
        rule = req.url_rule
        route = rule.rule if rule else "<unmatched>"
        started = ctx_g.get("started")
        elapsed = time.perf_counter() - started if started is not None else 0.0
        status = response.status_code
        if route != "/metrics":
            # Label values stay a small fixed set: a client can send any method name.
            method = req.method if req.method in _METHODS else "OTHER"
            key = (method, route, status)
            children = counted.get(key)
            if children is None:
                children = (
                    REQUESTS.labels(method, route, str(status)),
                    LATENCY.labels(method, route),
                )
                counted[key] = children
            children[0].inc()
            children[1].observe(elapsed)
        # The path can hold ids but never values; the query string can, so it is not logged.
        log.info(
            "http.request",
            method=req.method,
            status=status,
            duration_ms=round(elapsed * 1000, 2),
        )
        return response

    @app.teardown_request
    def _clear(_exc: BaseException | None) -> None:
        structlog.contextvars.clear_contextvars()

    @app.get("/metrics")
    def metrics() -> Response:
        """Prometheus metrics, summed over all gunicorn workers in multiprocess mode; only to a
        scraper that sends `Authorization: Bearer <METRICS_TOKEN>` (no token set: 404)."""
        expected = current_app.config.get("METRICS_TOKEN")
        if not expected:
            raise NotFound()
        scheme, _, supplied = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            supplied.strip().encode(), expected.encode()
        ):
            raise Unauthorized("Send 'Authorization: Bearer <METRICS_TOKEN>'.")
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            data = generate_latest(registry)
        else:
            data = generate_latest()
        return Response(data, mimetype=CONTENT_TYPE_LATEST)
