"""Export benchmark (on demand, not in the suite): `python -m bench.export` or `make bench`.

1. Own export of a user with 3 years of daily data (~1,100 check-ins, ~3,000 doses) in each
   format: must stream in < 3 s.
2. The same for a user with 10x the data, each run in its own subprocess: peak memory (RSS and
   tracemalloc) must rise by < 50 MB over the smaller user.
3. Bulk export of 10,000 patients (admin, every type) in the scheduler's job: >= 20,000
   resources written per second.

Runs on a throwaway PostgreSQL database (created and dropped here). Data is inserted with Core
bulk inserts for whichever features are present (api/export/seed.py lists them).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SECRET_KEY", "bench-secret-" + "x" * 40)

PG_BASE = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _app(url: str, export_dir: str) -> Any:
    from api import create_app
    from api.config import Config

    config = Config()
    config.DATABASE_URL = url
    config.EXPORT_DIR = export_dir
    config.EXPORT_RATE_LIMIT = 10_000
    config.LOG_LEVEL = "WARNING"
    return create_app(config)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_own(url: str, user_id: str, fmt: str) -> dict[str, Any]:
    """One own export through the WSGI app (auth, rate limit, streaming), drained in chunks."""
    from api.auth.models import AuthSession
    from api.security import issue_access_token

    app = _app(url, "/tmp/waymark-bench-exports")  # noqa: S108 - a throwaway bench folder
    now = datetime.now(UTC)
    with app.app_context():
        session = app.extensions["db"].sessionmaker()
        login = AuthSession(user_id=uuid.UUID(user_id), created_at=now)
        session.add(login)
        session.commit()
        token = issue_access_token(
            user_id=uuid.UUID(user_id), role="patient", session_id=login.id, now=now, ttl=600
        )
        session.close()
    client = app.test_client()

    def drain() -> tuple[float, int]:
        started = time.perf_counter()
        resp = client.get(
            f"/v1/export?format={fmt}",
            headers={"Authorization": f"Bearer {token}"},
            buffered=False,
        )
        assert resp.status_code == 200, resp.status_code
        total = sum(len(chunk) for chunk in resp.response)
        resp.close()
        return time.perf_counter() - started, total

    rss_before = _rss_mb()
    seconds, total = drain()  # timed, without tracemalloc's overhead
    rss_peak = _rss_mb()
    tracemalloc.start()
    drain()
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        "format": fmt,
        "seconds": round(seconds, 3),
        "bytes": total,
        "rss_before_mb": round(rss_before, 1),
        "peak_rss_mb": round(rss_peak, 1),
        "tracemalloc_peak_mb": round(traced_peak / 2**20, 2),
    }


def run_bulk(url: str, admin_id: str) -> dict[str, Any]:
    """One admin bulk export of everything, run as the scheduler runs it."""
    from api.export.models import ExportJob
    from api.export.services import bulk_types
    from jobs import bulk_export

    export_dir = f"/tmp/waymark-bench-bulk-{uuid.uuid4().hex[:8]}"  # noqa: S108
    app = _app(url, export_dir)
    with app.app_context():
        session = app.extensions["db"].sessionmaker()
        session.add(
            ExportJob(
                requester_id=uuid.UUID(admin_id),
                types=bulk_types(),
                request_url="bench",
                created_at=datetime.now(UTC),
            )
        )
        session.commit()
        started = time.perf_counter()
        job = bulk_export.run_next_export(
            session,
            now=datetime.now(UTC),
            export_dir=export_dir,
            base_url=app.config["FHIR_BASE_URL"],
            ttl=600,
        )
        session.commit()
        seconds = time.perf_counter() - started
        output = (job.output if job is not None else None) or []
        session.close()
    count = sum(o["count"] for o in output)
    size = sum(p.stat().st_size for p in Path(export_dir).rglob("*.ndjson"))
    subprocess.run(["rm", "-rf", export_dir], check=True)
    return {
        "seconds": round(seconds, 2),
        "resources": count,
        "per_type": {o["type"]: o["count"] for o in output},
        "resources_per_second": round(count / seconds),
        "mb_written": round(size / 2**20, 1),
        "peak_rss_mb": round(_rss_mb(), 1),
    }


def _subprocess(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.export", *args],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{args[0]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    from bench import seed

    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--keep", action="store_true", help="keep the throwaway database")
    args = parser.parse_args()

    name = f"waymark_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_BASE, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = make_url(PG_BASE).set(database=name).render_as_string(hide_password=False)
    try:
        seed.migrate(url)
        started = time.perf_counter()
        ids = seed.seed_all(url, patients=args.patients)
        print(f"seeded in {time.perf_counter() - started:.1f}s: {ids['summary']}", flush=True)
        if args.keep:
            print(f"kept: {url} small={ids['small']} large={ids['large']} admin={ids['admin']}")
        results: dict[str, Any] = {"features": ids["features"], "seed": ids["summary"]}
        for fmt in ("json", "csv", "fhir"):
            small = _subprocess("own", url, ids["small"], fmt)
            large = _subprocess("own", url, ids["large"], fmt)
            results[f"own_{fmt}"] = {"small (1x)": small, "large (10x)": large}
            print(f"own {fmt}: 1x {small}\n          10x {large}", flush=True)
        bulk = _subprocess("bulk", url, ids["admin"])
        results["bulk"] = bulk
        print(f"bulk: {bulk}", flush=True)
        print(json.dumps(results, indent=2))
    finally:
        if not args.keep:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "own":
        print(json.dumps(run_own(sys.argv[2], sys.argv[3], sys.argv[4])))
    elif len(sys.argv) > 1 and sys.argv[1] == "bulk":
        print(json.dumps(run_bulk(sys.argv[2], sys.argv[3])))
    else:
        main()
