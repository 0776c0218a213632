"""Benchmark: weekly summaries for many consented patients, and one summary over a year.

    .tools/bin/uv run --frozen python -m bench.summaries [--patients 10000] [--write-docs]

On PostgreSQL (BENCH_DATABASE_URL, default the local test server), in a throwaway database made
and dropped here. Seeds N patients with 91 days of the demo taper's rows each (templates from
tests/support/demo.py, fresh ids per patient, five time zones), one consent each with
share_weekly_summary, then times the weekly job (build, deliver with the consent checked again,
notify with a no-op sender), the alert job, and the on-demand JSON summary over 7, 30 and 365
days through the Flask stack with a query counter. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

os.environ.setdefault("SECRET_KEY", "bench-secret-" + "x" * 40)

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import insert
from sqlalchemy.engine import make_url

from api import create_app
from api.auth.models import User
from api.config import Config
from api.consent.models import Consent, ConsentCategory
from jobs import alerts as alert_job
from jobs import weekly_summaries
from tests.support.demo import generate_demo
from tests.support.demo_seed import demo_rows, insert_rows
from tests.support.queries import count_queries

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
ZONES = (
    "America/Chicago",
    "America/New_York",
    "America/Los_Angeles",
    "Europe/Lisbon",
    "Asia/Kolkata",
)
# The taper's last local week ends on Monday 2026-11-23; the job runs the next day.
DATA_END = date(2026, 11, 23)
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
TEMPLATES = 50
CATEGORIES = ("symptoms", "medications", "counseling")


class BenchConfig(Config):
    def __init__(self, url: str) -> None:
        super().__init__()
        self.DATABASE_URL = url
        self.LOG_LEVEL = "WARNING"
        self.DB_POOL_SIZE = 4


def log(message: str) -> None:
    print(message, flush=True)


@contextmanager
def throwaway_database(keep: bool = False) -> Any:
    # Not "waymark_bench_*": other benchmarks clean those up by pattern. BENCH_DATABASE_PREFIX
    # keeps one engineer's throwaway databases in their own names on a shared server.
    prefix = os.environ.get("BENCH_DATABASE_PREFIX", "summariesbench")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        cfg = AlembicConfig(str(ROOT / "alembic.ini"))
        cfg.set_main_option("script_location", str(ROOT / "migrations"))
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
        cfg.attributes["configure_logger"] = False
        command.upgrade(cfg, "head")
        yield url
    finally:
        if keep:
            log(f"kept: {url}")
        else:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@contextmanager
def reused(url: str) -> Any:
    yield url


def reset(session: Any) -> tuple[dict, dict]:
    """Forget the outputs of an earlier run (summaries, their disclosures, alerts)."""
    for table in ("weekly_summaries", "disclosures", "alerts"):
        session.execute(sa.text(f"DELETE FROM {table}"))
    session.commit()
    patient = session.execute(
        sa.text("SELECT id FROM users WHERE display_name = 'Year Patient'")
    ).scalar_one()
    doctor = session.execute(
        sa.text("SELECT recipient_id FROM consents WHERE patient_id = :p"), {"p": patient}
    ).scalar_one()
    return {"id": patient}, {"id": doctor}


def _user(role: str, n: int, zone: str, password_hash: str) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "email": f"{role}{n}@bench.invalid",
        "password_hash": password_hash,
        "display_name": f"{role.title()} {n}",
        "role": role,
        "timezone": zone,
        "discreet_notifications": False,
        "organization": "Bench Clinic" if role == "clinician" else None,
        "invite_code": uuid.uuid4().hex[:16] if role == "clinician" else None,
        "created_at": NOW,
        "updated_at": NOW,
    }


def _consent(
    patient: dict[str, Any], clinician: dict[str, Any], signed: datetime
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "patient_id": patient["id"],
        "discloser": "Waymark",
        "recipient_id": clinician["id"],
        "recipient_name": clinician["display_name"],
        "recipient_organization": clinician["organization"],
        "purpose": "treatment",
        "revocation_statement": "Revoke in the app at any time.",
        "expires_at": None,
        "data_from": None,
        "signature": patient["display_name"],
        "patient_name": patient["display_name"],
        "consent_text_version": "2026-01",
        "signed_at": signed,
        "share_weekly_summary": True,
        "replaces_id": None,
        "revoked_at": None,
        "create_fingerprint": None,
    }


def copy_rows(session: Any, table: str, rows: list[dict[str, Any]]) -> None:
    """COPY rows into a table (seeding only: 20x faster than INSERTs for millions of rows)."""
    if not rows:
        return
    columns = list(rows[0])
    cursor = session.connection().connection.driver_connection.cursor()
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(
                [json.dumps(v) if isinstance(v, dict | list) else v for v in row.values()]
            )


def copy_all(session: Any, rows: dict[Any, list[dict[str, Any]]]) -> None:
    """`rows`: per mapped model (any class with a __tablename__), its rows."""
    for model, items in rows.items():
        copy_rows(session, model.__tablename__, items)


def seed(session: Any, *, patients: int, clinicians: int, weeks: int) -> tuple[dict, dict]:
    """Clinicians, patients (each with a consent and `weeks` x 7 days of rows), and one more
    patient with a year of rows for the on-demand timing. Returns (year patient, its doctor)."""
    started = time.perf_counter()
    password_hash = "$argon2id$v=19$m=1024,t=1,p=1$YmVuY2hiZW5jaA$" + "A" * 43  # never used
    docs = [_user("clinician", n, "UTC", password_hash) for n in range(clinicians)]
    copy_rows(session, "users", docs)
    start = DATA_END - timedelta(weeks=weeks)
    templates = [
        generate_demo(
            seed=1000 + i,
            start=start,
            timezone=ZONES[i % len(ZONES)],
            lead_in_weeks=weeks - 6,
        )
        for i in range(TEMPLATES)
    ]
    signed = NOW - timedelta(weeks=weeks + 2)
    batch: list[dict[str, Any]] = []
    rows: dict[type, list[dict[str, Any]]] = {}

    def flush() -> None:
        copy_rows(session, "users", batch)
        consents = [_consent(p, docs[i % clinicians], signed) for i, p in enumerate(batch)]
        copy_rows(session, "consents", consents)
        copy_rows(
            session,
            "consent_categories",
            [{"consent_id": c["id"], "category": cat} for c in consents for cat in CATEGORIES],
        )
        copy_all(session, rows)
        session.commit()
        batch.clear()
        rows.clear()

    # Each template's rows once; a patient gets a copy with fresh ids.
    placeholder = uuid.UUID(int=0)
    template_rows = [demo_rows(t, patient_id=placeholder, created_at=signed) for t in templates]
    for n in range(patients):
        template = templates[n % TEMPLATES]
        patient = _user("patient", n, template.timezone, password_hash)
        batch.append(patient)
        fresh: dict[uuid.UUID, uuid.UUID] = {}
        for model, items in template_rows[n % TEMPLATES].items():
            target = rows.setdefault(model, [])
            for item in items:
                copy = {**item, "id": fresh.setdefault(item["id"], uuid.uuid4())}
                # COWS rows name the patient as patient_id; every other table as user_id.
                copy["patient_id" if "patient_id" in copy else "user_id"] = patient["id"]
                if "medication_id" in copy:
                    copy["medication_id"] = fresh.setdefault(copy["medication_id"], uuid.uuid4())
                target.append(copy)
        if len(batch) == 1000:
            flush()
            if (n + 1) % 2000 == 0:
                log(f"  seeded {n + 1} patients ({time.perf_counter() - started:.0f} s)")
    if batch:
        flush()
    # The year patient: 52 weeks of rows, a consent to clinician 0 (weekly sharing off).
    year = generate_demo(
        seed=7, start=DATA_END - timedelta(weeks=52), timezone="America/Chicago", lead_in_weeks=46
    )
    patient = _user("patient", patients, year.timezone, password_hash)
    patient["display_name"] = "Year Patient"
    session.execute(insert(User), [patient])
    consent = _consent(patient, docs[0], NOW - timedelta(weeks=60)) | {
        "share_weekly_summary": False
    }
    session.execute(insert(Consent), [consent])
    session.execute(
        insert(ConsentCategory), [{"consent_id": consent["id"], "category": c} for c in CATEGORIES]
    )
    insert_rows(session, demo_rows(year, patient_id=patient["id"], created_at=consent["signed_at"]))
    session.commit()
    log(f"  seeded {patients + 1} patients in {time.perf_counter() - started:.0f} s")
    return patient, docs[0]


def counts(session: Any) -> dict[str, int]:
    tables = ("users", "consents", "checkins", "medications", "doses", "counseling_sessions")
    return {t: session.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in tables}


def timed(label: str, fn: Any) -> tuple[Any, float]:
    """Wall-clock seconds; the process's own CPU time and the load average are printed too,
    since this machine is shared (the figures are only comparable on a quiet machine)."""
    started, cpu = time.perf_counter(), time.process_time()
    result = fn()
    elapsed = time.perf_counter() - started
    used = time.process_time() - cpu
    load = os.getloadavg()[0]
    log(f"  {label}: {elapsed:.2f} s wall, {used:.2f} s CPU (load {load:.1f}) -> {result}")
    TIMINGS[label] = {"wall": elapsed, "cpu": used, "load": load}
    return result, elapsed


TIMINGS: dict[str, dict[str, float]] = {}


def on_demand(app: Any, patient: dict, doctor: dict, days: int, runs: int) -> dict[str, Any]:
    """Median and p95 of GET .../summary (JSON) over `days`, and the queries one request issues."""
    from api.auth.models import AuthSession
    from api.security import issue_access_token

    with app.app_context():
        session = app.extensions["db"].sessionmaker()
        login = AuthSession(user_id=doctor["id"], created_at=datetime.now(UTC))
        session.add(login)
        session.commit()
        token = issue_access_token(
            user_id=doctor["id"],
            role="clinician",
            session_id=login.id,
            now=datetime.now(UTC),
            ttl=3600,
        )
        session.close()
    end = datetime.combine(DATA_END, datetime.min.time(), tzinfo=ZoneInfo("America/Chicago"))
    start = end - timedelta(days=days)
    url = (
        f"/v1/clinician/patients/{patient['id']}/summary"
        f"?from={start.isoformat().replace('+', '%2B')}&to={end.isoformat().replace('+', '%2B')}"
    )
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    with count_queries(app.extensions["db"].engine) as statements:
        first = client.get(url, headers=headers)
    assert first.status_code == 200, first.get_data(as_text=True)[:300]
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        answer = client.get(url, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200
    times.sort()
    return {
        "days": days,
        "queries": len(statements),
        "median_ms": statistics.median(times),
        "p95_ms": times[int(0.95 * (len(times) - 1))],
        "checkins": first.json["sections"]["checkins"]["count"],
        "bytes": len(first.data),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--clinicians", type=int, default=100)
    parser.add_argument("--weeks", type=int, default=13, help="weeks of data (13 = 91 days)")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--write-docs", action="store_true", help="append to docs/benchmarks.md")
    parser.add_argument("--keep", action="store_true", help="keep the database (for profiling)")
    parser.add_argument("--skip-alerts", action="store_true", help="do not time the alert job")
    parser.add_argument("--reuse", help="a database seeded by an earlier --keep run: no seeding")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with reused(args.reuse) if args.reuse else throwaway_database(keep=args.keep) as url:
        app = create_app(BenchConfig(url))
        with app.app_context():
            session = app.extensions["db"].sessionmaker()
            if args.reuse:
                patient, doctor = reset(session)
            else:
                log(f"seeding {args.patients} patients x {args.weeks * 7} days ...")
                patient, doctor = seed(
                    session, patients=args.patients, clinicians=args.clinicians, weeks=args.weeks
                )
            session.execute(sa.text("ANALYZE"))
            session.commit()
            results["rows"] = counts(session)
            log(f"  rows: {results['rows']}")
            log("weekly summaries:")
            config = app.config
            built, t_build = timed(
                "build",
                lambda: weekly_summaries.build_weekly_summaries(session, now=NOW, config=config),
            )
            delivered, t_deliver = timed(
                "deliver + queue notices",
                lambda: weekly_summaries.deliver_weekly_summaries(session, now=NOW, config=config),
            )
            rerun, t_rerun = timed(
                "rerun (nothing to do)",
                lambda: weekly_summaries.build_weekly_summaries(session, now=NOW, config=config),
            )
            results["weekly"] = {
                "built": built,
                "build_s": t_build,
                "delivered": delivered,
                "deliver_s": t_deliver,
                "total_s": t_build + t_deliver,
                "emails": delivered["notified"],  # queued in the outbox, one per clinician
                "rerun_built": rerun,
                "rerun_s": t_rerun,
            }
            if not args.skip_alerts:
                log("alerts:")
                raised, t_alerts = timed(
                    "evaluate (28 days each)",
                    lambda: alert_job.evaluate_alerts(session, now=NOW, config=config),
                )
                results["alerts"] = {"raised": raised, "seconds": t_alerts}
            session.close()
        log("on-demand JSON summary (year patient):")
        results["on_demand"] = []
        for days in (7, 30, 365):
            figures = on_demand(app, patient, doctor, days, args.runs)
            log(f"  {figures}")
            results["on_demand"].append(figures)
        app.extensions["db"].engine.dispose()
    report(results, args)
    return 0


def cell(label: str) -> str:
    t = TIMINGS[label]
    return f"{t['wall']:.1f} s ({t['cpu']:.1f} s CPU, load {t['load']:.1f})"


def report(results: dict[str, Any], args: argparse.Namespace) -> None:
    weekly, rows = results["weekly"], results["rows"]
    lines = [
        "",
        "## Summaries",
        "",
        f"Machine: 2-core, date: 2026-11-26. PostgreSQL 15 (local), `python -m bench.summaries "
        f"--patients {args.patients}`; {args.clinicians} clinicians; "
        f"{rows['checkins']:,} check-ins, {rows['doses']:,} dose rows, "
        f"{rows['counseling_sessions']:,} sessions ({args.weeks * 7} days per patient).",
        "",
        "| measure | wall (CPU of this process, load average) | target |",
        "|---|---|---|",
        f"| weekly summaries built for {weekly['built']:,} consents | {cell('build')} | |",
        f"| delivered (consent checked again, a disclosure row each), "
        f"{weekly['emails']} clinician emails queued | {cell('deliver + queue notices')} | |",
        f"| weekly job, total | **{weekly['total_s']:.1f} s** | < 60 s |",
        f"| rerun of the build (nothing to do) | {cell('rerun (nothing to do)')} | |",
    ]
    if "alerts" in results:
        lines.append(
            f"| alert rules over {args.patients:,} patients (28 days each), "
            f"{results['alerts']['raised']:,} alerts | {cell('evaluate (28 days each)')} | |"
        )
    for item in results["on_demand"]:
        lines.append(
            f"| on-demand JSON summary, {item['days']} days ({item['checkins']} check-ins): "
            f"median / p95, queries | **{item['median_ms']:.0f} ms** / {item['p95_ms']:.0f} ms, "
            f"{item['queries']} queries | < 150 ms, fixed |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write_docs:
        path = ROOT / "docs" / "benchmarks.md"
        existing = path.read_text() if path.exists() else "# Benchmarks\n"
        path.write_text(existing.rstrip("\n") + "\n" + text)


if __name__ == "__main__":
    sys.exit(main())
