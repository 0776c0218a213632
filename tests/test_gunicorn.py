"""gunicorn.conf.py with two workers: /metrics sums the samples of every worker.

Starts a real gunicorn on 127.0.0.1 (a free port in 8500-8599) against a throwaway SQLite and
instance directory; stopped (the whole process group) when the test ends.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from tests.livesite import bound_socket

ROOT = Path(__file__).resolve().parent.parent
PORTS = range(8500, 8600)


METRICS_TOKEN = "gunicorn-test-scraper-token"


def _get(url: str) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {METRICS_TOKEN}"} if url.endswith("/metrics") else {}
    try:
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 - loopback only
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback only
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _sample(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} missing from /metrics"
    return float(match.group(1))


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    listener = bound_socket(PORTS)
    if listener is None:
        pytest.skip(f"no free port in {PORTS}")
    port = listener.getsockname()[1]
    env = {
        **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
        "BIND": f"fd://{listener.fileno()}",
        "WEB_CONCURRENCY": "2",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'gunicorn.sqlite3'}",
        "WAYMARK_INSTANCE_DIR": str(tmp_path / "instance"),
        "TMPDIR": str(tmp_path),  # where gunicorn.conf.py makes its metrics directory
        "LOG_LEVEL": "WARNING",
        "METRICS_TOKEN": METRICS_TOKEN,
    }
    gunicorn_bin = Path(sys.executable).with_name("gunicorn")
    process = subprocess.Popen(  # noqa: S603 - fixed arguments
        [str(gunicorn_bin), "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=env,
        pass_fds=(listener.fileno(),),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if _get(base + "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                stderr = process.stderr.read().decode() if process.stderr else ""
                pytest.fail(f"gunicorn did not start:\n{stderr[-2000:]}")
            time.sleep(0.2)
        yield base, tmp_path
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if process.stderr:
            process.stderr.close()
        listener.close()


HEALTHZ = {"method": "GET", "route": "/healthz", "status": "200"}


def _per_worker(metrics_dir: Path, scratch: Path) -> list[float]:
    """The /healthz count in each worker's own file, read apart from the others."""
    counts = []
    for i, path in enumerate(sorted(metrics_dir.glob("counter_*.db"))):
        alone = scratch / f"worker-{i}"
        alone.mkdir(parents=True)
        shutil.copy(path, alone)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))
        counts.append(registry.get_sample_value("waymark_http_requests_total", HEALTHZ) or 0.0)
    return counts


@pytest.mark.slow
def test_metrics_sum_over_two_gunicorn_workers(gunicorn: tuple[str, Path]) -> None:
    base, tmp_path = gunicorn
    [metrics_dir] = list(tmp_path.glob("waymark-metrics-*"))  # made by gunicorn.conf.py
    # Until both workers have served /healthz, keep asking (the kernel picks the worker).
    deadline = time.monotonic() + 30

    def both_served() -> bool:
        counts = _per_worker(metrics_dir, tmp_path / f"probe-{time.monotonic_ns()}")
        return len(counts) == 2 and min(counts) > 0  # one worker alone has only one file

    while not both_served():
        assert time.monotonic() < deadline, "the second worker never answered"
        assert _get(base + "/healthz")[0] == 200

    name = 'waymark_http_requests_total{method="GET",route="/healthz",status="200"}'
    count = 'waymark_http_request_duration_seconds_count{method="GET",route="/healthz"}'
    before = _sample(_get(base + "/metrics")[1], name)
    for _ in range(30):
        assert _get(base + "/healthz")[0] == 200
    per_worker = _per_worker(metrics_dir, tmp_path / "final")
    assert len(per_worker) == 2 and min(per_worker) > 0
    assert sum(per_worker) == before + 30
    for _ in range(6):  # whichever worker answers /metrics, it reports the sum of both
        status, text = _get(base + "/metrics")
        assert status == 200
        assert _sample(text, name) == sum(per_worker)
        assert _sample(text, count) == sum(per_worker)
        assert "/metrics" not in re.sub(r"^#.*$", "", text, flags=re.MULTILINE)


@pytest.mark.slow
def test_gunicorn_stops_and_cleans_up_its_metrics_directory(tmp_path: Path) -> None:
    # The directory gunicorn.conf.py made is removed on exit (a fresh one on every start).
    env = {
        **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
        "TMPDIR": str(tmp_path),
    }
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            "import runpy, os; ns = runpy.run_path('gunicorn.conf.py');"
            "d = os.environ['PROMETHEUS_MULTIPROC_DIR']; assert os.path.isdir(d);"
            "open(os.path.join(d, 'counter_1.db'), 'w').close();"
            "ns['on_starting'](None); assert os.listdir(d) == [];"
            "ns['on_exit'](None); assert not os.path.exists(d); print('ok')",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.stdout.strip() == "ok", check.stderr


def test_the_master_freezes_its_objects_before_each_fork(tmp_path: Path) -> None:
    # A worker's full collections then skip the preloaded app (and leave its pages shared).
    env = {
        **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
        "TMPDIR": str(tmp_path),
    }
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            "import gc, runpy; ns = runpy.run_path('gunicorn.conf.py');"
            "assert gc.get_freeze_count() == 0; ns['pre_fork'](None, None);"
            "assert gc.get_freeze_count() > 0; ns['on_exit'](None); print('ok')",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.stdout.strip() == "ok", check.stderr
