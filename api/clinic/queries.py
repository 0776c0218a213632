"""Dashboard reads across patients: the roster. A fixed number of queries a page, whatever its
size: consents with names, their categories, open alerts, last check-ins, 7-day dose counts,
the ledger rows (one INSERT)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from api.alerts import services as alert_services
from api.auth.models import User
from api.checkins.models import Checkin
from api.consent.gate import Gate, window_start
from api.consent.models import Consent
from api.disclosures.services import record_disclosures
from api.medications.models import Dose

SORTS = {
    "name": (User.display_name, False),
    "-name": (User.display_name, True),
    "signed": (Consent.signed_at, False),
    "-signed": (Consent.signed_at, True),
    "expires": (Consent.expires_at, False),
    "-expires": (Consent.expires_at, True),
}
ADHERENCE_DAYS = 7


@dataclass(frozen=True)
class RosterRow:
    patient_id: uuid.UUID
    display_name: str
    consent: Consent
    window_from: datetime
    open_alerts: int
    last_checkin: datetime | None  # None: none in the window, or symptoms not shared
    adherence: tuple[int, int] | None  # (taken, scheduled doses logged or missed); None: not shared


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def roster(
    session: Session,
    *,
    clinician_id: uuid.UUID,
    search: str,
    sort: str,
    page: int,
    per_page: int,
    now: datetime,
) -> dict[str, Any]:
    """One page of the patients with a consent in force to the clinician, with what each
    consent lets the dashboard show; every patient whose data is shown gets a ledger row."""
    gate = Gate.open(session, clinician_id=clinician_id, now=now, lock=False)
    base = (
        gate.consents_stmt()
        .add_columns(User.display_name)
        .join(User, User.id == Consent.patient_id)
    )
    if search:
        pattern = f"%{_escape_like(search.lower())}%"
        base = base.where(func.lower(User.display_name).like(pattern, escape="\\"))
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    column, descending = SORTS.get(sort, SORTS["name"])
    order = column.desc() if descending else column.asc()
    rows = session.execute(
        base.order_by(order, Consent.id).offset((page - 1) * per_page).limit(per_page)
    ).all()
    consents = [row[0] for row in rows]
    names = {row[0].patient_id: row[1] for row in rows}
    ids = [c.patient_id for c in consents]
    alerts = alert_services.open_counts(session, gate=gate, patient_ids=ids)
    symptoms = {c.id: c for c in consents if "symptoms" in c.categories}
    medications = {c.id: c for c in consents if "medications" in c.categories}
    last = _last_checkins(session, consent_ids=list(symptoms), now=now)
    since = now - timedelta(days=ADHERENCE_DAYS)
    doses = _dose_counts(session, consent_ids=list(medications), since=since, now=now)

    items = [
        RosterRow(
            patient_id=c.patient_id,
            display_name=names[c.patient_id],
            consent=c,
            window_from=window_start(c),
            open_alerts=alerts.get(c.patient_id, 0),
            last_checkin=last.get(c.patient_id),
            adherence=doses.get(c.patient_id, (0, 0)) if c.id in medications else None,
        )
        for c in consents
    ]
    entries = []
    for c in consents:
        categories = [x for x in ("symptoms", "medications") if x in c.categories]
        if categories:
            entries.append(
                {
                    "patient_id": c.patient_id,
                    "recipient_id": clinician_id,
                    "consent_id": c.id,
                    "categories": categories,
                    "data_from": max(window_start(c), since)
                    if categories == ["medications"]
                    else window_start(c),
                    "data_to": now,
                }
            )
    record_disclosures(session, kind="read", entries=entries, now=now)
    pages = max(1, -(-total // per_page))
    return {"items": items, "total": total, "page": page, "pages": pages}


def _last_checkins(
    session: Session, *, consent_ids: list[uuid.UUID], now: datetime
) -> dict[uuid.UUID, datetime]:
    """The newest check-in inside each consent's window (category symptoms)."""
    if not consent_ids:
        return {}
    window = func.coalesce(Consent.data_from, Consent.signed_at)
    stmt = (
        select(Checkin.user_id, func.max(Checkin.recorded_at))
        .join(Consent, Consent.patient_id == Checkin.user_id)
        .where(
            Consent.id.in_(consent_ids),
            Checkin.deleted_at.is_(None),
            Checkin.recorded_at >= window,
            Checkin.recorded_at <= now,
        )
        .group_by(Checkin.user_id)
    )
    return {patient_id: at for patient_id, at in session.execute(stmt) if at is not None}


def _dose_counts(
    session: Session,
    *,
    consent_ids: list[uuid.UUID],
    since: datetime,
    now: datetime,
) -> dict[uuid.UUID, tuple[int, int]]:
    """Scheduled doses in the last days and inside each consent's window: (taken, all logged
    or missed)."""
    if not consent_ids:
        return {}
    window = func.coalesce(Consent.data_from, Consent.signed_at)
    taken = func.sum(case((Dose.status == "taken", 1), else_=0))
    stmt = (
        select(Dose.user_id, taken, func.count())
        .join(Consent, Consent.patient_id == Dose.user_id)
        .where(
            and_(
                Consent.id.in_(consent_ids),
                Dose.scheduled_for.is_not(None),
                Dose.dose_at >= since,
                Dose.dose_at >= window,
                Dose.dose_at <= now,
            )
        )
        .group_by(Dose.user_id)
    )
    rows: list[Any] = list(session.execute(stmt))
    return {pid: (int(t or 0), int(n)) for pid, t, n in rows}
