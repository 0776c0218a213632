#!/usr/bin/env bash
# Start Waymark locally: apply migrations, then the scheduler and the API (127.0.0.1:8000, SQLite
# under instance/ unless DATABASE_URL says otherwise). Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p instance
.venv/bin/alembic upgrade head
.venv/bin/python -m jobs &
jobs_pid=$!
trap 'kill $jobs_pid 2>/dev/null || true' EXIT INT TERM
exec_status=0
.venv/bin/gunicorn -c gunicorn.conf.py --workers "${WEB_CONCURRENCY:-2}" wsgi:app || exec_status=$?
exit $exec_status
