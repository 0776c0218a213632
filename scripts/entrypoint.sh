#!/usr/bin/env bash
# The container's entrypoint (Dockerfile ENTRYPOINT; CI runs it the same way, tests/test_image.py):
#   api        gunicorn on $BIND (workers from WEB_CONCURRENCY)
#   scheduler  python -m jobs (leader or standby; docs/scheduler.md)
#   migrate    alembic upgrade head (run once per release, before the new api and scheduler)
# Anything else is run as given (e.g. `flask --app wsgi create-admin --email ...`).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${WAYMARK_VENV:-.venv}"
command="${1:-api}"
case "$command" in
  api)
    shift || true
    exec "$venv/bin/gunicorn" -c gunicorn.conf.py "$@" wsgi:app
    ;;
  scheduler)
    exec "$venv/bin/python" -m jobs
    ;;
  migrate)
    exec "$venv/bin/alembic" upgrade head
    ;;
  *)
    exec "$@"
    ;;
esac
