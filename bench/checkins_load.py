"""Check-in write load against a bare JSON floor, both on one gunicorn on PostgreSQL.

Run on demand (not part of the test suite):

    .tools/bin/uv run --frozen python bench/checkins_load.py [--port 8137] [--duration 20]

It creates a throwaway PostgreSQL database, migrates it with Alembic, starts gunicorn with
gunicorn.conf.py (2 workers) on 127.0.0.1, registers a patient and signs in, then drives the
service from this (second) process over loopback:

1. saturated phases (closed loop, --connections at once), alternating floor and check-ins twice
   so that background load on a shared machine hits both alike:
   `GET /healthz` (the floor) and `POST /v1/checkins` (a full SOWS answer set, a new id each);
2. an open-loop phase of check-ins at half the saturated check-in rate, where latency is counted
   from the moment each request was due (so a stall is not hidden by sending later).

Every non-2xx answer or socket error is an error. Prints the figures and a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get("BENCH_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SOWS_KEYS = (
    "anxious", "yawning", "perspiring", "tearing", "runny_nose", "goose_flesh", "shaking",
    "hot_flashes", "cold_flashes", "aches", "restless", "nauseous", "vomiting", "twitching",
    "stomach_cramps", "craving_use",
)  # fmt: skip


# --- the server -------------------------------------------------------------------------------


def create_database() -> tuple[str, Callable[[], None]]:
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    name = f"waymark_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return url, drop


def migrate(url: str) -> None:
    env = {**os.environ, "DATABASE_URL": url}
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )


def start_gunicorn(
    url: str, port: int, workers: int, threads: int, scratch: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": str(workers),
        "GUNICORN_THREADS": str(threads),
        "SECRET_KEY": "bench-" + "s" * 40,
        "WAYMARK_INSTANCE_DIR": str(scratch / "instance"),
        "PROMETHEUS_MULTIPROC_DIR": str(scratch / "metrics"),
        # Worker recycling (5000 requests in production) would restart workers every few seconds
        # at these rates and measure start-up instead of requests.
        "GUNICORN_MAX_REQUESTS": "0",
    }
    (scratch / "metrics").mkdir()
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,  # the app logs one JSON line a request, as in production
        stderr=(scratch / "gunicorn.err").open("wb"),  # read when start-up fails
    )


# --- a lean HTTP/1.1 client (gunicorn's sync workers close every connection) -----------------


def exchange(port: int, payload: bytes) -> int:
    """Send one request, read to the close, return the status code."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(payload)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    head = b"".join(chunks[:1])[:12]
    return int(head[9:12]) if head.startswith(b"HTTP/1.") else 0


