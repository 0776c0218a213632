#!/usr/bin/env bash
# Restore a backup into an empty database: scripts/restore.sh FILE TARGET_URL
# (docs/operations.md). The target must exist and be empty; then run `alembic upgrade head`
# (a no-op for a backup of this release) and start the API against it.
set -euo pipefail
in="${1:?usage: scripts/restore.sh FILE TARGET_URL}"
target="${2:?usage: scripts/restore.sh FILE TARGET_URL}"
target="${target/postgresql+psycopg:/postgresql:}"
pg_restore --no-owner --no-privileges --exit-on-error --single-transaction --dbname "$target" "$in"
