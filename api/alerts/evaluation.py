"""Alert evaluation: the rules (rules.py) over each consented patient's recent rows (the read
model), stored once per episode (the alerts table's unique key). Flags for clinicians, never
advice. The job (jobs/alerts.py) owns the transaction; this module only adds and flushes."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from api.alerts import services as alert_services
from api.alerts.rules import AlertSettings, Window, evaluate
from api.consent.gate import JobGate
from api.consent.models import CATEGORIES
from api.readmodel import queries


def alert_settings(config: Mapping[str, Any]) -> AlertSettings:
    return AlertSettings(
        sows_severe=config["ALERT_SOWS_SEVERE"],
        cows_severe=config["ALERT_COWS_SEVERE"],
        missed_doses_run=config["ALERT_MISSED_DOSES_RUN"],
        checkin_gap_days=config["ALERT_CHECKIN_GAP_DAYS"],
        checkin_streak_days=config["ALERT_CHECKIN_STREAK_DAYS"],
        rising_recent_days=config["ALERT_RISING_RECENT_DAYS"],
        rising_baseline_days=config["ALERT_RISING_BASELINE_DAYS"],
        rising_ratio=1 + config["ALERT_RISING_PERCENT"] / 100,
        rising_min_delta=config["ALERT_RISING_MIN_DELTA"],
        rising_min_recent=config["ALERT_RISING_MIN_RECENT"],
        rising_min_baseline=config["ALERT_RISING_MIN_BASELINE"],
        on_time_window_minutes=config["ADHERENCE_ON_TIME_WINDOW_MINUTES"],
    )


def evaluate_alerts_batch(
    session: Session,
    *,
    now: datetime,
    settings: AlertSettings,
    lookback_days: int,
    after: uuid.UUID | None,
    limit: int,
) -> tuple[int, uuid.UUID | None]:
    """Run the alert rules for the next `limit` patients (by id) with a consent in force, for the
    categories those consents share. Returns (alerts raised, last patient id, None when done)."""
    granted = JobGate.open(session, now=now).patient_categories(after=after, limit=limit)
    if not granted:
        return 0, None
    start = now - timedelta(days=lookback_days)
    users = queries.load_users(session, granted)
    loaded = queries.load_rows(
        session,
        patient_ids=list(granted),
        start=start,
        end=now + timedelta(microseconds=1),
        now=now,
        categories=CATEGORIES,
        schedule_starts=True,
    )
    raised = []
    for patient_id, categories in granted.items():
        patient = users.get(patient_id)
        if patient is None:
            continue
        window = Window(start, now, patient.timezone)
        raised += [
            {
                "patient_id": patient_id,
                "kind": alert.rule,
                "category": alert.category,
                "episode_key": alert.episode_key,
                "triggered_at": alert.triggered_at,
                "detail": alert.detail,
                "events_from": alert.events_from,
                "events_to": alert.events_to,
            }
            for alert in evaluate(
                loaded.data[patient_id],
                window=window,
                settings=settings,
                categories=categories,
                schedule_starts=loaded.schedule_starts,
            )
        ]
    return alert_services.raise_alerts(session, alerts=raised, now=now), max(granted)