def request_bytes(
    method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def call_json(
    port: int, method: str, path: str, body: dict | None = None, headers: dict | None = None
) -> tuple[int, dict]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(
        method, path, body=json.dumps(body) if body is not None else None,
        headers={"Content-Type": "application/json", **(headers or {})},
    )  # fmt: skip
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, json.loads(data) if data else {}


def wait_until_up(port: int, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("gunicorn exited during start-up; see its stderr")
        try:
            if exchange(port, request_bytes("GET", "/healthz")) == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("gunicorn did not answer /healthz in time")


def sign_in(port: int) -> str:
    account = {
        "email": f"bench-{uuid.uuid4().hex[:8]}@example.test",
        "password": "bench password 123",
        "display_name": "Bench",
        "timezone": "America/Chicago",
    }
    status, _ = call_json(port, "POST", "/v1/auth/register", account)
    assert status == 202, status
    status, pair = call_json(
        port, "POST", "/v1/auth/token", {"email": account["email"], "password": account["password"]}
    )
    assert status == 200, status
    return pair["access_token"]


def cpu_seconds(master: int, database: str) -> tuple[float, float]:
    """CPU time (user + system) from /proc: (gunicorn master and workers, PostgreSQL backends
    serving the bench database). Backends that exited during a phase are not counted."""
    ticks = os.sysconf("SC_CLK_TCK")
    app = db = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        pid, ppid = int(entry.name), int(fields[1])
        used = int(fields[11]) + int(fields[12])  # utime, stime
        if master in (pid, ppid):
            app += used
        elif cmdline.startswith(b"postgres: ") and f" {database} ".encode() in cmdline:
            db += used
    return app / ticks, db / ticks


# --- load ------------------------------------------------------------------------------------


def floor_request() -> Callable[[], bytes]:
    payload = request_bytes("GET", "/healthz")
    return lambda: payload


def checkin_request(tokens: list[str], *, with_key: bool = False) -> Callable[[], bytes]:
    recorded = (datetime.now(UTC) - timedelta(minutes=5)).astimezone().isoformat()
    answers = {key: i % 5 for i, key in enumerate(SOWS_KEYS)}
    template = json.dumps(
        {
            "id": "00000000-0000-0000-0000-000000000000",
            "recorded_at": recorded,
            "instrument": "sows",
            "answers": answers,
            "symptoms": {"nausea": 3, "anxiety": 5, "insomnia": 6},
            "craving": 4,
            "sleep_hours": 5.5,
            "note": "Bench check-in: a short note of the kind people write.",
        }
    )
    head, tail = template.split("00000000-0000-0000-0000-000000000000")
    auths = [{"Authorization": f"Bearer {token}"} for token in tokens]
    turn = iter(range(1 << 62))

    def build() -> bytes:
        # Round-robin over the users (one user: every request is theirs).
        auth = auths[next(turn) % len(auths)]
        checkin_id = uuid.uuid4()
        body = f"{head}{checkin_id}{tail}".encode()
        headers = {**auth, "Idempotency-Key": str(checkin_id)} if with_key else auth
        return request_bytes("POST", "/v1/checkins", body, headers)

    return build


@dataclass
class Result:
    name: str
    seconds: float
    latencies: list[float] = field(default_factory=list)  # seconds
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    server_cpu: float | None = None  # seconds of gunicorn CPU during the phase
    db_cpu: float | None = None  # seconds of PostgreSQL backend CPU during the phase

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0

    def _per_request(self, seconds: float | None) -> float | None:
        if seconds is None or not self.latencies:
            return None
        return round(seconds * 1000 / len(self.latencies), 2)

    def summary(self) -> dict[str, float | int | str | None]:
        return {
            "phase": self.name,
            "requests": len(self.latencies),
            "rate_per_s": round(self.rate, 1),
            "p50_ms": round(self.pct(0.50), 2),
            "p99_ms": round(self.pct(0.99), 2),
            "errors": self.errors,
            "server_cpu_ms_per_request": self._per_request(self.server_cpu),
            "db_cpu_ms_per_request": self._per_request(self.db_cpu),
        }


def _record(result: Result, lock: threading.Lock, status: int, latency: float) -> None:
    with lock:
        result.statuses[status] = result.statuses.get(status, 0) + 1
        if 200 <= status < 300:
            result.latencies.append(latency)
        else:
            result.errors += 1


def saturate(
    name: str, port: int, build: Callable[[], bytes], seconds: float, connections: int
) -> Result:
    """Closed loop: `connections` clients, each sends as soon as its answer is in."""
    result, lock = Result(name, seconds), threading.Lock()
    stop_at = time.perf_counter() + seconds

    def client() -> None:
        while True:
            payload = build()
            start = time.perf_counter()
            if start >= stop_at:
                return
            try:
                status = exchange(port, payload)
            except OSError:
                status = 0
            _record(result, lock, status, time.perf_counter() - start)

    threads = [threading.Thread(target=client) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return result


def paced(
    name: str, port: int, build: Callable[[], bytes], *, seconds: float, rate: float, workers: int
) -> Result:
    """Open loop at a fixed rate; latency runs from when a request was due, not when sent."""
    result, lock = Result(name, seconds), threading.Lock()
    interval = 1.0 / rate
    start = time.perf_counter()
    total = int(seconds * rate)
    counter = iter(range(total))
    counter_lock = threading.Lock()

    def client() -> None:
        while True:
            with counter_lock:
                n = next(counter, None)
            if n is None:
                return
            payload = build()
            due = start + n * interval
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            try:
                status = exchange(port, payload)
            except OSError:
                status = 0
            _record(result, lock, status, time.perf_counter() - due)

    threads = [threading.Thread(target=client) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return result


def run(args: argparse.Namespace) -> dict[str, object]:
    scratch = Path(tempfile.mkdtemp(prefix="waymark-bench-"))
    url, drop = create_database()
    database = url.rsplit("/", 1)[1]
    server = None
    try:
        migrate(url)
        server = start_gunicorn(url, args.port, args.workers, args.threads, scratch)
        try:
            wait_until_up(args.port, server)
        except RuntimeError:
            print((scratch / "gunicorn.err").read_text()[-3000:], file=sys.stderr)
            raise
        tokens = [sign_in(args.port) for _ in range(args.users)]
        token = tokens[0]
        floor, checkin = floor_request(), checkin_request(tokens, with_key=args.idempotency_key)

        print(f"warm-up {args.warmup:.0f} s each ...", flush=True)
        saturate("warmup-floor", args.port, floor, args.warmup, args.connections)
        saturate("warmup-checkin", args.port, checkin, args.warmup, args.connections)

        rounds: list[Result] = []
        load_before = os.getloadavg()[0]
        cpu_before = os.times()
        for i in range(args.rounds):
            for name, build in (("floor", floor), ("checkin", checkin)):
                app_start, db_start = cpu_seconds(server.pid, database)
                result = saturate(
                    f"{name}-{i + 1}", args.port, build, args.duration, args.connections
                )
                app_end, db_end = cpu_seconds(server.pid, database)
                result.server_cpu, result.db_cpu = app_end - app_start, db_end - db_start
                rounds.append(result)
                print(json.dumps(result.summary()), flush=True)
        cpu_after = os.times()
        floor_rate = statistics.mean(r.rate for r in rounds if r.name.startswith("floor"))
        checkin_rate = statistics.mean(r.rate for r in rounds if r.name.startswith("checkin"))

        half = paced(
            "checkin-half-rate",
            args.port,
            checkin,
            seconds=args.duration,
            rate=checkin_rate / 2,
            workers=args.connections * 2,
        )
        print(json.dumps(half.summary()), flush=True)

        status, listed = call_json(
            args.port, "GET", "/v1/checkins?limit=1", headers={"Authorization": f"Bearer {token}"}
        )
        assert status == 200 and listed["items"], "check-ins were not stored"
        generator_cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
        summary = {
            "date": datetime.now(UTC).date().isoformat(),
            "cpus": os.cpu_count(),
            "workers": args.workers,
            "threads": args.threads,
            "users": args.users,
            "idempotency_key": args.idempotency_key,
            "connections": args.connections,
            "seconds_per_phase": args.duration,
            "floor_rate_per_s": round(floor_rate, 1),
            "checkin_rate_per_s": round(checkin_rate, 1),
            "ratio": round(checkin_rate / floor_rate, 3),
            "half_rate_target_per_s": round(checkin_rate / 2, 1),
            "half_rate_achieved_per_s": round(half.rate, 1),
            "half_rate_p50_ms": round(half.pct(0.50), 2),
            "half_rate_p99_ms": round(half.pct(0.99), 2),
            "errors": sum(r.errors for r in rounds) + half.errors,
            "loadavg_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "generator_cpu_share": round(
                generator_cpu / (args.duration * len(rounds) * (os.cpu_count() or 1)), 3
            ),
            "phases": [r.summary() for r in [*rounds, half]],
        }
        print("SUMMARY " + json.dumps(summary), flush=True)
        return summary
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        drop()
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8137)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="per worker (gthread when > 1)")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per phase")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2, help="floor/check-in alternations")
    parser.add_argument(
        "--idempotency-key", action="store_true", help="send an Idempotency-Key with each check-in"
    )
    parser.add_argument(
        "--users", type=int, default=1, help="patients writing (round-robin over requests)"
    )
    args = parser.parse_args()
    if not 8100 <= args.port <= 8199:
        parser.error("use a port in 8100-8199")
    run(args)


if __name__ == "__main__":
    main()
