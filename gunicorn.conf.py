"""gunicorn settings: `gunicorn -c gunicorn.conf.py wsgi:app`. Values come from the environment."""

import gc
import multiprocessing
import os
import shutil
import tempfile
from pathlib import Path

from gunicorn.glogging import Logger

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", min(2 * multiprocessing.cpu_count() + 1, 8)))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
keepalive = 5
# gunicorn's defaults, stated: its refusals above these are plain text, not problem+json, so the
# app refuses smaller (api/__init__.py: 2048-character URLs, 4096-character headers) and the proxy
# in front must cap requests below these (docs/operations.md, "Limits the proxy must enforce").
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "5000"))
max_requests_jitter = 500
# Each sync worker touches a heartbeat file before every accept (os.utime); on a disk-backed /tmp
# that is a metadata write per request. gunicorn's docs advise a tmpfs where there is one.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 - tmpfs, not a temp file name
accesslog = None  # the app logs each request as JSON, with ids and no query string


class QuietAccessLogger(Logger):
    """gunicorn's logger without its access line. With `logconfig_dict` set, gunicorn builds the
    line's atoms (headers, times, a dict per request) and hands it to the `gunicorn.access`
    logger even though that logger has no handler: about a tenth of a worker's CPU on
    `GET /healthz`. The app already logs every request (api.observability, `http.request`)."""

    def access(self, resp, req, environ, request_time):
        return


logger_class = QuietAccessLogger
errorlog = "-"
# gunicorn's own lines (start, worker boot and exit, timeouts) as the same JSON lines on stdout.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "api.observability.json_formatter"}},
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stdout",
        }
    },
    "loggers": {
        "gunicorn.error": {
            "handlers": ["stdout"],
            "level": os.environ.get("LOG_LEVEL", "INFO"),
            "propagate": False,
        },
        "gunicorn.access": {"handlers": [], "propagate": False},
    },
    "root": {"level": "INFO", "handlers": ["stdout"]},  # the app sets its own on import
}
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# Import the app once in the master and fork the workers from it: they start at once (and a
# worker replaced after max_requests too). post_fork drops any pooled connection copied over.
preload_app = True
# gunicorn >= 25 opens a control socket at one fixed path per user ($HOME/.gunicorn/gunicorn.ctl)
# that two instances on a host would fight over; nothing here uses it (gunicornc).
control_socket_disable = True

# Prometheus multiprocess mode: every worker writes its samples here and /metrics sums them.
# It must be set before the workers import prometheus_client (they import the app after the fork).
_made_metrics_dir: str | None = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _made_metrics_dir = tempfile.mkdtemp(prefix="waymark-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _made_metrics_dir

_METRIC_FILES = ("counter_*.db", "gauge_*.db", "histogram_*.db", "summary_*.db")


def on_starting(server):  # noqa: ARG001 - gunicorn's hook signature
    # Samples left by an earlier run in a configured directory would be summed in: clear them.
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    for pattern in _METRIC_FILES:
        for stale in directory.glob(pattern):
            stale.unlink(missing_ok=True)


def when_ready(server):  # noqa: ARG001 - gunicorn's hook signature
    # In the preloading master, before the first fork: load matplotlib, fpdf2 and the fonts once,
    # so that no worker's first summary pays for them (bench/first_summary.py). The workers share
    # these pages copy-on-write, and a worker replaced after max_requests starts warm too.
    from api.summaries import render

    render.warm_up()


def pre_fork(server, worker):  # noqa: ARG001 - gunicorn's hook signature
    # Everything the preloaded master holds (the app, its modules, schemas, compiled statements:
    # some 130,000 objects) is long-lived. Frozen, a worker's full collections skip it: one took
    # 67 ms of CPU (a stall for the request that set it off), and it no longer writes to the
    # shared pages, so copy-on-write keeps them shared (Python's gc.freeze documentation).
    gc.freeze()


def post_fork(server, worker):  # noqa: ARG001 - gunicorn's hook signature
    # SQLAlchemy's recipe for forked processes: never share the parent's pooled connections.
    app = server.app.wsgi()  # the app the master preloaded
    db = getattr(app, "extensions", {}).get("db")
    if db is not None:
        db.engine.dispose(close=False)


def child_exit(server, worker):  # noqa: ARG001 - gunicorn's hook signature
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):  # noqa: ARG001 - gunicorn's hook signature
    if _made_metrics_dir:
        shutil.rmtree(_made_metrics_dir, ignore_errors=True)
