"""Dashboard reads across patients: the roster. A fixed number of queries a page, whatever its
size or sort: the count, the page (consents with names, open alerts, last check-in and 7-day
doses as columns, sorted and paged in SQL), their categories, the ledger rows (one INSERT)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, exists, func, select
from sqlalchemy.orm import Session

from api.alerts import services as alert_services
from api.auth.models import User
from api.checkins.models import Checkin
from api.consent.gate import Gate, window_start
from api.consent.models import Consent, ConsentCategory
from api.disclosures.services import record_disclosures
from api.medications.models import Dose

ADHERENCE_DAYS = 7
# Sort keys (a leading "-" reverses); every one is ordered in SQL, so a page of a 1,000-patient
# roster is picked by the database, not by sorting every row here. Rows without a value (a
# category not shared, no check-in, no scheduled dose) come last in both directions.
SORT_KEYS = ("name", "signed", "expires", "alerts", "checkin", "adherence")
SORTS = frozenset([*SORT_KEYS, *(f"-{k}" for k in SORT_KEYS)])


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
    since = now - timedelta(days=ADHERENCE_DAYS)
    alerts = _open_alerts(gate)
    last_checkin = case(
        (_shares("symptoms"), _last_checkin(now)), else_=None
    )  # None: none in the window, or symptoms not shared
    taken, scheduled = _doses(since, now, taken_only=True), _doses(since, now, taken_only=False)
    medications = _shares("medications")
    base = gate.consents_stmt().join(User, User.id == Consent.patient_id)
    if search:
        pattern = f"%{_escape_like(search.lower())}%"
        base = base.where(func.lower(User.display_name).like(pattern, escape="\\"))
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    if sort.removeprefix("-") == "alerts":  # the grouped count only where it is the key
        base = base.outerjoin(alerts, alerts.c.patient_id == Consent.patient_id)
    open_alerts = func.coalesce(alerts.c.n_open, 0)
    keys: dict[str, Any] = {
        "name": User.display_name,
        "signed": Consent.signed_at,
        "expires": Consent.expires_at,
        "alerts": open_alerts,
        "checkin": last_checkin,
        # The share of scheduled doses taken (None: not shared, or none scheduled).
        # One scan of the doses per row: the mean of taken (1) and not (0), NULL without any.
        "adherence": case((medications, _dose_share(since, now)), else_=None),
    }
    column = keys[sort.removeprefix("-")]
    order = (column.desc() if sort.startswith("-") else column.asc()).nulls_last()
    ordering = (order, User.display_name, Consent.id)
    # The page's consents are picked first (only the sort key is computed for the rows before
    # it), then the figures are computed for those rows alone: with the figures beside the
    # OFFSET, PostgreSQL computes them for every skipped row too (page 10 cost 2.5 times page 1).
    picked = (
        base.with_only_columns(Consent.id)
        .order_by(*ordering)
        .offset((page - 1) * per_page)
        .limit(per_page)
        .subquery("picked")
    )
    stmt = (
        gate.consents_stmt()
        .join(picked, picked.c.id == Consent.id)
        .join(User, User.id == Consent.patient_id)
        .outerjoin(alerts, alerts.c.patient_id == Consent.patient_id)
        .add_columns(
            User.display_name,
            last_checkin.label("last_checkin"),
            case((medications, taken), else_=None).label("n_taken"),
            case((medications, scheduled), else_=None).label("n_scheduled"),
            # What the open-alert count discloses, beside it (AlertsShown).
            *(c for c in alerts.c if c.key != "patient_id"),
        )
        .order_by(*ordering)
    )
    rows: list[Any] = list(session.execute(stmt))
    items, entries = [], []
    for row in rows:
        c, counted = row[0], alert_services.AlertsShown.of(row)
        items.append(
            RosterRow(
                patient_id=c.patient_id,
                display_name=row.display_name,
                consent=c,
                window_from=window_start(c),
                open_alerts=counted.count,
                last_checkin=row.last_checkin,
                adherence=None
                if row.n_scheduled is None
                else (int(row.n_taken), int(row.n_scheduled)),
            )
        )
        entries.extend(_disclosed(gate, c, counted, since=since))
    record_disclosures(session, kind="read", entries=entries, now=now)
    pages = max(1, -(-total // per_page))
    return {"items": items, "total": total, "page": page, "pages": pages}


def _disclosed(
    gate: Gate, consent: Consent, counted: alert_services.AlertsShown, *, since: datetime
) -> list[dict[str, Any]]:
    """The ledger entries for one roster row: the last check-in (symptoms) over the consent's
    window and the 7-day doses (medications), merged with the open-alert count's entry
    (alerts.services.disclosure_entry) when both cite the same consent."""
    entry: dict[str, Any] = {
        "patient_id": consent.patient_id,
        "recipient_id": gate.clinician_id,
        "consent_id": consent.id,
        "categories": [x for x in ("symptoms", "medications") if x in consent.categories],
        "data_from": max(window_start(consent), since)
        if "symptoms" not in consent.categories
        else window_start(consent),
        "data_to": gate.now,
    }
    entries = [entry] if entry["categories"] else []
    alerts = alert_services.disclosure_entry(gate, consent.patient_id, counted)
    if alerts is not None and entries and alerts["consent_id"] == consent.id:
        entry["categories"] = sorted({*entry["categories"], *alerts["categories"]})
        entry["data_from"] = min(entry["data_from"], alerts["data_from"])
    elif alerts is not None:
        entries.append(alerts)
    return entries


def _shares(category: str) -> ColumnElement[bool]:
    """The roster row's consent covers `category` (correlated to the row's consent)."""
    return exists().where(
        ConsentCategory.consent_id == Consent.id, ConsentCategory.category == category
    )


def _open_alerts(gate: Gate) -> Any:
    """Open alerts per patient as the gate's clinician sees them, as a derived table (one
    grouped scan of the clinician's alerts, joined to the roster's rows)."""
    return alert_services.open_alerts_select(gate).subquery("open_alerts")


def _last_checkin(now: datetime) -> Any:
    """The newest check-in inside the row's consent window (correlated: one index probe)."""
    return (
        select(func.max(Checkin.recorded_at))
        .where(
            Checkin.user_id == Consent.patient_id,
            Checkin.deleted_at.is_(None),
            Checkin.recorded_at >= func.coalesce(Consent.data_from, Consent.signed_at),
            Checkin.recorded_at <= now,
        )
        .scalar_subquery()
    )


def _recent_doses(since: datetime, now: datetime) -> list[ColumnElement[bool]]:
    """Scheduled doses of the last days inside the row's consent window (logged or missed),
    correlated to the row's consent."""
    return [
        Dose.user_id == Consent.patient_id,
        Dose.scheduled_for.is_not(None),
        Dose.dose_at >= since,
        Dose.dose_at >= func.coalesce(Consent.data_from, Consent.signed_at),
        Dose.dose_at <= now,
    ]


def _doses(since: datetime, now: datetime, *, taken_only: bool) -> Any:
    """How many of those doses (taken only, or all)."""
    stmt = select(func.count()).where(*_recent_doses(since, now))
    if taken_only:
        stmt = stmt.where(Dose.status == "taken")
    return stmt.scalar_subquery()


def _dose_share(since: datetime, now: datetime) -> Any:
    """The share of those doses taken, NULL without any (the adherence sort key)."""
    taken = case((Dose.status == "taken", 1.0), else_=0.0)
    return select(func.avg(taken)).where(*_recent_doses(since, now)).scalar_subquery()
