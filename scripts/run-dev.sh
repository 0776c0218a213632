#!/usr/bin/env bash
# Start Waymark locally: apply migrations, then the scheduler and the API (127.0.0.1:8000, SQLite
# under instance/ unless DATABASE_URL says otherwise). Ctrl-C, or TERM to this script, stops both;
# if either stops on its own, the other is stopped too.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p instance
# Alembic's imports take seconds; a restart against an up-to-date database skips it.
if ! .venv/bin/python scripts/migrations_current.py; then
  .venv/bin/alembic upgrade head
fi

# Both run in the background, so that a signal reaches this shell at once (bash runs no trap
# while a foreground child runs) and so that either one ending is noticed.
.venv/bin/python -m jobs &
jobs_pid=$!
.venv/bin/gunicorn -c gunicorn.conf.py --workers "${WEB_CONCURRENCY:-2}" wsgi:app &
web_pid=$!

stop() {
  trap - INT TERM
  kill -TERM "$web_pid" "$jobs_pid" 2>/dev/null || true
  wait "$web_pid" "$jobs_pid" 2>/dev/null || true
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM

# Poll rather than `wait -n` (bash >= 4.3): `wait` on a short sleep returns as soon as a trapped
# signal arrives, on any bash.
while kill -0 "$web_pid" 2>/dev/null && kill -0 "$jobs_pid" 2>/dev/null; do
  sleep 1 &
  wait $! || true
done
status=0
if kill -0 "$web_pid" 2>/dev/null; then
  wait "$jobs_pid" || status=$?
  echo "run-dev: the scheduler stopped (status $status); stopping the API" >&2
else
  wait "$web_pid" || status=$?
  echo "run-dev: the API stopped (status $status); stopping the scheduler" >&2
fi
stop
exit "$status"
