"""Benchmark: the dashboard's roster with 1,000 consented patients, and a patient page over a year;
the API roster (GET /v1/clinician/patients) the clinic's own dashboard builds on, on the same data.

    .tools/bin/uv run --frozen python -m bench.dashboard [--patients 1000] [--runs 30] [--profile]

On PostgreSQL (BENCH_DATABASE_URL, default the local test server), in a throwaway database made
and dropped here, seeded as bench.summaries does (the demo taper's rows for every patient, one
clinician holding every consent, and a "Year Patient" with 52 weeks of rows). Each page is fetched
through the whole Flask stack (session cookie, gate, ledger and audit writes, template) with a
query counter; the clock is set to the day after the seeded data. The API roster is fetched
with the clinician's bearer token (the audit write, the gate, the notice), page by page as its
cursor allows (it has no sort or search), and 200 a page, the most it serves. Not part of the
test suite. Targets (issue 17): p95 under 300 ms for every page, and the statements per request
the same whatever the page, its size or the number of patients.

Besides wall time it reports this process's CPU time per request (time.process_time: the Flask
stack, the ORM, Jinja; not PostgreSQL's own work), which a machine shared with other work does
not inflate the way it does wall time. --profile prints cProfile's top functions per page.
"""

from __future__ import annotations

import argparse
import gc
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
from bench.first_summary import token_for
from bench.summaries import NOW, BenchConfig, log, seed, throwaway_database


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def settle(engine: Any) -> None:
    """After seeding, before measuring: the database and this process as in service."""
    # Statistics, as a database in service has them: without, the planner guesses until
    # autovacuum's ANALYZE happens to run in the middle of the measurements.
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    # As a gunicorn worker starts (gunicorn.conf.py pre_fork): what this process holds by now
    # (the app, and here the seeding's leftovers) frozen, so a full collection set off by a
    # request does not walk it (unfrozen: 110-220 ms stalls, several in a run of 30 a page).
    gc.collect()
    gc.freeze()


def measure(client: Any, engine: Any, url: str, runs: int) -> dict[str, Any]:
    counts: list[int] = []
    seen: list[str] = []

    def count(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    times, cpu = [], []
    try:
        for _ in range(runs):
            seen.clear()
            started, started_cpu = time.perf_counter(), time.process_time()
            answer = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - started_cpu) * 1000)
            assert answer.status_code == 200, (url, answer.status_code)
            counts.append(len(seen))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return {
        "p50": statistics.median(times),
        "p95": _p95(times),
        "cpu50": statistics.median(cpu),
        "cpu95": _p95(cpu),
        "queries": sorted(set(counts)),
    }


def roster_cursors(client: Any, *, limit: int) -> list[str]:
    """The next_cursor of every page of GET /v1/clinician/patients, in order."""
    cursors: list[str] = []
    url = f"/v1/clinician/patients?limit={limit}"
    while True:
        answer = client.get(url)
        assert answer.status_code == 200, answer.status_code
        cursor = answer.get_json()["next_cursor"]
        if cursor is None:
            return cursors
        cursors.append(cursor)
        url = f"/v1/clinician/patients?limit={limit}&cursor={cursor}"


def api_roster(app: Any, clinician_id: Any, patients: int) -> tuple[Any, dict[str, str]]:
    """A client with the clinician's bearer token, and the API roster's pages to time: the API
    the clinic's own dashboard builds on, pages of `limit` by cursor (it has no sort or search),
    newest consent first."""
    api = app.test_client()
    bearer = token_for(app, clinician_id, role="clinician")
    api.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {bearer}"
    cursors = roster_cursors(api, limit=50)
    tenth = min(8, len(cursors) - 2)  # page 10, or the last but one of a small roster
    return api, {
        f"API roster, page 1 (50 of {patients + 1:,})": "/v1/clinician/patients",
        f"API roster, page {tenth + 2} by cursor": "/v1/clinician/patients?cursor="
        + cursors[tenth],
        f"API roster, last page ({len(cursors) + 1}) by cursor": (
            "/v1/clinician/patients?cursor=" + cursors[-1]
        ),
        "API roster, 200 a page (the most)": "/v1/clinician/patients?limit=200",
    }


def profile(client: Any, url: str, runs: int = 5, top: int = 25) -> None:
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(runs):
        client.get(url)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    log(out.getvalue())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with throwaway_database() as url:
        app = create_app(BenchConfig(url))
        engine = app.extensions["db"].engine
        session = app.extensions["db"].sessionmaker()
        log(f"seeding {args.patients} patients (8 weeks each) and a year patient ...")
        patient, doctor = seed(session, patients=args.patients, clinicians=1, weeks=8)
        session.commit()
        settle(engine)
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
                "roster, most open alerts first": "/clinic/patients?sort=-alerts",
                "roster, longest since check-in first": "/clinic/patients?sort=checkin",
                "roster, lowest 7-day adherence, page 5": "/clinic/patients?sort=adherence&page=5",
                "patient page, 30 days": f"/clinic/patients/{patient['id']}",
                "patient page, a year (365 days)": f"/clinic/patients/{patient['id']}?days=365",
            }
            api, api_pages = api_roster(app, doctor["id"], args.patients)
            for url_path in pages.values():  # warm up (imports, template compilation)
                client.get(url_path)
            for url_path in api_pages.values():
                api.get(url_path)
            load_before = os.getloadavg()
            results = {label: measure(client, engine, p, args.runs) for label, p in pages.items()}
            results |= {label: measure(api, engine, p, args.runs) for label, p in api_pages.items()}
            load_after = os.getloadavg()
            if args.profile:
                for label, url_path in pages.items():
                    log(f"\n## profile: {label}")
                    profile(client, url_path)
                for label, url_path in api_pages.items():
                    log(f"\n## profile: {label}")
                    profile(api, url_path)
        with engine.connect() as conn:
            ledger = conn.execute(sa.text("SELECT count(*) FROM disclosures")).scalar()
        log(
            f"\nload average (1, 5, 15 min) before {', '.join(f'{x:.1f}' for x in load_before)},"
            f" after {', '.join(f'{x:.1f}' for x in load_after)}; {os.cpu_count()} CPUs;"
            f" {args.runs} runs each; ledger rows {ledger}"
        )
        log("| page | p50 ms | p95 ms | CPU p50 ms | CPU p95 ms | queries per request |")
        log("|---|---|---|---|---|---|")
        for label, r in results.items():
            queries = ", ".join(str(q) for q in r["queries"])
            log(
                f"| {label} | {r['p50']:.0f} | {r['p95']:.0f} | {r['cpu50']:.0f}"
                f" | {r['cpu95']:.0f} | {queries} |"
            )
        session.close()
        app.extensions["db"].engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
