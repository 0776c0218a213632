"""Benchmark: GET /v1/agenda for a patient with one and with three years of history.

    .tools/bin/uv run --frozen python -m bench.agenda [--years 3] [--others 500] [--runs 30]

The agenda is the phone's home screen. For each history length, a throwaway PostgreSQL database
(BENCH_DATABASE_URL, default the local test server) is seeded with `--others` patients of 8
weeks each (bench.summaries.seed: the tables hold other people's rows too, as in service) and
one patient with `years` of the demo taper (regimens, doses, check-ins, counseling sessions and
the change feed: bench.first_sync.seed_patient) plus that patient's reminders (the daily
check-in reminder and one per regimen dose time). The patient asks for their agenda through the
whole Flask stack with a bearer token, the clock set to the evening of the last seeded day, with
a query counter. Not part of the test suite.

The endpoint serves one local day (`?date=`, default today); the longest day it can answer is
the 25-hour day the clocks fall back, so that is the long window, beside an ordinary day and
today. Reports wall and CPU (time.process_time: the Flask stack and the ORM, not PostgreSQL's
own work) p50/p95 and the statements per request, which must be the same for 1 and 3 years.
Target (issue 17): p95 under 100 ms on this machine; statements per request independent of the
history.
"""

from __future__ import annotations

import argparse
import os
import uuid
from datetime import UTC, date, datetime
from typing import Any

os.environ.setdefault("SECRET_KEY", "bench-secret-" + "x" * 40)

import sqlalchemy as sa
import time_machine
from sqlalchemy import insert, select

from api import create_app
from bench.dashboard import measure, profile, settle
from bench.first_summary import token_for
from bench.first_sync import seed_patient
from bench.summaries import BenchConfig, log, seed, throwaway_database

# The seeded patient's zone is America/Chicago. The clock is the evening of the last seeded
# day, Sunday 22 November 2026 at 18:00 there, so "today" is a day of the taper with its doses
# (the day after the data, which bench.dashboard uses, has none scheduled: the taper is over).
CLOCK = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
TODAY = date(2026, 11, 22)
DAYS = {
    "today (no date: the home screen, 4 doses)": "",
    "an ordinary day (Fri 2026-11-20, 4 doses)": "?date=2026-11-20",
    "the longest day (Sun 2026-11-01, 25 h, 1 dose)": "?date=2026-11-01",
}


def add_reminders(session: Any, patient_id: uuid.UUID) -> int:
    """The patient's reminders: a daily check-in at 21:00 and one per dose time of each regimen
    (a finished regimen's rules disabled, as the app leaves them)."""
    from api.medications.models import Medication
    from api.reminders.models import ReminderRule

    rows: list[dict[str, Any]] = [
        {"id": uuid.uuid4(), "user_id": patient_id, "kind": "checkin", "local_time": "21:00",
         "timezone": "America/Chicago", "enabled": True},
    ]  # fmt: skip
    for medication in session.scalars(select(Medication).where(Medication.user_id == patient_id)):
        for hhmm in medication.times or ():
            rows.append(
                {"id": uuid.uuid4(), "user_id": patient_id, "kind": "medication",
                 "medication_id": medication.id, "local_time": hhmm,
                 "timezone": medication.schedule_timezone,
                 "enabled": medication.end_date is None or medication.end_date >= TODAY}
            )  # fmt: skip
    session.execute(insert(ReminderRule), rows)
    return len(rows)


def run(years: int, *, others: int, runs: int, with_profile: bool) -> dict[str, Any]:
    with throwaway_database() as url:
        app = create_app(BenchConfig(url))
        engine = app.extensions["db"].engine
        with app.app_context():
            session = app.extensions["db"].sessionmaker()
            log(f"{years} year(s): seeding {others} other patients and the patient ...")
            seed(session, patients=others, clinicians=1, weeks=8)
            # Numbered after the others and seed()'s own year patient.
            patient = seed_patient(session, years=years, number=others + 1)
            reminders = add_reminders(session, patient["id"])
            session.commit()
            rows = {
                t: session.execute(
                    sa.text(f"SELECT count(*) FROM {t} WHERE user_id = :u"), {"u": patient["id"]}
                ).scalar()
                for t in ("medications", "doses", "checkins", "counseling_sessions")
            }
            rows["reminder_rules"] = reminders
            rows["doses (all patients)"] = session.execute(
                sa.text("SELECT count(*) FROM doses")
            ).scalar()
            session.close()
        settle(engine)
        with time_machine.travel(CLOCK, tick=True):
            # Signed in "now", on the travelled clock (a token from the future is refused).
            token = token_for(app, patient["id"], role="patient")
            client = app.test_client()
            client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
            for query in DAYS.values():  # warm up (imports, statement caches)
                client.get("/v1/agenda" + query)
            load_before = os.getloadavg()
            results = {
                label: measure(client, engine, "/v1/agenda" + query, runs)
                for label, query in DAYS.items()
            }
            load_after = os.getloadavg()
            sizes = {
                label: len(client.get("/v1/agenda" + query).get_json()["doses"])
                for label, query in DAYS.items()
            }
            if with_profile:
                for label, query in DAYS.items():
                    log(f"\n## profile: {label}")
                    profile(client, "/v1/agenda" + query)
        engine.dispose()
    return {
        "rows": rows,
        "load": (load_before, load_after),
        "results": results,
        "doses": sizes,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", type=int, default=3)
    parser.add_argument("--others", type=int, default=500)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    histories = sorted({1, args.years})
    out = {
        years: run(years, others=args.others, runs=args.runs, with_profile=args.profile)
        for years in histories
    }
    log(f"\n{os.cpu_count()} CPUs; {args.runs} runs each")
    for years, got in out.items():
        before, after = got["load"]
        log(
            f"{years} year(s): rows {got['rows']}; load average (1, 5, 15 min) before"
            f" {', '.join(f'{x:.1f}' for x in before)}, after"
            f" {', '.join(f'{x:.1f}' for x in after)}"
        )
    log("| history | day | doses | p50 ms | p95 ms | CPU p50 ms | CPU p95 ms | queries |")
    log("|---|---|---|---|---|---|---|---|")
    for years, got in out.items():
        for label, r in got["results"].items():
            queries = ", ".join(str(q) for q in r["queries"])
            log(
                f"| {years} y | {label} | {got['doses'][label]} | {r['p50']:.1f}"
                f" | {r['p95']:.1f} | {r['cpu50']:.1f} | {r['cpu95']:.1f} | {queries} |"
            )
    counts = {
        label: {tuple(got["results"][label]["queries"]) for got in out.values()} for label in DAYS
    }
    grows = [label for label, seen in counts.items() if len(seen) > 1]
    log("queries per request " + ("differ with history: " + ", ".join(grows) if grows else
        "are the same for every history"))  # fmt: skip
    return 1 if grows else 0


if __name__ == "__main__":
    raise SystemExit(main())
