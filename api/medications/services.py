"""Regimens, dose logs and missed-dose materialisation. Services flush, never commit.

Policies (docs/medications.md): one log per scheduled dose (a second user log answers 409; the
log is changed with PATCH /v1/doses/{id}); a user log replaces the `missed` row the system
stored for that dose; DELETE of a regimen archives it; a change of dose times, days, as_needed or
time zone applies from that instant on, the doses before it being kept as rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Select, delete, or_, select
from sqlalchemy.orm import Session

from api.auth.models import User
from api.dml import dialect_of, insert_ignoring_conflicts
from api.errors import Conflict, NotFound, ValidationError
from api.localtime import local_day_end, local_day_start
from api.medications import signals
from api.medications.models import Dose, Medication, missed_dose_id
from api.medications.rules import missed_cutoff
from api.medications.schedule import regimen_doses
from api.medications.schemas import (
    DoseSchema,
    MedicationSchema,
    normalise_regimen,
    regimen_errors,
)
from api.offline import create_once, replay
from api.pagination import keyset_page
from api.sync.services import record_change, register_entity

log = structlog.get_logger("waymark.medications")

DEFAULT_ON_TIME_WINDOW_MINUTES = 60
# A phone's clock may run a little ahead of ours; a dose "taken" further ahead is refused.
CLOCK_SKEW = timedelta(minutes=10)
MISSED_LOOKBACK = timedelta(days=7)
_TICK = timedelta(microseconds=1)
_SCHEDULE_FIELDS = ("times", "days_of_week", "as_needed")
_REGIMEN_FIELDS = (
    "name",
    "dose",
    "unit",
    "times",
    "days_of_week",
    "start_date",
    "end_date",
    "as_needed",
    "rxnorm_code",
)


# How far back a schedule change stores the old schedule's unlogged doses as missed: a quarter
# at 24 doses a day is ~2,200 rows (docs/medications.md).
MAX_BACKFILL = timedelta(days=92)


# Regimens ------------------------------------------------------------------------------------


def get_medication(session: Session, *, user_id: uuid.UUID, medication_id: uuid.UUID) -> Medication:
    """Raises NotFound unless the medication exists and is the user's."""
    medication = session.get(Medication, medication_id)
    if medication is None or medication.user_id != user_id:
        raise NotFound("No such medication.")
    return medication


def list_medications(
    session: Session,
    *,
    user_id: uuid.UUID,
    include_archived: bool = False,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[Medication], str | None]:
    stmt = select(Medication).where(Medication.user_id == user_id)
    if not include_archived:
        stmt = stmt.where(Medication.archived_at.is_(None))
    return keyset_page(
        session,
        stmt,
        order=Medication.created_at,
        tiebreak=Medication.id,
        limit=limit,
        cursor=cursor,
    )


def create_medication(
    session: Session,
    *,
    user_id: uuid.UUID,
    timezone: str,
    body: dict[str, Any],
    now: datetime,
) -> tuple[Medication, bool]:
    """Store a regimen (idempotent on a client id). Returns (medication, created).

    Raises ValidationError (regimen rules) or Conflict (client id used with another body).
    """
    values = {key: body[key] for key in _REGIMEN_FIELDS}
    errors = regimen_errors(values)
    if errors:
        raise ValidationError(errors)
    medication = Medication(
        id=body.get("id"),
        user_id=user_id,
        schedule_timezone=timezone,
        created_at=now,
        updated_at=now,
        **normalise_regimen(values),
    )
    medication, created = create_once(session, medication, body=body, feed="medication", now=now)
    if created:
        signals.send_regimen_changed(session, medication=medication, now=now)
        log.info("medication.created", medication_id=str(medication.id), user_id=str(user_id))
    return medication, created


