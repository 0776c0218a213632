"""Clinician summaries: on demand and weekly, each through the consent gate; alert evaluation.

Services flush, never commit. Every summary a clinician receives passes consent.services (the
gate) and leaves a disclosure row (kind "summary") in the same transaction.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session

from api.alerts import queries as alert_queries
from api.alerts import services as alert_services
from api.alerts.models import Alert, AlertAcknowledgement
from api.consent.gate import Gate, JobGate, WeeklyConsent, window_start
from api.consent.models import Consent
from api.disclosures.services import record_disclosures, record_per_consent
from api.dml import dialect_of, insert_ignoring_conflicts, one_of
from api.errors import NotFound, ValidationError
from api.localtime import local_day_start
from api.notifications import services as outbox
from api.pagination import keyset_page
from api.readmodel import queries
from api.readmodel.rows import AlertRow, Period
from api.summaries.compute import CATEGORIES, SummarySettings, build_summary, definitions_for
from api.summaries.models import WeeklySummary

log = structlog.get_logger("waymark.summaries")

DEFAULT_PERIOD = timedelta(days=7)


@dataclass(frozen=True)
class SummaryConfig:
    """What the services need from configuration, passed in (never read from the app)."""

    settings: SummarySettings
    notice: str
    max_days: int = 366

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> SummaryConfig:
        return cls(
            settings=SummarySettings(
                on_time_window_minutes=config["ADHERENCE_ON_TIME_WINDOW_MINUTES"],
                top_symptoms=config["SUMMARY_TOP_SYMPTOMS"],
            ),
            notice=config["REDISCLOSURE_NOTICE"],
            max_days=config["SUMMARY_MAX_DAYS"],
        )


def _consent_info(consent: Consent | WeeklyConsent) -> dict[str, Any]:
    """The consent's scope, carried by the document (42 CFR 2.32(b), 2024 text)."""
    return {
        "id": str(consent.id),
        "categories": list(consent.categories),
        "purpose": consent.purpose,
        "signed_at": consent.signed_at,
        "expires_at": consent.expires_at,
        "data_from": window_start(consent),
        "discloser": consent.discloser,
        "recipient": {
            "id": str(consent.recipient_id),
            "display_name": consent.recipient_name,
            "organization": consent.recipient_organization,
        },
        "share_weekly_summary": consent.share_weekly_summary,
        "consent_text_version": consent.consent_text_version,
    }


# --- on demand ---------------------------------------------------------------------------------


def summary_period(
    start: datetime | None, end: datetime | None, *, now: datetime, max_days: int
) -> tuple[datetime, datetime]:
    """[from, to) with defaults (to = now, from = to - 7 days), `to` no later than now.

    Raises ValidationError naming the field for an empty, inverted or too long period."""
    end = min(end or now, now)
    start = start or end - DEFAULT_PERIOD
    if start >= end:
        field = "to" if start < now else "from"
        raise ValidationError({field: ["The period must end after it starts, and not after now."]})
    if end - start > timedelta(days=max_days):
        raise ValidationError({"to": [f"The period is at most {max_days} days."]})
    return start, end


def on_demand_summary(
    session: Session,
    *,
    clinician_id: uuid.UUID,
    patient_id: uuid.UUID,
    start: datetime | None,
    end: datetime | None,
    now: datetime,
    config: SummaryConfig,
) -> dict[str, Any]:
    """The summary of a period for one patient, each category through the consent gate.

    Raises NotFound if no consent from the patient to the clinician is in force, ValidationError
    for a bad period. A category the consents do not cover is withheld (the section says so);
    data outside a consent's window is not read. Appends one disclosure row per consent used.
    """
    gate = Gate.open(session, clinician_id=clinician_id, now=now, patient_id=patient_id)
    grants = gate.grants(patient_id, CATEGORIES)
    start, end = summary_period(start, end, now=now, max_days=config.max_days)
    patient = queries.load_users(session, [patient_id]).get(patient_id)
    if patient is None:
        raise NotFound("No such patient.")
    tz = patient.timezone
    periods: dict[str, Period | None] = {}
    for category, grant in grants.items():
        lo, hi = grant.clip(start, end)
        periods[category] = Period(lo, hi, tz) if hi > lo else None
    windows = [p for p in periods.values() if p is not None]
    loaded = queries.load_rows(
        session,
        patient_ids=[patient_id],
        start=min((p.start for p in windows), default=start),
        end=max((p.end for p in windows), default=end),
        now=now,
        categories=[c for c, p in periods.items() if p is not None],
    )
    # The alert section: what the gate shows this clinician (by the time of the events each
    # alert describes) and they have not acknowledged themselves.
    _add_open_alerts(
        session,
        loaded,
        categories=[c for c, p in periods.items() if p is not None],
        visible=alert_services.visible_open(gate),
    )
    consents = {
        c.id: c
        for c in session.scalars(
            select(Consent).where(Consent.id.in_({g.consent_id for g in grants.values()}))
        )
    }
    by_category = {category: str(grant.consent_id) for category, grant in grants.items()}
    primary = consents[grants[next(iter(grants))].consent_id]
    consent = _consent_info(primary) | {"categories": sorted(grants), "by_category": by_category}
    if len(set(by_category.values())) == 1:
        consent.pop("by_category")
    doc = build_summary(
        loaded.data[patient_id],
        patient={"id": patient_id, "display_name": patient.display_name},
        period=Period(start, end, tz),
        consent=consent,
        generated_at=now,
        now=now,
        notice=config.notice,
        settings=config.settings,
        category_periods=periods,
    )
    _disclose(
        session,
        patient_id=patient_id,
        clinician_id=clinician_id,
        grants={c: (grants[c].consent_id, p) for c, p in periods.items() if p is not None},
        now=now,
    )
    log.info(
        "summary.disclosed",
        patient_id=str(patient_id),
        clinician_id=str(clinician_id),
        kind="on_demand",
    )
    return doc


