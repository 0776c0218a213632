"""Waymark against a plain Flask app doing the same work (bench/plain_app.py), side by side.

Run on demand (not part of the test suite; needs Debian's `wrk`):

    .tools/bin/uv run --frozen python -m bench.vs_plain [--rounds 3] [--duration 10]

One throwaway PostgreSQL database, migrated with Alembic, is served by two gunicorns with the
same worker model (2 sync workers, no worker recycling): Waymark (gunicorn.conf.py, wsgi:app)
and the plain app. Both verify the same bearer tokens. Each round drives, with wrk and the same
connection count, the floor (`GET /healthz`) and a SOWS check-in (`POST /v1/checkins`, a new id
every request) of each app, in an order that alternates from round to round, so that whatever
else loads the machine hits both alike. CPU per request comes from /proc: the gunicorn master
and workers (app) and the PostgreSQL backends of the bench database (db).

Reports per round and as medians: both ratios (our floor / its floor, our check-in / its
check-in), req/s, CPU ms per request split into app and db, and the CPU ratio (its CPU per
request over ours, app + db: what the rate ratio would be if both were CPU-bound, and steadier
than the rates when other work shares the cores); then p50/p99 of our check-in in an
open loop at half of its saturated rate, and of the plain app's at that same rate (the machine's
floor under ours). Errors (any non-2xx) are counted and fail the run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.checkins_load import (
    ROOT,
    SOWS_KEYS,
    checkin_request,
    cpu_seconds,
    create_database,
    migrate,
    paced,
    sign_in,
    start_gunicorn,
    wait_until_up,
)

SECRET = "bench-" + "s" * 40  # what start_gunicorn gives Waymark; the plain app checks the same

_LUA = r"""
local counter = 1
local threads = {}
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end
function init(args)
  math.randomseed(os.time() * 1000 + tid * 7919)
  token = args[1]
  head = args[2]
  tail = args[3]
end
local function uuid4()
  return (string.gsub("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx", "[xy]", function(c)
    local v = (c == "x") and math.random(0, 15) or math.random(8, 11)
    return string.format("%x", v)
  end))
end
function request()
  return wrk.format("POST", "/v1/checkins", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. token,
  }, head .. uuid4() .. tail)
end
"""


def start_plain(url: str, port: int, workers: int, scratch: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": SECRET}
    return subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "--workers", str(workers),
            "--bind", f"127.0.0.1:{port}", "--keep-alive", "5", "--max-requests", "0",
            "--log-level", "warning", "bench.plain_app:app",
        ],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
        stderr=(scratch / "plain.err").open("wb"),
    )  # fmt: skip


def checkin_body_parts() -> tuple[str, str]:
    recorded = (datetime.now(UTC) - timedelta(minutes=5)).astimezone().isoformat()
    body = json.dumps(
        {
            "id": "@ID@",
            "recorded_at": recorded,
            "instrument": "sows",
            "answers": {key: i % 5 for i, key in enumerate(SOWS_KEYS)},
            "symptoms": {"nausea": 3, "anxiety": 5, "insomnia": 6},
            "craving": 4,
            "sleep_hours": 5.5,
            "note": "Bench check-in: a short note of the kind people write.",
        }
    )
    head, tail = body.split("@ID@")
    return head, tail


def wrk(
    port: int, *, path: str, seconds: float, connections: int, script: Path | None, args: list[str]
) -> dict:
    cmd = [
        "wrk",
        "-t",
        "2",
        "-c",
        str(connections),
        "-d",
        f"{max(1, round(seconds))}s",
        "--latency",
    ]
    if script is not None:
        cmd += ["-s", str(script)]
    cmd.append(f"http://127.0.0.1:{port}{path}")
    if args:
        cmd += ["--", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read \d+, write (\d+), timeout (\d+)", out
    )
    errors = int(bad.group(1)) if bad else 0
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return {"requests": requests, "rate": rate, "errors": errors}


# The tables a check-in phase grows (bench/plain_app.py writes the same two).
_GROWN = ("checkins", "changes")


def _sql(url: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(
        url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
    ) as conn:
        for statement in statements:
            conn.execute(statement)


def quiet_autovacuum(url: str) -> None:
    """No autovacuum on the grown tables during the bench; settle() vacuums between phases."""
    _sql(url, *(f"ALTER TABLE {t} SET (autovacuum_enabled = off)" for t in _GROWN))


def settle(url: str) -> None:
    """After a check-in phase, outside the measured window: vacuum what it wrote, so that a
    vacuum of one app's thousands of inserts never runs during the next phase, beside the
    other app's workers on the same two cores, and bills that app for it."""
    _sql(url, f"VACUUM (ANALYZE) {', '.join(_GROWN)}")


def phase(
    name: str, *, master: int, database: str, port: int, path: str, opts: argparse.Namespace,
    script: Path | None = None, script_args: list[str] | None = None,
    then_settle: str | None = None,
) -> dict:  # fmt: skip
    app0, db0 = cpu_seconds(master, database)
    result = wrk(
        port, path=path, seconds=opts.duration, connections=opts.connections, script=script,
        args=script_args or [],
    )  # fmt: skip
    app1, db1 = cpu_seconds(master, database)
    if then_settle is not None:
        settle(then_settle)
    n = max(result["requests"], 1)
    result.update(
        name=name,
        app_cpu_ms=round((app1 - app0) * 1000 / n, 3),
        db_cpu_ms=round((db1 - db0) * 1000 / n, 3),
    )
    return result


