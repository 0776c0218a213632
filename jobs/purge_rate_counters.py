"""Delete expired rate-limit counters (sign-in, clinician lookup, export, erasure throttles)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.orm import Session

from api import ratelimit
from api.account.erasure import FAILURE_WINDOW

log = structlog.get_logger("waymark.jobs")

# Every window a counter is kept for; the purge waits for the longest, so it never cuts a live one.
WINDOW_SETTINGS = (
    "LOGIN_FAILURE_WINDOW",
    "CLINICIAN_LOOKUP_WINDOW",
    "EXPORT_RATE_WINDOW",
    "REGISTER_WINDOW",
    "EMAIL_TOKEN_WINDOW",
)


def longest_window(config: Mapping[str, Any]) -> int:
    return max([FAILURE_WINDOW, *(int(config[name]) for name in WINDOW_SETTINGS)])


def purge(session: Session, *, now: datetime, config: Mapping[str, Any]) -> int:
    """Safe to run twice or from two schedulers: it deletes by age, nothing else."""
    removed = ratelimit.purge_expired(session, now=now, longest_window=longest_window(config))
    log.info("rate_counters.purged", removed=removed)
    return removed