def update_medication(
    session: Session,
    *,
    user_id: uuid.UUID,
    medication_id: uuid.UUID,
    timezone: str,
    changes: dict[str, Any],
    now: datetime,
) -> Medication:
    """Change a regimen. Raises NotFound, Conflict (archived), ValidationError (merged rules).

    A new schedule or time zone applies from `now`: the doses of the old schedule before `now`
    that have no log are stored as missed first, so history keeps the doses that were due.
    """
    medication = get_medication(session, user_id=user_id, medication_id=medication_id)
    if medication.archived_at is not None:
        raise Conflict("An archived medication cannot be changed.")
    merged = {key: getattr(medication, key) for key in _REGIMEN_FIELDS}
    merged.update(changes)
    errors = regimen_errors(merged)
    if errors:
        raise ValidationError(errors)
    merged = normalise_regimen(merged)
    schedule_changed = any(merged[k] != getattr(medication, k) for k in _SCHEDULE_FIELDS)
    previous_times = [] if medication.as_needed else list(medication.times)
    previous_zone = medication.schedule_timezone
    if schedule_changed or timezone != medication.schedule_timezone:
        rebase_schedule(session, medication=medication, timezone=timezone, now=now)
    dates_changed = (merged["start_date"], merged["end_date"]) != (
        medication.start_date,
        medication.end_date,
    )
    for key in _REGIMEN_FIELDS:
        setattr(medication, key, merged[key])
    medication.updated_at = now
    if dates_changed:
        _drop_missed_outside_dates(session, medication=medication, now=now)
    session.flush()
    if schedule_changed or dates_changed or timezone != previous_zone:
        # Reminder rules follow the regimen: one per dose time (api.reminders listens).
        signals.send_regimen_changed(
            session, medication=medication, now=now, previous_times=previous_times
        )
    record_change(
        session,
        user_id=user_id,
        entity_type="medication",
        entity_id=medication.id,
        op="upsert",
        now=now,
    )
    log.info("medication.updated", medication_id=str(medication.id), user_id=str(user_id))
    return medication


def archive_medication(
    session: Session, *, user_id: uuid.UUID, medication_id: uuid.UUID, now: datetime
) -> Medication:
    """DELETE archives: no doses are scheduled from `now` on; the logs stay. Idempotent."""
    medication = get_medication(session, user_id=user_id, medication_id=medication_id)
    if medication.archived_at is None:
        medication.archived_at = now
        medication.updated_at = now
        session.flush()
        signals.send_regimen_changed(session, medication=medication, now=now)
        record_change(
            session,
            user_id=user_id,
            entity_type="medication",
            entity_id=medication.id,
            op="upsert",
            now=now,
        )
        log.info("medication.archived", medication_id=str(medication.id), user_id=str(user_id))
    return medication


def rebase_schedule(
    session: Session,
    *,
    medication: Medication,
    timezone: str,
    now: datetime,
    window_minutes: int = DEFAULT_ON_TIME_WINDOW_MINUTES,
) -> int:
    """Close the current schedule at `now`: store its unlogged doses before `now` as missed, and
    expand from `now` on (in `timezone`). Returns how many missed rows were stored."""
    stored = 0
    if not medication.as_needed:
        # Bounded whatever the regimen's dates: a web request (PATCH, a zone change) does this,
        # and a regimen backdated years (or stored with a year-1000 start) held a worker for
        # the whole gunicorn timeout. Unlogged doses older than this are not stored as missed.
        first = max(local_day_start(medication.start_date, medication.zone), now - MAX_BACKFILL)
        slots = regimen_doses(medication, first, now)
        stored = _store_missed(
            session,
            [(medication, slots)],
            since=first,
            until=now,
            now=now,
            window_minutes=window_minutes,
        )
    medication.schedule_from = now
    medication.schedule_timezone = timezone
    return stored


def rebase_timezone(session: Session, *, user_id: uuid.UUID, timezone: str, now: datetime) -> int:
    """After the user's zone changed: every live regimen follows the new zone from `now` on.

    The missed-dose job does this within a run on its own; calling it when the zone changes
    (PATCH /v1/me) makes it immediate.
    """
    medications = session.scalars(
        select(Medication).where(
            Medication.user_id == user_id,
            Medication.archived_at.is_(None),
            Medication.schedule_timezone != timezone,
        )
    )
    return sum(
        rebase_schedule(session, medication=m, timezone=timezone, now=now) for m in medications
    )


def _drop_missed_outside_dates(session: Session, *, medication: Medication, now: datetime) -> None:
    # Dates are corrections ("I stopped on Monday"): missed rows the system stored for days now
    # outside the regimen go; what the user logged stays.
    zone = medication.zone
    outside = Dose.scheduled_for < local_day_start(medication.start_date, zone)
    if medication.end_date is not None:
        after = local_day_end(medication.end_date, zone)
        outside = or_(outside, Dose.scheduled_for >= after)
    ids = list(
        session.scalars(
            select(Dose.id).where(
                Dose.medication_id == medication.id, Dose.source == "system", outside
            )
        )
    )
    if not ids:
        return
    session.execute(
        delete(Dose).where(Dose.id.in_(ids)), execution_options={"synchronize_session": False}
    )
    for dose_id in ids:
        record_change(
            session,
            user_id=medication.user_id,
            entity_type="dose",
            entity_id=dose_id,
            op="delete",
            now=now,
        )


