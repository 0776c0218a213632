"""Open alerts as read-model rows, for the summaries that show them."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Collection

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from api.alerts.models import Alert
from api.dml import one_of
from api.readmodel.rows import AlertRow


def open_alert_rows(
    session: Session,
    *,
    patient_ids: Collection[uuid.UUID],
    categories: Collection[str],
    visible: ColumnElement[bool],
) -> dict[uuid.UUID, list[AlertRow]]:
    """Each patient's alerts in the given categories that the reader sees as open (`visible`: for
    a clinician, alerts.services.visible_open(gate): the consent gate by the time of the events,
    and not acknowledged by them), one query."""
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
            Alert.category.in_(sorted(cats)),
            visible,
        )
    )
    for patient_id, aid, kind, category, triggered, created, detail in alert_rows:
        alerts[patient_id].append(AlertRow(aid, kind, category, triggered or created, detail or ""))
    return alerts
