"""Sections for the features' data: medications, doses, counseling sessions (and the rest as
they land). Records are built from Core rows, shaped exactly as each feature's output schema
dumps them (tests/export/test_sections.py checks the parity), because marshmallow per row would
cost more than the whole FHIR mapping in a bulk export."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth.models import User
from api.checkins.models import Checkin
from api.consent.models import Consent, ConsentCategory
from api.counseling.models import CounselingSession
from api.cows.models import CowsAssessment
from api.devices.models import Device
from api.devices.schemas import DeviceSchema
from api.disclosures.models import Disclosure
from api.export import fhir
from api.export.sections import (
    TIME_COLUMNS,
    YIELD_PER,
    Column,
    Section,
    Window,
    fhir_many,
    fhir_one,
    in_chunks,
    json_cell,
    register,
    rows_of,
    when_field,
)
from api.inbox.schemas import InboxItemSchema
from api.inbox.services import _item as inbox_item
from api.instruments.services import list_instruments
from api.localtime import local_day_start
from api.medications.models import Dose, Medication
from api.notifications.models import Notification
from api.reminders.models import ReminderRule
from api.reminders.schemas import ReminderSchema
from api.summaries.compute import definitions_for
from api.summaries.models import WeeklySummary

Rows = Iterator[tuple[uuid.UUID, dict[str, Any]]]

# --- Check-ins -------------------------------------------------------------------------------


def _symptom(name: str) -> Callable[[Any], Any]:
    """The CSV cell of one everyday symptom (a function per name: no late-binding lambda)."""
    return lambda row: (row["symptoms"] or {}).get(name)


def instrument_catalogue() -> dict[str, dict[str, str]]:
    """Item texts per instrument, for QuestionnaireResponse.item.text."""
    return {i.code: {item.key: item.text for item in i.items} for i in list_instruments()}


@lru_cache(maxsize=256)
def _offset(minutes: int) -> timezone:
    return timezone(timedelta(minutes=minutes))


def checkin_record(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        # As the API gives it back: with the offset the client sent.
        "recorded_at": row.recorded_at.astimezone(_offset(row.recorded_offset_minutes)),
        "instrument": row.instrument,
        "instrument_version": row.instrument_version,
        "answers": row.answers,
        "total": row.total,
        "severity": row.severity,
        "symptoms": row.symptoms,
        "craving": row.craving,
        "craving_scale": row.craving_scale,
        "sleep_hours": row.sleep_hours,
        "note": row.note,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def _checkin_rows(session: Session, user_ids: Sequence[uuid.UUID] | None, window: Window) -> Rows:
    # Deleted check-ins are tombstones without content: not exported.
    base = (
        select(Checkin.__table__)
        .where(Checkin.deleted_at.is_(None))
        .order_by(Checkin.user_id, Checkin.recorded_at, Checkin.id)
    )
    for row in rows_of(
        session,
        base,
        owner=Checkin.user_id,
        changed=Checkin.updated_at,
        window=window,
        user_ids=user_ids,
    ):
        yield row.user_id, checkin_record(row)


CHECKINS = register(
    Section(
        name="checkins",
        title="Check-ins: withdrawal scale answers and scores, symptoms, craving, sleep, notes.",
        rows=_checkin_rows,
        category="symptoms",
        position=10,
        columns=(
            Column("id", "Check-in id (UUID)."),
            Column("recorded_at", "When you felt this, with the offset you recorded it in."),
            Column("instrument", "sows or sows-gossop, or empty."),
            Column("instrument_version", "Version of the scale."),
            Column(
                "answers",
                "JSON object item key -> answer (keys as GET /v1/instruments lists them).",
                lambda r: json_cell(r["answers"]) if r["answers"] is not None else None,
            ),
            Column("total", "Total score of the scale."),
            Column("severity", "Indicative band where the scale has one, else empty."),
            *(
                Column(
                    f"symptom_{name}",
                    f"{name.replace('_', ' ')} (0 = none ... 10 = worst), or empty.",
                    _symptom(name),
                )
                for name in fhir.SYMPTOM_NAMES
            ),
            Column("craving", "Craving rating, on the scale in craving_scale."),
            Column("craving_scale", "The craving scale (0-10 numeric rating)."),
            Column("sleep_hours", "Hours slept."),
            Column("note", "Your note."),
            *TIME_COLUMNS,
        ),
        to_fhir=fhir_many(fhir.checkin_resources),
        fhir_types=("QuestionnaireResponse", "Observation"),
        when=when_field("recorded_at"),
        feed_entity="checkin",
        deleted_refs=fhir.checkin_references,
    )
)

# --- Medications -----------------------------------------------------------------------------


def medication_record(row: Any, now: datetime) -> dict[str, Any]:
    # Values stay as the database gives them (UUID, date, datetime); the writers format them,
    # and the FHIR mapping formats only what it uses.
    # The model's own rule decides `active` (not archived, today within the dates in its zone).
    shape = SimpleNamespace(
        archived_at=row.archived_at,
        zone=ZoneInfo(row.schedule_timezone),
        start_date=row.start_date,
        end_date=row.end_date,
    )
    return {
        "id": row.id,
        "name": row.name,
        "dose": row.dose,
        "unit": row.unit,
        "times": list(row.times or []),
        "days_of_week": list(row.days_of_week) if row.days_of_week is not None else None,
        "start_date": row.start_date,
        "end_date": row.end_date,
        "as_needed": row.as_needed,
        "rxnorm_code": row.rxnorm_code,
        "active": Medication.is_active(shape, now),  # type: ignore[arg-type]
        "archived_at": row.archived_at,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        # For the consent window; not part of the JSON record.
        "_in_effect_until": in_effect_until(row, shape.zone, now),
    }


def in_effect_until(row: Any, zone: ZoneInfo, now: datetime) -> datetime:
    """The last instant a regimen was in effect, as of `now`: its archiving, the end of its last
    day, or `now` while it runs. A regimen is data about the time it was in effect, so a consent
    window that this instant falls in (it ended inside the window, or runs still) may hold it;
    one that ended before the window may not."""
    ends = [now]
    if row.archived_at is not None:
        ends.append(row.archived_at)
    if row.end_date is not None and row.end_date < date.max:
        ends.append(local_day_start(row.end_date + timedelta(days=1), zone))
    return min(ends)


def _medication_rows(
    session: Session, user_ids: Sequence[uuid.UUID] | None, window: Window
) -> Rows:
    now = window.at
    base = select(Medication.__table__).order_by(Medication.user_id, Medication.created_at)
    for row in rows_of(
        session,
        base,
        owner=Medication.user_id,
        changed=Medication.updated_at,
        window=window,
        user_ids=user_ids,
    ):
        yield row.user_id, medication_record(row, now)


MEDICATIONS = register(
    Section(
        name="medications",
        title="Medication regimens (archived ones too).",
        rows=_medication_rows,
        category="medications",
        position=20,
        columns=(
            Column("id", "Regimen id (UUID)."),
            Column("name", "The name as you wrote it."),
            Column("dose", "Amount per dose."),
            Column("unit", "Unit of the dose (mg, mcg, ml, tablet, film, ...)."),
            Column(
                "times", "Local dose times, JSON list of HH:MM.", lambda r: json_cell(r["times"])
            ),
            Column(
                "days_of_week",
                "JSON list of weekdays (1 = Monday ... 7); empty = every day.",
                lambda r: json_cell(r["days_of_week"]) if r["days_of_week"] else None,
            ),
            Column("start_date", "First day (YYYY-MM-DD)."),
            Column("end_date", "Last day, or empty."),
            Column("as_needed", "true: taken as needed, not on a schedule."),
            Column("rxnorm_code", "RxNorm code, if given."),
            Column("active", "true when the export was made: not archived, today within dates."),
            Column("archived_at", "When it was archived (deleted), or empty."),
            *TIME_COLUMNS,
        ),
        to_fhir=fhir_one(fhir.medication_statement),
        fhir_types=("MedicationStatement",),
        when=lambda r: r["_in_effect_until"],
        # Regimens are archived, not deleted, today; a delete in the feed would be reported.
        feed_entity="medication",
        deleted_refs=lambda medication_id: [("MedicationStatement", str(medication_id))],
    )
)

# --- Doses -----------------------------------------------------------------------------------


def dose_record(row: Any, medication: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "medication_id": row.medication_id,
        "status": row.status,
        "source": row.source,
        "scheduled_for": row.scheduled_for,
        "taken_at": row.taken_at,
        "note": row.note,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        # For the FHIR mapping and the CSV's medication_name; not part of the JSON record.
        "_medication": medication,
    }


def _dose_rows(session: Session, user_ids: Sequence[uuid.UUID] | None, window: Window) -> Rows:
    base = (
        select(
            Dose.__table__,
            Medication.name.label("medication_name"),
            Medication.dose.label("medication_dose"),
            Medication.unit.label("medication_unit"),
            Medication.rxnorm_code.label("medication_rxnorm_code"),
        )
        .join(Medication, Medication.id == Dose.medication_id)
        .order_by(Dose.user_id, Dose.dose_at, Dose.id)
    )
    # One shared dict per regimen (not per dose): many doses, few regimens.
    medications: dict[uuid.UUID, dict[str, Any]] = {}
    for row in rows_of(
        session, base, owner=Dose.user_id, changed=Dose.updated_at, window=window, user_ids=user_ids
    ):
        medication = medications.get(row.medication_id)
        if medication is None:
            medication = medications[row.medication_id] = {
                "id": str(row.medication_id),
                "name": row.medication_name,
                "dose": row.medication_dose,
                "unit": row.medication_unit,
                "rxnorm_code": row.medication_rxnorm_code,
            }
        yield row.user_id, dose_record(row, medication)


def _dose_fhir(
    record: dict[str, Any], ctx: fhir.FhirContext, patient_id: uuid.UUID | str
) -> list[dict[str, Any]]:
    return [
        fhir.medication_administration(record, record["_medication"], ctx, patient_id=patient_id)
    ]


DOSES = register(
    Section(
        name="doses",
        title="Dose logs: taken, skipped, and missed doses the service recorded.",
        rows=_dose_rows,
        category="medications",
        position=30,
        columns=(
            Column("id", "Dose id (UUID)."),
            Column("medication_id", "The regimen (medications.csv id)."),
            Column("medication_name", "The regimen's name.", lambda r: r["_medication"]["name"]),
            Column("status", "taken, skipped or missed."),
            Column("source", "user (you logged it) or system (recorded as missed)."),
            Column("scheduled_for", "The dose time it answers (UTC), or empty (as needed)."),
            Column("taken_at", "When it was taken (UTC), or empty."),
            Column("note", "Your note."),
            *TIME_COLUMNS,
        ),
        to_fhir=_dose_fhir,
        fhir_types=("MedicationAdministration",),
        feed_entity="dose",
        deleted_refs=lambda dose_id: [("MedicationAdministration", str(dose_id))],
        when=lambda r: when_field("taken_at")(r) or when_field("scheduled_for")(r),
    )
)

# --- Counseling sessions ---------------------------------------------------------------------


def session_record(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "title": row.title,
        "starts_at": row.starts_at,
        "duration_minutes": row.duration_minutes,
        "provider_name": row.provider_name,
        "location": row.location,
        "attendance": row.attendance,
        "note": row.note,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def _session_rows(session: Session, user_ids: Sequence[uuid.UUID] | None, window: Window) -> Rows:
    table = CounselingSession
    base = select(table.__table__).order_by(table.user_id, table.starts_at, table.id)
    for row in rows_of(
        session,
        base,
        owner=table.user_id,
        changed=table.updated_at,
        window=window,
        user_ids=user_ids,
    ):
        yield row.user_id, session_record(row)


COUNSELING = register(
    Section(
        name="counseling_sessions",
        title="Counseling sessions and their attendance.",
        rows=_session_rows,
        category="counseling",
        position=40,
        columns=(
            Column("id", "Session id (UUID)."),
            Column("kind", "individual, group, peer_support, family or other."),
            Column("title", "Title."),
            Column("starts_at", "Start (UTC)."),
            Column("duration_minutes", "Length in minutes."),
            Column("provider_name", "Counselor or provider, if given."),
            Column("location", "Where, if given."),
            Column("attendance", "scheduled, attended, missed, cancelled or rescheduled."),
            Column("note", "Your note (never shared with clinicians)."),
            *TIME_COLUMNS,
        ),
        to_fhir=fhir_many(fhir.session_resources),
        fhir_types=("Appointment", "Encounter"),
        when=when_field("starts_at"),
        feed_entity="counseling_session",
        deleted_refs=fhir.session_references,
    )
)

# --- COWS assessments (recorded by clinicians, part of the patient's record) ---------------


def cows_record(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "assessed_at": row.assessed_at,
        "clinician_id": row.clinician_id,
        "instrument": "cows",
        "instrument_version": row.instrument_version,
        "answers": row.answers,
        "total": row.total,
        "severity": row.severity,
        "created_at": row.created_at,
    }


def _cows_rows(session: Session, user_ids: Sequence[uuid.UUID] | None, window: Window) -> Rows:
    table = CowsAssessment
    base = select(table.__table__).order_by(table.patient_id, table.assessed_at, table.id)
    for row in rows_of(
        session,
        base,
        owner=table.patient_id,
        changed=table.created_at,
        window=window,
        user_ids=user_ids,
    ):
        yield row.patient_id, cows_record(row)


def _cows_fhir(
    record: dict[str, Any], ctx: fhir.FhirContext, patient_id: uuid.UUID | str
) -> list[dict[str, Any]]:
    as_checkin = {**record, "recorded_at": record["assessed_at"]}
    score = fhir.score_observation(as_checkin, ctx, patient_id=patient_id)
    if score is None:
        return []
    # Clinician-administered: no QuestionnaireResponse of the patient's, the clinician performed it.
    score.pop("derivedFrom", None)
    performer = record["clinician_id"]
    if ctx.disclosed and str(performer) != ctx.recipient_id:
        performer = None  # a disclosed copy names no clinician but its recipient
    score["performer"] = [{"reference": f"Practitioner/{performer}"}] if performer else []
    if not score["performer"]:
        del score["performer"]
    return [score]


COWS = register(
    Section(
        name="cows_assessments",
        title="COWS assessments your clinicians recorded.",
        rows=_cows_rows,
        category="symptoms",
        position=15,
        columns=(
            Column("id", "Assessment id (UUID)."),
            Column("assessed_at", "When the clinician assessed (UTC)."),
            Column("clinician_id", "The clinician who recorded it, or empty if erased."),
            Column("instrument_version", "Version of COWS."),
            Column("answers", "JSON object item key -> value.", lambda r: json_cell(r["answers"])),
            Column("total", "Total score (0-48)."),
            Column("severity", "Band (mild, moderate, moderately severe, severe), or empty."),
            Column("created_at", "When it was recorded (UTC)."),
        ),
        to_fhir=_cows_fhir,
        fhir_types=("Observation",),
        when=when_field("assessed_at"),
    )
)

# --- Consents and the accounting of disclosures (own export only) ----------------------------


def consent_record(row: Any, categories: list[str], now: datetime) -> dict[str, Any]:
    status = "active"
    if row.revoked_at is not None:
        status = "revoked"
    elif row.expires_at is not None and row.expires_at <= now:
        status = "expired"
    return {
        "id": row.id,
        "status": status,
        "patient_id": row.patient_id,
        "discloser": row.discloser,
        "recipient_id": row.recipient_id,
        "recipient_name": row.recipient_name,
        "recipient_organization": row.recipient_organization,
        "categories": categories,
        "purpose": row.purpose,
        "share_weekly_summary": row.share_weekly_summary,
        "expires_at": row.expires_at,
        "data_from": row.data_from,
        "revocation_statement": row.revocation_statement,
        "signature": row.signature,
        "consent_text_version": row.consent_text_version,
        "signed_at": row.signed_at,
        "replaces_id": row.replaces_id,
        "revoked_at": row.revoked_at,
        # For the FHIR mapping: the recipient as a display name.
        "_recipient": {"id": row.recipient_id, "display_name": row.recipient_name},
    }


def _consent_rows(session: Session, user_ids: Sequence[uuid.UUID] | None, window: Window) -> Rows:
    # A patient has a handful of consents: read them, then their categories in one query.
    now = window.at
    base = select(Consent.__table__).order_by(Consent.patient_id, Consent.signed_at, Consent.id)
    for stmt in in_chunks(base, Consent.patient_id, user_ids):
        rows = list(session.execute(stmt))
        categories: dict[uuid.UUID, list[str]] = {}
        for consent_id, category in session.execute(
            select(ConsentCategory.consent_id, ConsentCategory.category)
            .where(ConsentCategory.consent_id.in_([r.id for r in rows]))
            .order_by(ConsentCategory.category)
        ):
            categories.setdefault(consent_id, []).append(category)
        for row in rows:
            yield row.patient_id, consent_record(row, categories.get(row.id, []), now)


def _consent_fhir(
    record: dict[str, Any], ctx: fhir.FhirContext, patient_id: uuid.UUID | str
) -> list[dict[str, Any]]:
    return [fhir.consent({**record, "recipient": record["_recipient"]}, ctx, patient_id=patient_id)]


CONSENTS = register(
    Section(
        name="consents",
        title="Consents you signed (42 CFR Part 2), revoked and expired ones too.",
        rows=_consent_rows,
        own_only=True,
        position=60,
        columns=(
            Column("id", "Consent id (UUID)."),
            Column("status", "active, expired or revoked (when the export was made)."),
            Column("recipient_id", "The clinician's id."),
            Column("recipient_name", "The clinician, as named when you signed."),
            Column("recipient_organization", "Their organization."),
            Column(
                "categories", "JSON list of data categories.", lambda r: json_cell(r["categories"])
            ),
            Column("purpose", "treatment, care_coordination or patient_request."),
            Column("share_weekly_summary", "true: a weekly summary is sent."),
            Column("expires_at", "When it ends, or empty (treatment only)."),
            Column("data_from", "Start of the data it covers, or empty (from signing)."),
            Column("signature", "Your typed signature."),
            Column("consent_text_version", "The consent text you saw."),
            Column("signed_at", "When you signed (UTC)."),
            Column("revoked_at", "When you revoked it, or empty."),
        ),
        to_fhir=_consent_fhir,
        fhir_types=("Consent",),
    )
)


# --- Weekly summaries shared about the user (own export only) --------------------------------


def summary_record(row: Any) -> dict[str, Any]:
    content = row.content
    if content is not None:
        # The document as its recipient read it (definitions restored), less the redisclosure
        # notice, which speaks to the recipient.
        content = {**content, "definitions": definitions_for(content.get("sections") or {})}
    return {
        "id": row.id,
        "consent_id": row.consent_id,
        "recipient_id": row.clinician_id,
        "recipient_name": row.recipient_name,
        "week_start": row.week_start,
        "from": row.period_from,
        "to": row.period_to,
        "status": row.status,
        "built_at": row.built_at,
        "delivered_at": row.delivered_at,
        "cancelled_at": row.cancelled_at,
        "content": content,
    }


def _summary_rows(session: Session, user_ids: Sequence[uuid.UUID] | None, window: Window) -> Rows:
    table = WeeklySummary
    base = (
        select(table.__table__, Consent.recipient_name)
        .join(Consent, Consent.id == table.consent_id)
        .order_by(table.patient_id, table.week_start, table.built_at, table.id)
    )
    for row in rows_of(
        session,
        base,
        owner=table.patient_id,
        changed=table.built_at,
        window=window,
        user_ids=user_ids,
    ):
        yield row.patient_id, summary_record(row)


SUMMARIES = register(
    Section(
        name="weekly_summaries",
        title="Weekly summaries about you built for the clinicians you chose (42 CFR Part 2).",
        rows=_summary_rows,
        own_only=True,
        position=65,
        columns=(
            Column("id", "Summary id (UUID)."),
            Column("consent_id", "The consent it was made under (consents.csv id)."),
            Column("recipient_id", "The clinician it is for."),
            Column("recipient_name", "The clinician, as named in the consent."),
            Column("week_start", "The local Monday of the week it covers (YYYY-MM-DD)."),
            Column("from", "Start of the period of data (UTC)."),
            Column("to", "End of the period of data (UTC)."),
            Column(
                "status",
                "built (waiting to go out), delivered, or cancelled (the consent ended first; "
                "the document was dropped and never shared).",
            ),
            Column("built_at", "When it was made (UTC)."),
            Column("delivered_at", "When the clinician received it, or empty."),
            Column("cancelled_at", "When it was cancelled, or empty."),
            Column(
                "content",
                "The summary document as the clinician reads it (JSON; see docs/summaries.md).",
                lambda r: json_cell(r["content"]) if r["content"] is not None else None,
            ),
        ),
    )
)


def disclosure_record(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "at": row.at,
        "recipient": {
            "id": row.recipient_id,
            "display_name": row.recipient_name,
            "organization": row.recipient_organization,
        },
        "consent_id": row.consent_id,
        "kind": row.kind,
        "categories": row.categories,
        "data_from": row.data_from,
        "data_to": row.data_to,
    }


def _disclosure_rows(
    session: Session, user_ids: Sequence[uuid.UUID] | None, window: Window
) -> Rows:
    base = select(Disclosure.__table__).order_by(Disclosure.patient_id, Disclosure.at)
    for row in rows_of(
        session,
        base,
        owner=Disclosure.patient_id,
        changed=Disclosure.at,
        window=window,
        user_ids=user_ids,
    ):
        yield row.patient_id, disclosure_record(row)


DISCLOSURES = register(
    Section(
        name="disclosures",
        title="Accounting of disclosures: who received which of your data, when.",
        rows=_disclosure_rows,
        own_only=True,
        position=70,
        columns=(
            Column("id", "Ledger row id (UUID)."),
            Column("at", "When (UTC)."),
            Column("recipient_name", "Who received it.", lambda r: r["recipient"]["display_name"]),
            Column(
                "recipient_organization",
                "Their organization.",
                lambda r: r["recipient"]["organization"],
            ),
            Column("consent_id", "Under which consent."),
            Column("kind", "read, summary or export."),
            Column("categories", "JSON list of categories.", lambda r: json_cell(r["categories"])),
            Column("data_from", "Start of the period of data disclosed."),
            Column("data_to", "End of the period of data disclosed."),
        ),
        to_fhir=fhir_one(fhir.audit_event),
        fhir_types=("AuditEvent",),
    )
)

# --- Reminders, devices, inbox (own export only; few rows, dumped by the features' schemas) ---


def _orm_rows(
    session: Session,
    model: Any,
    user_ids: Sequence[uuid.UUID] | None,
    order: Any,
    where: Any = None,
) -> Iterator[Any]:
    base = select(model).order_by(model.user_id, order, model.id)
    if where is not None:
        base = base.where(where)
    for stmt in in_chunks(base, model.user_id, user_ids):
        yield from session.scalars(stmt.execution_options(yield_per=YIELD_PER))


def _reminder_rows(session: Session, user_ids: Sequence[uuid.UUID] | None, _window: Window) -> Rows:
    schema = ReminderSchema()
    for rule in _orm_rows(session, ReminderRule, user_ids, ReminderRule.created_at):
        yield rule.user_id, schema.dump(rule)


def _device_rows(session: Session, user_ids: Sequence[uuid.UUID] | None, _window: Window) -> Rows:
    schema = DeviceSchema()  # never the push token
    for device in _orm_rows(session, Device, user_ids, Device.created_at):
        yield device.user_id, schema.dump(device)


def _inbox_rows(session: Session, user_ids: Sequence[uuid.UUID] | None, _window: Window) -> Rows:
    schema = InboxItemSchema()
    discreet: dict[uuid.UUID, bool] = {}
    for note in _orm_rows(
        session,
        Notification,
        user_ids,
        Notification.inbox_at,
        where=Notification.inbox_at.is_not(None),
    ):
        if note.user_id not in discreet:
            user = session.get(User, note.user_id)
            discreet[note.user_id] = bool(user and user.discreet_notifications)
        yield note.user_id, schema.dump(inbox_item(note, discreet=discreet[note.user_id]))


def _json_or_none(key: str) -> Callable[[dict[str, Any]], Any]:
    return lambda r: json_cell(r[key]) if r.get(key) is not None else None


REMINDERS = register(
    Section(
        name="reminders",
        title="Reminder rules.",
        rows=_reminder_rows,
        own_only=True,
        position=50,
        columns=(
            Column("id", "Reminder id (UUID)."),
            Column("kind", "medication, checkin or counseling."),
            Column("medication_id", "The regimen, for medication reminders."),
            Column("local_time", "Local time HH:MM (check-in reminders)."),
            Column("lead_minutes", "Minutes before a session (counseling reminders)."),
            Column(
                "days_of_week", "JSON list of weekdays, or empty.", _json_or_none("days_of_week")
            ),
            Column("channels", "JSON list of channels.", _json_or_none("channels")),
            Column("enabled", "true when on."),
            Column("timezone", "The zone its times are in."),
            Column("next_fire_at", "Next time it fires (UTC)."),
        ),
    )
)
DEVICES = register(
    Section(
        name="devices",
        title="Devices registered for push notifications (the push token is never exported).",
        rows=_device_rows,
        own_only=True,
        position=55,
        columns=(
            Column("id", "Device id (UUID)."),
            Column("platform", "ios, android or web."),
            Column("enabled", "false once the provider rejected the token."),
            *TIME_COLUMNS,
        ),
    )
)
INBOX = register(
    Section(
        name="inbox",
        title="Notifications that reached your inbox.",
        rows=_inbox_rows,
        own_only=True,
        position=57,
        columns=(
            Column("id", "Notification id (UUID)."),
            Column("kind", "checkin, medication or counseling."),
            Column("reminder_id", "The reminder that sent it."),
            Column("title", "Title as shown."),
            Column("body", "Text as shown."),
            Column("scheduled_for", "The occurrence it was for (UTC)."),
            Column("delivered_at", "When it reached the inbox (UTC)."),
            Column("read_at", "When you read it, or empty."),
            Column("snoozed", "true for a snoozed re-fire."),
        ),
    )
)