# Dose logs -----------------------------------------------------------------------------------


def get_dose(session: Session, *, user_id: uuid.UUID, dose_id: uuid.UUID) -> Dose:
    dose = session.get(Dose, dose_id)
    if dose is None or dose.user_id != user_id:
        raise NotFound("No such dose.")
    return dose


def log_dose(
    session: Session,
    *,
    user_id: uuid.UUID,
    medication_id: uuid.UUID,
    body: dict[str, Any],
    now: datetime,
    timezone: str | None = None,
) -> tuple[Dose, bool]:
    """Log a scheduled dose (taken or skipped) or an as-needed dose. Returns (dose, created).

    Raises NotFound (not the user's medication), ValidationError (scheduled_for not a dose time
    of the regimen, taken_at in the future, ...), Conflict (the dose already has a user log, or
    the client id was used with another body). A stored `missed` row for that dose is replaced.
    `timezone` is the user's zone now: if it changed, the regimen follows it from `now` first.
    """
    medication = get_medication(session, user_id=user_id, medication_id=medication_id)
    # One log of a medication at a time: concurrent resends of one dose then find each other's
    # row (and answer like the first) instead of racing for its slot (409) or its missed row.
    session.execute(select(Medication.id).where(Medication.id == medication.id).with_for_update())
    fingerprinted = {**body, "medication_id": medication_id}
    client_id = body.get("id")
    if client_id is not None and session.get(Dose, client_id) is not None:
        # A resend: answer the stored log (or 409), before the slot looks taken by itself.
        return replay(session, Dose, id=client_id, user_id=user_id, body=fingerprinted), False
    if timezone is not None and timezone != medication.schedule_timezone:
        rebase_schedule(session, medication=medication, timezone=timezone, now=now)

    scheduled_for = body.get("scheduled_for")
    taken_at = body.get("taken_at")
    if taken_at is not None:
        taken_at = taken_at.astimezone(UTC)
    _check_dose(medication, body["status"], scheduled_for, taken_at, now)
    replaced = None
    if scheduled_for is not None:
        scheduled_for = scheduled_for.astimezone(UTC)
        replaced = session.scalar(
            select(Dose).where(
                Dose.medication_id == medication.id, Dose.scheduled_for == scheduled_for
            )
        )
        if replaced is not None and replaced.source == "user":
            raise Conflict(
                "This scheduled dose already has a log; change it with PATCH /v1/doses/{id}.",
                dose_id=str(replaced.id),
            )
        if replaced is None and scheduled_for not in regimen_doses(
            medication, scheduled_for, scheduled_for + _TICK
        ):
            raise ValidationError(
                {"scheduled_for": ["Not a scheduled dose time of this medication."]}
            )
    if replaced is not None:
        session.delete(replaced)
        session.flush()
        record_change(
            session,
            user_id=user_id,
            entity_type="dose",
            entity_id=replaced.id,
            op="delete",
            now=now,
        )
    dose = Dose(
        id=client_id,
        user_id=user_id,
        medication_id=medication.id,
        status=body["status"],
        source="user",
        scheduled_for=scheduled_for,
        taken_at=taken_at,
        dose_at=scheduled_for or taken_at,
        note=body.get("note"),
        created_at=now,
        updated_at=now,
    )
    # The feed row only when this request created the dose: a resend writes none.
    dose, created = create_once(session, dose, body=fingerprinted, feed="dose", now=now)
    log.info(
        "dose.logged",
        dose_id=str(dose.id),
        medication_id=str(medication.id),
        user_id=str(user_id),
        replaced_missed=replaced is not None,
    )
    return dose, created


def _check_dose(
    medication: Medication,
    status: str,
    scheduled_for: datetime | None,
    taken_at: datetime | None,
    now: datetime,
) -> None:
    errors: dict[str, list[str]] = {}
    if medication.as_needed:
        if scheduled_for is not None:
            errors["scheduled_for"] = ["An as-needed medication has no scheduled doses."]
        if status != "taken":
            errors["status"] = ["An as-needed dose is logged when it is taken."]
    elif scheduled_for is None:
        errors["scheduled_for"] = ["Name the scheduled dose this log answers."]
    if taken_at is not None:
        if taken_at > now + CLOCK_SKEW:
            errors["taken_at"] = ["taken_at is in the future."]
        elif (
            medication.as_needed
            and medication.archived_at is not None
            and taken_at >= medication.archived_at
        ):
            errors["taken_at"] = ["The medication was archived before this time."]
    if errors:
        raise ValidationError(errors)


