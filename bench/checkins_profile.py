"""CPU per request of `POST /v1/checkins` and `GET /healthz`, in-process, on PostgreSQL.

Run on demand (not part of the test suite):

    .tools/bin/uv run --frozen python bench/checkins_profile.py [--plain] [--requests 500]
        [--batches 8] [--sample | --profile] [--floor]

It creates a throwaway PostgreSQL database, migrates it, builds the app as gunicorn's workers
do (`create_app()` from the environment) and calls the WSGI callable directly with a prebuilt
environ: no HTTP server and no Flask test client, so what is timed is the app's own work. The
app's log lines go to /dev/null, as in the load bench. Prints app CPU ms per request (this
process) and PostgreSQL backend CPU ms per request (from /proc), for the least disturbed batch
and the mean. `--plain` measures bench/plain_app.py in the same process, batch by batch
alternating with Waymark (issue 17's yardstick, in-process: what gunicorn, the kernel and the
load generator add is left out). Over the check-ins (`--floor`: the floor), `--sample`
adds a sampling profile on CPU time (inclusive and self share per function, self share per
package) and `--profile` a cProfile run on CPU time (it inflates code that makes many small
calls; the sampling profile does not).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.checkins_load import SOWS_KEYS, create_database, migrate


@contextlib.contextmanager
def stdout_to_devnull() -> Iterator[None]:
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(devnull)
        os.close(saved)


def environ(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None):
    env = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if body:
        env["CONTENT_TYPE"] = "application/json"
        env["CONTENT_LENGTH"] = str(len(body))
    for name, value in (headers or {}).items():
        env["HTTP_" + name.upper().replace("-", "_")] = value
    return env


def call(app: Callable, env: dict) -> tuple[int, bytes]:
    status: list[str] = []

    def start_response(s: str, _headers: list, _exc: object = None) -> None:
        status.append(s)

    chunks = app(env, start_response)
    try:
        body = b"".join(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close:
            close()
    return int(status[0][:3]), body


def backend_cpu(database: str) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    used = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            if not (cmdline.startswith(b"postgres: ") and f" {database} ".encode() in cmdline):
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used += int(fields[11]) + int(fields[12])
    return used / ticks


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="per batch")
    parser.add_argument("--batches", type=int, default=8, help="per app and phase")
    parser.add_argument(
        "--plain", action="store_true", help="measure bench/plain_app.py beside, batch by batch"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the check-ins (CPU)")
    parser.add_argument(
        "--sample", action="store_true", help="sample the stack on CPU time (ITIMER_PROF)"
    )
    parser.add_argument("--floor", action="store_true", help="profile the floor, not check-ins")
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument("--sort", default="tottime", help="cProfile sort key")
    parser.add_argument("--key", action="store_true", help="send an Idempotency-Key")
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() after start-up")
    parser.add_argument("--gc-stats", action="store_true", help="time the garbage collector")
    return parser.parse_args()


def build_app(url: str, scratch: Path) -> Callable:
    os.environ.update(
        DATABASE_URL=url,
        SECRET_KEY="bench-" + "s" * 40,
        WAYMARK_INSTANCE_DIR=str(scratch),
        ARGON2_MEMORY_KIB="1024",
        ARGON2_TIME_COST="1",
        # Metrics in multiprocess mode, as under gunicorn (bench/checkins_load.py).
        PROMETHEUS_MULTIPROC_DIR=str(scratch / "metrics"),
    )
    (scratch / "metrics").mkdir()
    from api import create_app

    return create_app()


def measure(
    apps: dict[str, Callable],
    database: str,
    phases: list[tuple[str, Callable[[], dict], int]],
    n: int,
    batches: int,
) -> dict[str, list[tuple[float, float]]]:
    """Per app and phase: (app CPU ms, PostgreSQL backend CPU ms) per request, after a warm-up,
    for the batch of `n` requests with the least app CPU of `batches` (the least disturbed by
    the rest of the machine). Apps alternate batch by batch, so load hits them alike."""
    results: dict[str, list[tuple[float, float]]] = {}
    for name, make, expect in phases:
        for app in apps.values():
            for _ in range(300):
                call(app, make())
        for _ in range(batches):
            for label, app in apps.items():
                envs = [make() for _ in range(n)]
                db0, cpu0 = backend_cpu(database), time.process_time()
                for env in envs:
                    status, body = call(app, env)
                    if status != expect:
                        raise SystemExit(f"{label} {name}: {status} {body[:300]!r}")
                cpu1, db1 = time.process_time(), backend_cpu(database)
                results.setdefault(f"{label}-{name}", []).append(
                    (round((cpu1 - cpu0) * 1000 / n, 4), round((db1 - db0) * 1000 / n, 4))
                )
    return {key: [min(got), _mean(got)] for key, got in results.items()}


def _mean(got: list[tuple[float, float]]) -> tuple[float, float]:
    return (
        round(sum(a for a, _ in got) / len(got), 4),
        round(sum(d for _, d in got) / len(got), 4),
    )


def cprofile(work: Callable[[], object], sort: str, top: int) -> str:
    profiler = cProfile.Profile(time.process_time)  # CPU time: waiting on the socket is free
    profiler.enable()
    work()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats(sort).print_stats(top)
    return out.getvalue()


def main() -> None:
    args = parse_args()
    url, drop = create_database()
    database = url.rsplit("/", 1)[1]
    scratch = Path(tempfile.mkdtemp(prefix="waymark-profile-"))
    try:
        migrate(url)
        app = build_app(url, scratch)
        with stdout_to_devnull():
            auth = {"Authorization": f"Bearer {sign_in(app)}"}
        if args.gc_freeze:
            import gc

            gc.collect()
            gc.freeze()
        gc_time = watch_gc() if args.gc_stats else None
        template = checkin_template()

        def checkin_env() -> dict:
            checkin_id = str(uuid.uuid4())
            body = template.replace("00000000-0000-0000-0000-000000000000", checkin_id).encode()
            headers = {**auth, "Idempotency-Key": checkin_id} if args.key else auth
            return environ("POST", "/v1/checkins", body, headers)

        def floor_env() -> dict:
            return environ("GET", "/healthz")

        phases = [("floor", floor_env, 200), ("checkin", checkin_env, 201)]
        apps = {"waymark": app}
        if args.plain:
            import bench.plain_app as plain  # reads DATABASE_URL and SECRET_KEY: set above

            apps["plain"] = plain.app
        profile_text = ""
        with stdout_to_devnull():
            results = measure(apps, database, phases, args.requests, args.batches)
            if args.sample or args.profile:
                make = floor_env if args.floor else checkin_env
                envs = [make() for _ in range(args.requests * args.batches)]
                work = lambda: [call(app, env) for env in envs]  # noqa: E731
                if args.sample:
                    profile_text = sample(work, args.top)
                else:
                    profile_text = cprofile(work, args.sort, args.top)
        print("CPU ms per request (app, PostgreSQL): least disturbed batch; mean", file=sys.stderr)
        for key, (least, mean) in results.items():
            print(f"  {key:16} {least}  mean {mean}", file=sys.stderr)
        if args.plain:
            ratios = {
                kind: round(
                    sum(results[f"plain-{kind}"][0]) / sum(results[f"waymark-{kind}"][0]), 3
                )
                for kind in ("floor", "checkin")
            }
            print("plain / waymark, app + PostgreSQL CPU: " + json.dumps(ratios), file=sys.stderr)
        if gc_time is not None:
            print(json.dumps({"gc": gc_time}), file=sys.stderr)
        if profile_text:
            print(profile_text, file=sys.stderr)
        app.extensions["db"].engine.dispose()  # type: ignore[attr-defined]
    finally:
        drop()
        shutil.rmtree(scratch, ignore_errors=True)


def watch_gc() -> dict[str, float]:
    """CPU seconds spent in the collector per generation, and the number of runs."""
    import gc

    totals: dict[str, float] = {}
    started: list[float] = []

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(time.process_time())
        elif started:
            gen = str(info["generation"])
            totals[gen] = totals.get(gen, 0.0) + time.process_time() - started.pop()
            totals["runs_" + gen] = totals.get("runs_" + gen, 0) + 1

    gc.callbacks.append(callback)
    return totals


def sample(work: Callable[[], object], top: int, interval: float = 0.0005) -> str:
    """A sampling profile on CPU time: every `interval` s of CPU, note the stack. Inclusive
    share per function (counted once per sample) and self share per function."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0

    def name(frame: object) -> str:
        code = frame.f_code  # type: ignore[attr-defined]
        path = code.co_filename.replace(str(Path(__file__).resolve().parent.parent) + "/", "")
        path = path.split("site-packages/")[-1]
        return f"{path}:{code.co_firstlineno}({code.co_name})"

    def handler(_signum: int, frame: object) -> None:
        nonlocal total
        total += 1
        seen = set()
        first = True
        while frame is not None:
            label = name(frame)
            if first:
                own[label] = own.get(label, 0) + 1
                first = False
            if label not in seen:
                seen.add(label)
                inclusive[label] = inclusive.get(label, 0) + 1
            frame = frame.f_back  # type: ignore[attr-defined]

    import signal

    signal.signal(signal.SIGPROF, handler)
    signal.setitimer(signal.ITIMER_PROF, interval, interval)
    try:
        work()
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
    lines = [f"{total} samples; inclusive %:"]
    for label, n in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{100 * n / total:6.1f}  {label}")
    packages: dict[str, int] = {}
    for label, n in own.items():
        top_name = label.split("/")[0].split(":")[0] if not label.startswith("/") else "stdlib"
        packages[top_name] = packages.get(top_name, 0) + n
    lines.append("self % by package:")
    for label, n in sorted(packages.items(), key=lambda kv: -kv[1]):
        lines.append(f"{100 * n / total:6.1f}  {label}")
    lines.append("self %:")
    for label, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{100 * n / total:6.1f}  {label}")
    return "\n".join(lines)


def checkin_template() -> str:
    from datetime import UTC, datetime, timedelta

    recorded = (datetime.now(UTC) - timedelta(minutes=5)).astimezone().isoformat()
    return json.dumps(
        {
            "id": "00000000-0000-0000-0000-000000000000",
            "recorded_at": recorded,
            "instrument": "sows",
            "answers": {key: i % 5 for i, key in enumerate(SOWS_KEYS)},
            "symptoms": {"nausea": 3, "anxiety": 5, "insomnia": 6},
            "craving": 4,
            "sleep_hours": 5.5,
            "note": "Bench check-in: a short note of the kind people write.",
        }
    )


def sign_in(app: Callable) -> str:
    account = {
        "email": f"profile-{uuid.uuid4().hex[:8]}@example.test",
        "password": "bench password 123",
        "display_name": "Bench",
        "timezone": "America/Chicago",
    }
    status, _ = call(app, environ("POST", "/v1/auth/register", json.dumps(account).encode()))
    assert status == 202, status
    login = {"email": account["email"], "password": account["password"]}
    status, body = call(app, environ("POST", "/v1/auth/token", json.dumps(login).encode()))
    assert status == 200, (status, body)
    return json.loads(body)["access_token"]


if __name__ == "__main__":
    main()
