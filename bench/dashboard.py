"""Benchmark: the dashboard's roster with 1,000 consented patients, and a patient page over a year.

    .tools/bin/uv run --frozen python -m bench.dashboard [--patients 1000] [--runs 30]

On PostgreSQL (BENCH_DATABASE_URL, default the local test server), in a throwaway database made
and dropped here, seeded as bench.summaries does (the demo taper's rows for every patient, one
clinician holding every consent, and a "Year Patient" with 52 weeks of rows). Each page is fetched
through the whole Flask stack (session cookie, gate, ledger and audit writes, template) with a
query counter; the clock is set to the day after the seeded data. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

os.environ.setdefault("SECRET_KEY", "bench-secret-" + "x" * 40)

import sqlalchemy as sa
import time_machine
from sqlalchemy import event

from api import create_app
from api.clinic import sessions
from bench.summaries import NOW, BenchConfig, log, seed, throwaway_database


def measure(client: Any, engine: Any, url: str, runs: int) -> dict[str, Any]:
    counts: list[int] = []
    seen: list[str] = []

    def count(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    times = []
    try:
        for _ in range(runs):
            seen.clear()
            started = time.perf_counter()
            answer = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 200, (url, answer.status_code)
            counts.append(len(seen))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    times.sort()
    return {
        "p50": statistics.median(times),
        "p95": times[max(0, round(0.95 * len(times)) - 1)],
        "queries": sorted(set(counts)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    with throwaway_database() as url:
        app = create_app(BenchConfig(url))
        engine = app.extensions["db"].engine
        session = app.extensions["db"].sessionmaker()
        log(f"seeding {args.patients} patients (8 weeks each) and a year patient ...")
        patient, doctor = seed(session, patients=args.patients, clinicians=1, weeks=8)
        with time_machine.travel(NOW, tick=True):
            from api.auth.models import User

            user = session.get(User, doctor["id"])
            token, row = sessions.start(session, user=user, now=NOW)
            token = sessions.promote(session, row=row, now=NOW)
            session.commit()
            app.config["CLINIC_IDLE_TIMEOUT"] = 10**6
            client = app.test_client()
            client.set_cookie("waymark_clinic", token, path="/clinic")
            pages = {
                "roster, page 1 of 20 (50 rows)": "/clinic/patients",
                "roster, page 10, newest consent first": "/clinic/patients?sort=-signed&page=10",
                "roster, search 'patient 9'": "/clinic/patients?q=patient+9",
                "patient page, 30 days": f"/clinic/patients/{patient['id']}",
                "patient page, a year (365 days)": f"/clinic/patients/{patient['id']}?days=365",
            }
            for url_path in pages.values():  # warm up (imports, template compilation)
                client.get(url_path)
            results = {label: measure(client, engine, p, args.runs) for label, p in pages.items()}
        with engine.connect() as conn:
            ledger = conn.execute(sa.text("SELECT count(*) FROM disclosures")).scalar()
        log(f"\nload average {os.getloadavg()[0]:.2f}; {args.runs} runs each; ledger rows {ledger}")
        log("| page | p50 ms | p95 ms | queries per request |")
        log("|---|---|---|---|")
        for label, r in results.items():
            queries = ", ".join(str(q) for q in r["queries"])
            log(f"| {label} | {r['p50']:.0f} | {r['p95']:.0f} | {queries} |")
        session.close()
        app.extensions["db"].engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
