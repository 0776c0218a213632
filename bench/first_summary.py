"""A worker's first summary against its second: is the plotting library paid for up front?

    .tools/bin/uv run --frozen python -m bench.first_summary [--rounds 3]

Seeds a throwaway PostgreSQL database (bench/summaries.py: one patient with a year of the demo
taper, a consenting clinician), then starts fresh processes that each play one gunicorn worker:
`create_app()`, then what gunicorn.conf.py's `when_ready` does in the preloading master before it
forks (`warm`), or nothing (`cold`, as before), then two HTML and two PDF summaries of 30 days
through the Flask stack, timed. Cold and warm alternate, so load on the machine hits both.
Target (issue 17): a warm worker's first summary within 1.5x of its second.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bench.summaries import DATA_END, BenchConfig, seed, throwaway_database


def token_for(app: Any, user_id: Any, role: str = "clinician") -> str:
    from api.auth.models import AuthSession
    from api.security import issue_access_token

    with app.app_context():
        session = app.extensions["db"].sessionmaker()
        login = AuthSession(user_id=user_id, created_at=datetime.now(UTC))
        session.add(login)
        session.commit()
        token = issue_access_token(
            user_id=user_id, role=role, session_id=login.id,
            now=datetime.now(UTC), ttl=3600,
        )  # fmt: skip
        session.close()
    return token


def child(url: str, token: str, path: str, warm: bool) -> None:
    from api import create_app

    app = create_app(BenchConfig(url))
    if warm:
        from api.summaries import render

        render.warm_up()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    out: dict[str, list[float]] = {}
    for fmt in ("html", "pdf"):
        times = []
        for _ in range(2):
            started = time.perf_counter()
            answer = client.get(f"{path}&format={fmt}", headers=headers)
            times.append(round((time.perf_counter() - started) * 1000, 1))
            assert answer.status_code == 200, answer.status_code
        out[fmt] = times
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", choices=("cold", "warm"))
    parser.add_argument("--url")
    parser.add_argument("--token")
    parser.add_argument("--path")
    args = parser.parse_args()
    if args.child:
        child(args.url, args.token, args.path, args.child == "warm")
        return
    from api import create_app

    with throwaway_database() as url:
        app = create_app(BenchConfig(url))
        with app.app_context():
            session = app.extensions["db"].sessionmaker()
            patient, doctor = seed(session, patients=1, clinicians=1, weeks=13)
            session.close()
        token = token_for(app, doctor["id"])
        app.extensions["db"].engine.dispose()
        end = datetime.combine(DATA_END, datetime.min.time(), tzinfo=ZoneInfo("America/Chicago"))
        start = end - timedelta(days=30)
        path = (
            f"/v1/clinician/patients/{patient['id']}/summary"
            f"?from={start.isoformat().replace('+', '%2B')}"
            f"&to={end.isoformat().replace('+', '%2B')}"
        )
        runs: dict[str, list[dict[str, list[float]]]] = {"cold": [], "warm": []}
        for _ in range(args.rounds):
            for mode in ("cold", "warm"):
                cmd = [sys.executable, "-m", "bench.first_summary", "--child", mode,
                       "--url", url, "--token", token, "--path", path]  # fmt: skip
                line = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                got = json.loads(line.strip().splitlines()[-1])
                runs[mode].append(got)
                print(mode, got, flush=True)
        summary: dict[str, Any] = {}
        for mode, rows in runs.items():
            for fmt in ("html", "pdf"):
                first = statistics.median(r[fmt][0] for r in rows)
                second = statistics.median(r[fmt][1] for r in rows)
                summary[f"{mode}_{fmt}"] = {
                    "first_ms": first, "second_ms": second, "ratio": round(first / second, 2),
                }  # fmt: skip
        print("SUMMARY " + json.dumps(summary))


if __name__ == "__main__":
    main()
