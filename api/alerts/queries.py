"""Open alerts as read-model rows, for the summaries that show them."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.alerts.models import Alert
from api.dml import one_of
from api.readmodel.rows import AlertRow


def open_alert_rows(
    session: Session,
    *,
    patient_ids: Collection[uuid.UUID],
    categories: Collection[str],
    now: datetime,
) -> dict[uuid.UUID, list[AlertRow]]:
    """Each patient's unacknowledged alerts in the given categories, raised by `now` (one query)."""
    ids, cats = list(patient_ids), set(categories)
    alerts: dict[uuid.UUID, list[AlertRow]] = defaultdict(list)
    if not ids or not cats:
        return alerts
    alert_rows = session.execute(
        select(
            Alert.patient_id,
            Alert.id,
            Alert.kind,
            Alert.category,
            Alert.triggered_at,
            Alert.created_at,
            Alert.detail,
        ).where(
            one_of(session, Alert.patient_id, ids),
            Alert.acknowledged_at.is_(None),
            Alert.clinician_visible.is_(True),
            Alert.category.in_(sorted(cats)),
            Alert.created_at <= now,
        )
    )
    for patient_id, aid, kind, category, triggered, created, detail in alert_rows:
        alerts[patient_id].append(AlertRow(aid, kind, category, triggered or created, detail or ""))
    return alerts