def cpu_ratios(got: dict[str, dict]) -> dict[str, float]:
    """The plain app's CPU per request (app + PostgreSQL) over ours, per kind: the throughput
    ratio the two would reach on a machine where both are CPU-bound, and far steadier than the
    rates when other work shares the cores."""

    def cpu(key: str) -> float:
        return float(got[key]["app_cpu_ms"] + got[key]["db_cpu_ms"])

    return {
        kind: round(cpu(f"plain-{kind}") / max(cpu(f"waymark-{kind}"), 1e-9), 3)
        for kind in ("floor", "checkin")
    }


def half_rate(opts: argparse.Namespace, token: str, *, rate: float) -> dict:
    """Our check-in in an open loop at half its saturated rate (the p99 target), then the plain
    app at the same rate with the same client: its p99 is what this machine, its disk (each
    commit waits for the WAL flush) and the Python load generator give a request that does next
    to nothing more, the floor under ours."""
    got: dict = {"errors": 0}
    for app, port in (("", opts.port), ("plain_", opts.port + 1)):
        result = paced(
            f"{app or 'waymark_'}checkin-half-rate", port, checkin_request([token]),
            seconds=opts.duration, rate=rate, workers=opts.connections * 2,
        )  # fmt: skip
        got[f"{app}half_rate_per_s"] = round(result.rate, 1)
        got[f"{app}half_rate_p50_ms"] = round(result.pct(0.50), 2)
        got[f"{app}half_rate_p99_ms"] = round(result.pct(0.99), 2)
        got["errors"] += result.errors
    return got


def run(opts: argparse.Namespace) -> dict:
    if shutil.which("wrk") is None:
        sys.exit("bench.vs_plain needs wrk (apt-get install wrk)")
    scratch = Path(tempfile.mkdtemp(prefix="waymark-vs-plain-"))
    url, drop = create_database()
    database = url.rsplit("/", 1)[1]
    ours = plain = None
    try:
        migrate(url)
        quiet_autovacuum(url)
        ours = start_gunicorn(url, opts.port, opts.workers, 1, scratch)
        plain = start_plain(url, opts.port + 1, opts.workers, scratch)
        wait_until_up(opts.port, ours)
        wait_until_up(opts.port + 1, plain)
        token = sign_in(opts.port)
        head, tail = checkin_body_parts()
        script = scratch / "checkin.lua"
        script.write_text(_LUA)
        servers = {"waymark": (ours, opts.port), "plain": (plain, opts.port + 1)}

        def one(app: str, kind: str, seconds: float | None = None) -> dict:
            proc, port = servers[app]
            o = (
                opts
                if seconds is None
                else argparse.Namespace(**{**vars(opts), "duration": seconds})
            )
            if kind == "floor":
                return phase(
                f"{app}-floor", master=proc.pid, database=database, port=port, path="/healthz",
                opts=o,
            )  # fmt: skip
            return phase(
                f"{app}-checkin", master=proc.pid, database=database, port=port,
                path="/v1/checkins", opts=o, script=script, script_args=[token, head, tail],
                then_settle=url,
            )  # fmt: skip

        for app in servers:  # warm both: imports, connection pools, caches
            for kind in ("floor", "checkin"):
                one(app, kind, seconds=opts.warmup)

        load_before = os.getloadavg()[0]
        rounds = []
        for i in range(opts.rounds):
            order = ["plain", "waymark"] if i % 2 == 0 else ["waymark", "plain"]
            got = {}
            for kind in ("floor", "checkin"):
                for app in order:
                    got[f"{app}-{kind}"] = one(app, kind)
            row = {
                "round": i + 1,
                "floor_ratio": round(got["waymark-floor"]["rate"] / got["plain-floor"]["rate"], 3),
                "checkin_ratio": round(
                    got["waymark-checkin"]["rate"] / got["plain-checkin"]["rate"], 3
                ),
                "cpu_ratio": cpu_ratios(got),
                "phases": got,
            }
            rounds.append(row)
            print(json.dumps(row), flush=True)

        def med(key: str, field: str) -> float:
            return round(statistics.median(r["phases"][key][field] for r in rounds), 3)

        half = half_rate(opts, token, rate=med("waymark-checkin", "rate") / 2)
        errors = sum(p["errors"] for r in rounds for p in r["phases"].values()) + half["errors"]
        summary = {
            "date": datetime.now(UTC).date().isoformat(),
            "cpus": os.cpu_count(),
            "workers": opts.workers,
            "connections": opts.connections,
            "seconds_per_phase": opts.duration,
            "rounds": opts.rounds,
            "floor_ratio_median": round(statistics.median(r["floor_ratio"] for r in rounds), 3),
            "checkin_ratio_median": round(statistics.median(r["checkin_ratio"] for r in rounds), 3),
            "cpu_ratio_median": {
                kind: round(statistics.median(r["cpu_ratio"][kind] for r in rounds), 3)
                for kind in ("floor", "checkin")
            },
            "rate_per_s": {k: med(k, "rate") for k in rounds[0]["phases"]},
            "app_cpu_ms_per_request": {k: med(k, "app_cpu_ms") for k in rounds[0]["phases"]},
            "db_cpu_ms_per_request": {k: med(k, "db_cpu_ms") for k in rounds[0]["phases"]},
            **{k: v for k, v in half.items() if k != "errors"},
            "errors": errors,
            "loadavg_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        }
        print("SUMMARY " + json.dumps(summary), flush=True)
        if errors:
            sys.exit(f"{errors} errors")
        return summary
    finally:
        for proc in (ours, plain):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
        time.sleep(0.5)
        drop()
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8140, help="Waymark's; the plain app: +1")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