def update_dose(
    session: Session,
    *,
    user_id: uuid.UUID,
    dose_id: uuid.UUID,
    changes: dict[str, Any],
    now: datetime,
) -> Dose:
    """Change a log's status, taken_at or note (a stored `missed` becomes the user's log)."""
    dose = get_dose(session, user_id=user_id, dose_id=dose_id)
    medication = session.get(Medication, dose.medication_id)
    assert medication is not None
    if dose.status == "missed" and "status" not in changes:
        raise ValidationError({"status": ["Say whether this dose was taken or skipped."]})
    status = changes.get("status", dose.status)
    if status == "taken":
        taken_at = changes.get("taken_at", dose.taken_at)
        if taken_at is None:
            raise ValidationError({"taken_at": ["Say when the dose was taken."]})
        taken_at = taken_at.astimezone(UTC)
    else:
        if changes.get("taken_at") is not None:
            raise ValidationError({"taken_at": ["Only a taken dose has taken_at."]})
        taken_at = None
    _check_dose(medication, status, dose.scheduled_for, taken_at, now)
    dose.status = status
    dose.source = "user"
    dose.taken_at = taken_at
    dose.dose_at = dose.scheduled_for or taken_at  # type: ignore[assignment]
    if "note" in changes:
        dose.note = changes["note"]
    dose.updated_at = now
    session.flush()
    record_change(
        session, user_id=user_id, entity_type="dose", entity_id=dose.id, op="upsert", now=now
    )
    log.info("dose.updated", dose_id=str(dose.id), user_id=str(user_id))
    return dose


def delete_dose(session: Session, *, user_id: uuid.UUID, dose_id: uuid.UUID, now: datetime) -> None:
    """Remove a log; a scheduled dose without a log reads as missed again once its window passed."""
    dose = get_dose(session, user_id=user_id, dose_id=dose_id)
    session.delete(dose)
    session.flush()
    record_change(
        session, user_id=user_id, entity_type="dose", entity_id=dose_id, op="delete", now=now
    )
    log.info("dose.deleted", dose_id=str(dose_id), user_id=str(user_id))


# Missed doses --------------------------------------------------------------------------------


def missed_dose(
    medication: Medication, scheduled_for: datetime, *, window_minutes: int, now: datetime
) -> Dose:
    """The `missed` row for an unanswered scheduled dose, as the job stores it and reads show it
    (same id, same times), so a read does not change when the job runs."""
    became_missed = min(scheduled_for + timedelta(minutes=window_minutes), now)
    return Dose(
        id=missed_dose_id(medication.id, scheduled_for),
        user_id=medication.user_id,
        medication_id=medication.id,
        status="missed",
        source="system",
        scheduled_for=scheduled_for,
        taken_at=None,
        dose_at=scheduled_for,
        note=None,
        create_fingerprint=None,
        created_at=became_missed,
        updated_at=became_missed,
    )


def _row(dose: Dose) -> dict[str, Any]:
    return {c.key: getattr(dose, c.key) for c in Dose.__table__.columns}


def _store_missed(
    session: Session,
    batch: Iterable[tuple[Medication, list[datetime]]],
    *,
    since: datetime,
    until: datetime,
    now: datetime,
    window_minutes: int = DEFAULT_ON_TIME_WINDOW_MINUTES,
) -> int:
    """Insert `missed` rows for the given slots (within [since, until)) that have no row yet.

    Idempotent and safe against a concurrent run: the (medication_id, scheduled_for) key and
    the derived id decide, ON CONFLICT DO NOTHING; only rows really inserted are counted and
    reported to the change feed.
    """
    batch = [(m, slots) for m, slots in batch if slots]
    if not batch:
        return 0
    existing = set(
        session.execute(
            select(Dose.medication_id, Dose.scheduled_for).where(
                Dose.medication_id.in_([m.id for m, _ in batch]),
                Dose.scheduled_for >= since,
                Dose.scheduled_for < until,
            )
        )
    )
    rows = [
        _row(missed_dose(medication, slot, window_minutes=window_minutes, now=now))
        for medication, slots in batch
        for slot in slots
        if (medication.id, slot) not in existing
    ]
    if not rows:
        return 0
    table = Dose.__table__
    stmt = insert_ignoring_conflicts(dialect_of(session), table).returning(
        table.c.id, table.c.user_id
    )
    inserted = session.execute(stmt, rows).all()
    for row in inserted:
        record_change(
            session, user_id=row.user_id, entity_type="dose", entity_id=row.id, op="upsert", now=now
        )
    session.flush()
    return len(inserted)