def _add_open_alerts(
    session: Session,
    loaded: queries.Loaded,
    *,
    categories: Sequence[str],
    visible: ColumnElement[bool],
) -> None:
    # The alerts feature reads its own rows; the summary shows the open ones beside the rest.
    rows = alert_queries.open_alert_rows(
        session, patient_ids=list(loaded.data), categories=categories, visible=visible
    )
    for patient_id, alerts in rows.items():
        loaded.data[patient_id] = replace(loaded.data[patient_id], open_alerts=tuple(alerts))


def _disclose(
    session: Session,
    *,
    patient_id: uuid.UUID,
    clinician_id: uuid.UUID,
    grants: Mapping[str, tuple[uuid.UUID, Period]],
    now: datetime,
) -> None:
    """One disclosure row per consent used, with its categories and the data period read."""
    record_per_consent(
        session,
        patient_id=patient_id,
        recipient_id=clinician_id,
        kind="summary",
        reads={c: (consent_id, p.start, p.end) for c, (consent_id, p) in grants.items()},
        now=now,
    )


# --- weekly ------------------------------------------------------------------------------------


def week_of(now: datetime, timezone: str) -> tuple[date, datetime, datetime]:
    """The last local week (Monday 00:00 to Monday 00:00, DST-safe) that has ended by `now`."""
    zone = ZoneInfo(timezone)
    today = now.astimezone(zone).date()
    this_monday = today - timedelta(days=today.weekday())
    week_start = this_monday - timedelta(days=7)
    return (
        week_start,
        local_day_start(week_start, zone),
        local_day_start(this_monday, zone),
    )


def build_weekly_batch(
    session: Session,
    *,
    now: datetime,
    config: SummaryConfig,
    after: uuid.UUID | None,
    limit: int,
) -> tuple[int, uuid.UUID | None]:
    """Build the missing summaries for the next `limit` consents (by id, after `after`) in force
    with share_weekly_summary. Returns (built, last consent id seen, None when done).

    Safe to run twice or in two schedulers: the unique (consent, week) keeps one."""
    consents = JobGate.open(session, now=now).weekly_consents(after=after, limit=limit)
    if not consents:
        return 0, None
    last = consents[-1].id
    ids = [c.id for c in consents]
    # The latest week each consent has a summary for: one that has its last week's is done.
    done: dict[uuid.UUID, date] = dict(
        session.execute(  # type: ignore[arg-type]
            select(WeeklySummary.consent_id, func.max(WeeklySummary.week_start))
            .where(one_of(session, WeeklySummary.consent_id, ids))
            .group_by(WeeklySummary.consent_id)
        ).all()
    )
    users = queries.load_users(session, {c.patient_id for c in consents})
    plans = []
    for consent in consents:
        patient = users.get(consent.patient_id)
        if patient is None:
            continue
        week_start, lo, hi = week_of(now, patient.timezone)
        start = max(lo, consent.window_start)
        if start >= hi or done.get(consent.id, date.min) >= week_start:
            continue  # done, or the consent's data window begins after that week
        plans.append((consent, patient, week_start, lo, hi, start))
    if not plans:
        return 0, last
    loaded = queries.load_rows(
        session,
        patient_ids={p[1].id for p in plans},
        start=min(p[5] for p in plans),
        end=max(p[4] for p in plans),
        now=now,
        categories=CATEGORIES,
    )
    alerts = _open_alerts(session, consents=[p[0] for p in plans], now=now)
    values = []
    for consent, patient, week_start, lo, hi, start in plans:
        period = Period(lo, hi, patient.timezone)
        own = Period(start, hi, patient.timezone)
        doc = build_summary(
            replace(loaded.data[patient.id], open_alerts=alerts[consent.id]),
            patient={"id": patient.id, "display_name": patient.display_name},
            period=period,
            consent=_consent_info(consent),
            generated_at=now,
            now=now,
            notice=config.notice,
            settings=config.settings,
            kind="weekly",
            category_periods=None if own.start == period.start else dict.fromkeys(CATEGORIES, own),
        )
        values.append(
            {
                "id": uuid.uuid4(),
                "consent_id": consent.id,
                "patient_id": patient.id,
                "clinician_id": consent.recipient_id,
                "week_start": week_start,
                "period_from": lo,
                "period_to": hi,
                "status": "built",
                "content": stored(doc),
                "built_at": now,
            }
        )
    built = _insert_ignoring_duplicates(session, values)
    log.info("weekly_summaries.built", count=built)
    return built, last


