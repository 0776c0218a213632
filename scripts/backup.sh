#!/usr/bin/env bash
# Back up Waymark's database: scripts/backup.sh FILE  (docs/operations.md, "Backups").
# A pg_dump custom-format archive of DATABASE_URL (PostgreSQL), written 0600: it holds health data.
# Bulk export files are inside it with EXPORT_STORAGE=database; with disk storage they are
# short-lived (BULK_EXPORT_TTL) and need no backup. SECRET_KEY and MFA_ENCRYPTION_KEY are backed
# up apart from it (without the latter no enrolled clinician passes the second factor).
set -euo pipefail
out="${1:?usage: scripts/backup.sh FILE}"
url="${DATABASE_URL:?set DATABASE_URL}"
url="${url/postgresql+psycopg:/postgresql:}"  # libpq does not know SQLAlchemy's driver suffix
umask 077
pg_dump --format=custom --no-owner --no-privileges --file "$out" "$url"
