"""What each of our layers costs on the floor (`GET /healthz`), in-process: issue 17's "what
stands in the way", measured by taking the layers away one at a time.

    .tools/bin/uv run --frozen python -m bench.floor_layers [--requests 2000] [--batches 15]

Builds the app as a gunicorn worker does (metrics in multiprocess mode, log lines to /dev/null)
several times, each with one layer removed, plus one with all of them removed and the plain app
(bench/plain_app.py), and calls each WSGI callable directly with a prebuilt environ, in batches
that alternate between the variants so that whatever else loads the machine hits all alike. The
figure is CPU microseconds per request (process time), the median over the batches; a layer's
cost is the full app's figure minus the variant's. No database is touched (the floor reads none).

The variants remove the layer from the request path only (a hook unregistered, the view served
without flask-smorest's wrapper); they are measurements, never a configuration of the product.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.checkins_profile import call, environ, stdout_to_devnull


def _hooks(app: Any, module: str) -> list[tuple[str, Any]]:
    """The app-wide hooks whose function is defined in `module` (observability, headers, ...)."""
    found = []
    for kind in ("before_request_funcs", "after_request_funcs", "teardown_request_funcs"):
        for func in getattr(app, kind).get(None, []):
            if getattr(func, "__module__", "") == module:
                found.append((kind, func))
    return found


def _without(app: Any, module: str, names: set[str] | None = None) -> Any:
    for kind, func in _hooks(app, module):
        if names is None or func.__name__ in names:
            getattr(app, kind)[None].remove(func)
    return app


def _plain_healthz(app: Any) -> Any:
    """The same view, answered without flask-smorest's response wrapper (schema dump, headers)."""
    from flask import jsonify

    from api.version import __version__

    def healthz() -> Any:
        return jsonify({"status": "ok", "version": __version__})

    app.view_functions["ops.get_health"] = healthz
    return app


def _silence_http_log(app: Any) -> Any:
    # The request line's logger is bound when the hooks are made; a level above INFO on a copy
    # of structlog's configuration would silence every line, so the logger's method is swapped.
    for _kind, func in _hooks(app, "api.observability"):
        closure = getattr(func, "__closure__", None) or ()
        for cell in closure:
            target = cell.cell_contents
            if hasattr(target, "info") and hasattr(target, "bind"):
                cell.cell_contents = _Quiet()
    return app


class _Quiet:
    def info(self, *_a: Any, **_k: Any) -> None:
        return None

    def inc(self, *_a: Any, **_k: Any) -> None:
        return None

    def observe(self, *_a: Any, **_k: Any) -> None:
        return None


def _no_metrics(app: Any) -> Any:
    """The request counter and latency histogram: their per-label children (kept by the hook
    after a first request) swapped for no-ops."""
    for _kind, func in _hooks(app, "api.observability"):
        for cell in getattr(func, "__closure__", None) or ():
            children = cell.cell_contents
            if isinstance(children, dict) and func.__name__ == "_finish":
                call(app, environ("GET", "/healthz"))
                for key in list(children):
                    children[key] = (_Quiet(), _Quiet())
    return app


VARIANTS: dict[str, Callable[[Any], Any]] = {
    "full": lambda app: app,
    "no observability (request id, metrics, log line)": lambda app: _without(
        app, "api.observability"
    ),
    "no log line": _silence_http_log,
    "no metrics": _no_metrics,
    "no security headers": lambda app: _without(app, "api.headers"),
    "no idempotency hooks": lambda app: _without(app, "api.idempotency"),
    "no body and length checks": lambda app: _without(app, "api", {"_bounded", "_json_only"}),
    "no flask-smorest answer": _plain_healthz,
}


def build(scratch: Path) -> Callable[[], Any]:
    os.environ.update(
        DATABASE_URL=f"sqlite:///{scratch / 'floor.db'}",
        SECRET_KEY="bench-" + "s" * 40,
        WAYMARK_INSTANCE_DIR=str(scratch),
        PROMETHEUS_MULTIPROC_DIR=str(scratch / "metrics"),
    )
    (scratch / "metrics").mkdir(exist_ok=True)
    from api import create_app

    return create_app


def run(opts: argparse.Namespace) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix="waymark-floor-layers-"))
    create_app = build(scratch)
    apps: dict[str, Any] = {}
    with stdout_to_devnull():
        for name, strip in VARIANTS.items():
            apps[name] = strip(create_app())
        bare = create_app()
        for module in ("api.observability", "api.headers", "api.idempotency"):
            _without(bare, module)
        apps["all of them removed"] = _plain_healthz(_without(bare, "api"))
        os.environ.setdefault("SECRET_KEY", "bench-" + "s" * 40)
        import bench.plain_app as plain

        apps["plain app"] = plain.app
        for app in apps.values():  # warm: first-request work, caches
            for _ in range(200):
                assert call(app, environ("GET", "/healthz"))[0] == 200
        samples: dict[str, list[float]] = {name: [] for name in apps}
        names = list(apps)
        for batch in range(opts.batches):
            order = names if batch % 2 == 0 else names[::-1]
            for name in order:
                app = apps[name]
                envs = [environ("GET", "/healthz") for _ in range(opts.requests)]
                started = time.process_time()
                for env in envs:
                    call(app, env)
                samples[name].append((time.process_time() - started) / opts.requests * 1e6)
    full = statistics.median(samples["full"])
    result = {
        name: {
            "us_per_request": round(statistics.median(values), 1),
            "saves_us": round(full - statistics.median(values), 1),
        }
        for name, values in samples.items()
    }
    return {"requests_per_batch": opts.requests, "batches": opts.batches, "variants": result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--batches", type=int, default=15)
    opts = parser.parse_args()
    result = run(opts)
    width = max(map(len, result["variants"]))
    print(f"{'variant':{width}}  us/request  saves us", file=sys.stderr)
    for name, row in result["variants"].items():
        print(f"{name:{width}}  {row['us_per_request']:10}  {row['saves_us']:8}", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
