"""Alert evaluation: run the rules over each consented patient's recent rows and store what they
raise, once per episode (the alerts table's unique key). Flags for clinicians, never advice."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import structlog
from sqlalchemy.orm import Session

from api.alerts import evaluation
from api.consent.gate import JobGate
from jobs.isolation import keyset_batches

log = structlog.get_logger("waymark.jobs.alerts")


def evaluate_alerts(session: Session, *, now: Any, config: Mapping[str, Any]) -> int:
    """One transaction per batch of patients; a patient whose evaluation fails is logged, counted
    and skipped (jobs.isolation). Returns how many alerts were raised."""
    settings = evaluation.alert_settings(config)

    def run(after: uuid.UUID | None, limit: int) -> tuple[int, uuid.UUID | None]:
        return evaluation.evaluate_alerts_batch(
            session,
            now=now,
            settings=settings,
            lookback_days=config["ALERT_LOOKBACK_DAYS"],
            after=after,
            limit=limit,
        )

    def next_patient(after: uuid.UUID | None) -> uuid.UUID | None:
        granted = JobGate.open(session, now=now).patient_categories(after=after, limit=1)
        return next(iter(granted), None)

    raised = keyset_batches(
        session,
        job="alerts",
        item="patient_id",
        run=run,
        next_key=next_patient,
        limit=config["WEEKLY_SUMMARY_BATCH_SIZE"],
    )
    log.info("alerts.evaluated", raised=raised)
    return raised