def _open_alerts(
    session: Session, *, consents: Sequence[WeeklyConsent], now: datetime
) -> dict[uuid.UUID, tuple[AlertRow, ...]]:
    """Per consent, the alerts its recipient sees as open: those the consent covers by category
    and by the time of the events they describe, not acknowledged by that recipient (two
    queries a batch)."""
    patients = {c.patient_id for c in consents}
    rows = session.execute(
        select(
            Alert.id,
            Alert.patient_id,
            Alert.kind,
            Alert.category,
            Alert.triggered_at,
            Alert.created_at,
            Alert.detail,
            Alert.events_from,
            Alert.events_to,
        ).where(
            one_of(session, Alert.patient_id, patients),
            Alert.clinician_visible.is_(True),
            Alert.events_from >= min(c.window_start for c in consents),
            Alert.events_to <= now,
        )
    ).all()
    acked: set[tuple[uuid.UUID, uuid.UUID]] = set()
    if rows:
        acked = {
            (alert_id, clinician_id)
            for alert_id, clinician_id in session.execute(
                select(AlertAcknowledgement.alert_id, AlertAcknowledgement.clinician_id).where(
                    one_of(session, AlertAcknowledgement.alert_id, [r.id for r in rows]),
                    one_of(
                        session,
                        AlertAcknowledgement.clinician_id,
                        {c.recipient_id for c in consents},
                    ),
                )
            )
        }
    out: dict[uuid.UUID, tuple[AlertRow, ...]] = {}
    for consent in consents:
        out[consent.id] = tuple(
            AlertRow(r.id, r.kind, r.category, r.triggered_at or r.created_at, r.detail or "")
            for r in rows
            if r.patient_id == consent.patient_id
            and (r.id, consent.recipient_id) not in acked
            and consent.allows(r.category, r.events_from, r.events_to, now)
        )
    return out


_CONSTANT_PARTS = ("definitions", "redisclosure_notice")


def stored(doc: dict[str, Any]) -> dict[str, Any]:
    """What a weekly summary keeps: the document less the parts that are the same in every one
    (the definitions and the notice, 40% of its size), restored by `hydrate` when it is read."""
    return {k: v for k, v in doc.items() if k not in _CONSTANT_PARTS}


def hydrate(content: dict[str, Any], *, notice: str) -> dict[str, Any]:
    return {
        **content,
        "definitions": definitions_for(content["sections"]),
        "redisclosure_notice": notice,
    }


def _insert_ignoring_duplicates(session: Session, values: list[dict[str, Any]]) -> int:
    if not values:
        return 0
    stmt = insert_ignoring_conflicts(
        dialect_of(session), WeeklySummary, index_elements=["consent_id", "week_start"]
    ).returning(WeeklySummary.id)
    # executemany: compiled once, sent in batches (SQLAlchemy's insertmanyvalues).
    return len(session.execute(stmt, values).all())