def _materialisable(since: datetime, until: datetime) -> Select[Medication, str]:
    return (
        select(Medication, User.timezone)
        .join(User, User.id == Medication.user_id)
        .where(
            Medication.as_needed.is_(False),
            or_(Medication.archived_at.is_(None), Medication.archived_at > since),
            or_(
                Medication.end_date.is_(None),
                Medication.end_date >= (since - timedelta(days=1)).date(),
            ),
            Medication.start_date <= (until + timedelta(days=1)).date(),
        )
        .order_by(Medication.id)
    )


def next_materialisable(
    session: Session,
    *,
    now: datetime,
    after: uuid.UUID | None,
    window_minutes: int = DEFAULT_ON_TIME_WINDOW_MINUTES,
    lookback: timedelta = MISSED_LOOKBACK,
) -> uuid.UUID | None:
    """The id of the regimen `mark_missed_doses_batch(after=after, limit=1)` would take."""
    stmt = _materialisable(now - lookback, missed_cutoff(now, window_minutes)).limit(1)
    if after is not None:
        stmt = stmt.where(Medication.id > after)
    row = session.execute(stmt).first()
    return row[0].id if row is not None else None


def mark_missed_doses_batch(
    session: Session,
    *,
    now: datetime,
    after: uuid.UUID | None = None,
    limit: int = 500,
    window_minutes: int = DEFAULT_ON_TIME_WINDOW_MINUTES,
    lookback: timedelta = MISSED_LOOKBACK,
) -> tuple[int, uuid.UUID | None]:
    """One batch of `mark_missed_doses` over regimens with id > `after`.

    Returns (rows stored, the last regimen id to continue after, or None when done).
    """
    since = now - lookback
    until = missed_cutoff(now, window_minutes)
    stmt = _materialisable(since, until).limit(limit)
    if after is not None:
        stmt = stmt.where(Medication.id > after)
    found = session.execute(stmt).all()
    stored = 0
    work: list[tuple[Medication, list[datetime]]] = []
    for medication, timezone in found:
        if medication.schedule_timezone != timezone:
            # The user's zone changed: the old zone's doses up to now are stored, the new zone
            # applies from now on.
            stored += rebase_schedule(
                session,
                medication=medication,
                timezone=timezone,
                now=now,
                window_minutes=window_minutes,
            )
        work.append((medication, regimen_doses(medication, since, until)))
    stored += _store_missed(
        session, work, since=since, until=until, now=now, window_minutes=window_minutes
    )
    last = found[-1][0].id if len(found) == limit else None
    return stored, last


def mark_missed_doses(
    session: Session,
    *,
    now: datetime,
    window_minutes: int = DEFAULT_ON_TIME_WINDOW_MINUTES,
    lookback: timedelta = MISSED_LOOKBACK,
    batch_size: int = 500,
) -> int:
    """Store `missed` rows (source system) for scheduled doses in the last `lookback` whose
    window has passed without a log. Safe to run twice or concurrently. Returns rows stored."""
    total, after = 0, None
    while True:
        stored, after = mark_missed_doses_batch(
            session,
            now=now,
            after=after,
            limit=batch_size,
            window_minutes=window_minutes,
            lookback=lookback,
        )
        total += stored
        if after is None:
            return total


# Sync loaders --------------------------------------------------------------------------------


def load_medications(
    session: Session, user_id: uuid.UUID, ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    rows = session.scalars(
        select(Medication).where(Medication.user_id == user_id, Medication.id.in_(list(ids)))
    )
    schema = MedicationSchema()
    return {m.id: schema.dump(m) for m in rows}


def load_doses(
    session: Session, user_id: uuid.UUID, ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    rows = session.scalars(select(Dose).where(Dose.user_id == user_id, Dose.id.in_(list(ids))))
    schema = DoseSchema()
    return {d.id: schema.dump(d) for d in rows}


register_entity("medication", load_medications)
register_entity("dose", load_doses)
