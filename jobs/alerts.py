"""Alert evaluation: run the rules over each consented patient's recent rows and store what they
raise, once per episode (the alerts table's unique key). Flags for clinicians, never advice."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from sqlalchemy.orm import Session

from api.alerts import evaluation

log = structlog.get_logger("waymark.jobs.alerts")


def evaluate_alerts(session: Session, *, now: Any, config: Mapping[str, Any]) -> int:
    """One transaction per batch of patients. Returns how many alerts were raised."""
    settings = evaluation.alert_settings(config)
    raised, after = 0, None
    while True:
        count, after = evaluation.evaluate_alerts_batch(
            session,
            now=now,
            settings=settings,
            lookback_days=config["ALERT_LOOKBACK_DAYS"],
            after=after,
            limit=config["WEEKLY_SUMMARY_BATCH_SIZE"],
        )
        session.commit()
        raised += count
        if after is None:
            log.info("alerts.evaluated", raised=raised)
            return raised
