"""A new phone's first sync: three years of daily data, page by page, timed, memory watched.

    .tools/bin/uv run --frozen python -m bench.first_sync [--years 3] [--limit 500]

Seeds a throwaway PostgreSQL database with one patient and `--years` of the demo taper's rows
(a check-in a day, the regimen's doses, counseling sessions; tests/support/demo.py), with the
change feed that their creation wrote, then follows GET /v1/sync through the Flask stack from no
cursor until has_more is false, as the app does on a new phone. Reports the pages, the changes,
the wall time with the CPU time it took here (app) and in PostgreSQL's backend (db; on a loaded
machine the wall time is mostly waiting for a core), and the Python heap's peak for one page
(tracemalloc, on a separate pass), for the full history and for one year of it: the peak must
not grow with the history.
Target (issue 17): under 2 s for 3 years, memory bounded by the page size.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import insert

from bench.checkins_load import cpu_seconds
from bench.first_summary import token_for
from bench.summaries import DATA_END, BenchConfig, _user, throwaway_database
from tests.support.demo import generate_demo
from tests.support.demo_seed import demo_rows, insert_rows

FEED = {  # table -> the sync feed's entity type
    "checkins": "checkin",
    "medications": "medication",
    "doses": "dose",
    "counseling_sessions": "counseling_session",
}


def seed_patient(session: Any, *, years: int, number: int = 0) -> dict[str, Any]:
    """The patient (patient<number>@bench.invalid) with `years` of rows and its change feed."""
    from api.auth.models import User

    weeks = 52 * years
    demo = generate_demo(
        seed=11, start=DATA_END - timedelta(weeks=weeks), timezone="America/Chicago",
        lead_in_weeks=weeks - 6,
    )  # fmt: skip
    patient = _user("patient", number, demo.timezone, "$argon2id$v=19$m=1024,t=1,p=1$x$" + "A" * 43)
    session.execute(insert(User), [patient])
    created = datetime.now(UTC) - timedelta(weeks=weeks + 1)
    insert_rows(session, demo_rows(demo, patient_id=patient["id"], created_at=created))
    # The feed rows each create wrote, in the order the rows were made.
    for table, entity in FEED.items():
        owner = "user_id"
        order = "created_at" if table != "doses" else "scheduled_for"
        session.execute(
            sa.text(
                f"INSERT INTO changes (user_id, entity_type, entity_id, op, changed_at) "
                f"SELECT {owner}, :entity, id, 'upsert', now() FROM {table} "
                f"WHERE {owner} = :user ORDER BY {order}"
            ),
            {"entity": entity, "user": patient["id"]},
        )
    session.commit()
    return patient


def follow(client: Any, headers: dict[str, str], limit: int, *, trace: bool) -> dict[str, Any]:
    """Every page from no cursor to has_more false. With `trace`, the heap's peak per page
    (tracemalloc slows allocation, so times are taken on an untraced pass)."""
    pages = changes = 0
    page_peaks = []
    cursor = None
    if trace:
        tracemalloc.start()
    started, cpu = time.perf_counter(), time.process_time()
    while True:
        url = f"/v1/sync?limit={limit}" + (f"&since={cursor}" if cursor else "")
        if trace:
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
        answer = client.get(url, headers=headers)
        if trace:
            page_peaks.append(tracemalloc.get_traced_memory()[1] - before)
        assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
        body = answer.get_json()
        pages += 1
        changes += len(body["changes"])
        cursor, more = body["cursor"], body["has_more"]
        del body, answer
        if not more:
            break
    out: dict[str, Any] = {"pages": pages, "changes": changes}
    if trace:
        tracemalloc.stop()
        out["page_peak_mib_max"] = round(max(page_peaks) / 2**20, 2)
    else:
        out["seconds"] = round(time.perf_counter() - started, 2)
        out["app_cpu_s"] = round(time.process_time() - cpu, 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", type=int, default=3)
    parser.add_argument("--limit", type=int, default=500)
    args = parser.parse_args()
    from api import create_app

    results = {}
    for years in sorted({1, args.years}):
        with throwaway_database() as url:
            app = create_app(BenchConfig(url))
            with app.app_context():
                session = app.extensions["db"].sessionmaker()
                patient = seed_patient(session, years=years)
                counts = {
                    t: session.execute(
                        sa.text(f"SELECT count(*) FROM {t} WHERE user_id = :u"),
                        {"u": patient["id"]},
                    ).scalar()
                    for t in FEED
                }
                session.execute(sa.text("ANALYZE"))
                session.commit()
                session.close()
            headers = {"Authorization": f"Bearer {token_for(app, patient['id'], role='patient')}"}
            client = app.test_client()
            follow(client, headers, args.limit, trace=False)  # warm: imports, statement caches
            database = url.rsplit("/", 1)[1]
            _, db_before = cpu_seconds(os.getpid(), database)
            got = follow(client, headers, args.limit, trace=False)
            _, db_after = cpu_seconds(os.getpid(), database)
            got["db_cpu_s"] = round(db_after - db_before, 2)
            got.update(follow(client, headers, args.limit, trace=True))
            results[f"{years}y"] = {"rows": counts, **got}
            print(years, json.dumps(results[f"{years}y"]), flush=True)
            app.extensions["db"].engine.dispose()
    print("SUMMARY " + json.dumps(results))


if __name__ == "__main__":
    main()