def deliver_weekly_batch(session: Session, *, now: datetime, limit: int) -> tuple[int, int]:
    """Deliver up to `limit` built summaries, checking each consent again: one still in force
    delivers (a disclosure row), one revoked or expired since building cancels (its content is
    dropped). Returns (delivered, cancelled). Rows another scheduler holds are skipped.

    A consent is never edited, so what a summary built under it holds is its categories (over
    the part of the week inside its data window): the disclosure says so without reading it."""
    rows = session.execute(
        select(
            WeeklySummary.id,
            WeeklySummary.consent_id,
            WeeklySummary.patient_id,
            WeeklySummary.clinician_id,
            WeeklySummary.period_from,
            WeeklySummary.period_to,
        )
        .where(WeeklySummary.status == "built")
        .order_by(WeeklySummary.built_at, WeeklySummary.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if not rows:
        return 0, 0
    in_force = JobGate.open(session, now=now).still_in_force({r.consent_id for r in rows})
    delivered, cancelled, entries = [], [], []
    for row in rows:
        consent = in_force.get(row.consent_id)
        if consent is None or not consent.share_weekly_summary:
            cancelled.append(row.id)
            continue
        delivered.append(row.id)
        entries.append(
            {
                "patient_id": row.patient_id,
                "recipient_id": row.clinician_id,
                "consent_id": row.consent_id,
                "categories": list(consent.categories),
                "data_from": max(row.period_from, window_start(consent)),
                "data_to": row.period_to,
            }
        )
    record_disclosures(session, kind="summary", entries=entries, now=now)
    if delivered:
        session.execute(
            update(WeeklySummary)
            .where(WeeklySummary.id.in_(delivered))
            .values(status="delivered", delivered_at=now)
        )
    if cancelled:
        session.execute(
            update(WeeklySummary)
            .where(WeeklySummary.id.in_(cancelled))
            .values(status="cancelled", content=None, cancelled_at=now)
        )
    log.info("weekly_summaries.delivered", delivered=len(delivered), cancelled=len(cancelled))
    return len(delivered), len(cancelled)


def queue_notices(session: Session, *, now: datetime, limit: int) -> int:
    """Delivered summaries whose clinician has not been told yet: one email per clinician,
    queued in the outbox (sent after the commit by its sender, with its retries), and the
    summaries marked notified in the same transaction. Returns the emails queued; flushes only."""
    rows = session.execute(
        select(WeeklySummary.id, WeeklySummary.clinician_id)
        .where(WeeklySummary.status == "delivered", WeeklySummary.notified_at.is_(None))
        .order_by(WeeklySummary.clinician_id, WeeklySummary.delivered_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    grouped: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for summary_id, clinician_id in rows:
        grouped[clinician_id].append(summary_id)
    users = queries.load_users(session, grouped)
    queued = 0
    for clinician_id, summary_ids in grouped.items():
        if clinician_id not in users:
            continue
        outbox.queue_email(
            session,
            user_id=clinician_id,
            kind=outbox.WEEKLY_SUMMARIES,
            now=now,
            payload={"summary_ids": [str(i) for i in summary_ids]},
        )
        session.execute(
            update(WeeklySummary).where(WeeklySummary.id.in_(summary_ids)).values(notified_at=now)
        )
        log.info("weekly_summaries.notice_queued", clinician_id=str(clinician_id))
        queued += 1
    return queued


# --- reading stored weekly summaries ----------------------------------------------------------


def _readable(gate: Gate) -> Any:
    """Delivered to this clinician under a consent still in force: a revoked or expired consent
    hides what it delivered (no read after revocation)."""
    return (
        (WeeklySummary.clinician_id == gate.clinician_id)
        & (WeeklySummary.status == "delivered")
        & WeeklySummary.consent_id.in_(gate.consent_ids())
    )


def list_weekly_summaries(
    session: Session,
    *,
    clinician_id: uuid.UUID,
    patient_id: uuid.UUID | None,
    limit: int,
    cursor: str | None,
    now: datetime,
) -> dict[str, Any]:
    gate = Gate.open(session, clinician_id=clinician_id, now=now)
    stmt = select(WeeklySummary).where(_readable(gate))
    if patient_id is not None:
        stmt = stmt.where(WeeklySummary.patient_id == patient_id)
    items, next_cursor = keyset_page(
        session,
        stmt,
        order=WeeklySummary.delivered_at,  # type: ignore[arg-type]
        tiebreak=WeeklySummary.id,
        limit=limit,
        cursor=cursor,
    )
    names = queries.load_users(session, {s.patient_id for s in items})
    for item in items:
        item.display_name = names[item.patient_id].display_name  # type: ignore[attr-defined]
    return {"items": items, "next_cursor": next_cursor}


def get_weekly_summary(
    session: Session,
    *,
    clinician_id: uuid.UUID,
    summary_id: uuid.UUID,
    now: datetime,
    notice: str,
) -> dict[str, Any]:
    """The summary with its document as delivered. Raises NotFound unless delivered to this
    clinician under a consent still in force."""
    gate = Gate.open(session, clinician_id=clinician_id, now=now)
    row = session.scalar(
        select(WeeklySummary).where(WeeklySummary.id == summary_id, _readable(gate))
    )
    if row is None:
        raise NotFound("No such summary.")
    fields = (
        "id",
        "patient_id",
        "consent_id",
        "week_start",
        "period_from",
        "period_to",
        "built_at",
        "delivered_at",
    )
    view = {name: getattr(row, name) for name in fields}
    view["display_name"] = (row.content or {}).get("patient", {}).get("display_name")
    view["content"] = hydrate(row.content or {}, notice=notice)
    return view
