"""The dispatcher: claim due rules by `next_fire_at`, queue their notifications, advance the rules.

One batch is one transaction (the job commits): rules are locked FOR UPDATE SKIP LOCKED (a second
dispatcher takes other rows, never the same), each due occurrence becomes a notification keyed by
(rule, scheduled instant) with ON CONFLICT DO NOTHING, and `next_fire_at` moves on in the same
commit. A crash before the commit leaves the rules due (the next run does it); after it, the rules
have moved on and the notifications are in the outbox. The work is a range scan of the
`next_fire_at` index: it grows with the number due, not with the number of rules.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any

import structlog
from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from api.auth.models import User
from api.medications.models import Medication
from api.notifications import bulk
from api.notifications import services as notifications
from api.observability import item_failed
from api.reminders import services as reminders
from api.reminders import timecalc
from api.reminders.models import ReminderRule

log = structlog.get_logger("waymark.dispatch")

_ONE_DAY = timedelta(days=1)


@dataclass(frozen=True)
class DispatchSettings:
    grace: timedelta  # due longer ago than this (downtime): recorded as missed, not sent
    batch_size: int = 500
    catch_up_limit: int = 31  # occurrences recorded per rule and claim after a long downtime


@lru_cache(maxsize=4096)
def _hhmm(text: str | None) -> time | None:
    return None if text is None else timecalc.parse_hhmm(text)


@dataclass(slots=True)
class _Claimed:
    """A claimed rule's columns, shaped like a ReminderRule for the scheduling helpers (the ORM
    unit of work is not used on this path: its per-row bookkeeping costs more than the SQL)."""

    id: uuid.UUID
    user_id: uuid.UUID
    kind: str
    medication_id: uuid.UUID | None
    local_time: str | None
    lead_minutes: int | None
    days_of_week: str | None
    start_date: date | None
    end_date: date | None
    push: bool
    email: bool
    enabled: bool
    timezone: str
    next_local_date: date | None
    next_occurrence_at: datetime | None
    next_fire_at: datetime | None
    last_local_date: date | None
    last_occurrence_at: datetime | None

    @property
    def weekdays(self) -> list[int] | None:
        return None if self.days_of_week is None else [int(d) for d in self.days_of_week]


_FIELDS = [f.name for f in fields(_Claimed)]
_COLUMNS = [getattr(ReminderRule, name) for name in _FIELDS]
_ADVANCED = (
    "next_local_date",
    "next_occurrence_at",
    "next_fire_at",
    "last_local_date",
    "last_occurrence_at",
)


def due_rules(*, now: datetime, limit: int) -> Select[Any]:
    """The claim: a range scan of ix_reminder_rules_next_fire_at, rows locked and skipped if
    another dispatcher holds them (PostgreSQL; SQLite serializes writers instead)."""
    return (
        select(*_COLUMNS, User.quiet_hours_start, User.quiet_hours_end)
        .join(User, User.id == ReminderRule.user_id)
        .where(ReminderRule.next_fire_at <= now)
        .order_by(ReminderRule.next_fire_at)
        .limit(limit)
        .with_for_update(of=ReminderRule, skip_locked=True)
    )


def _regimen_times(session: Session, ids: set[Any]) -> dict[Any, list[str]]:
    """The dose times of the regimens behind the batch's medication rules (one query)."""
    if not ids:
        return {}
    rows = session.execute(select(Medication.id, Medication.times).where(Medication.id.in_(ids)))
    return dict(rows.all())  # a Result has keys(): dict() would read it as a mapping


# How long a rule that failed to advance waits before the dispatcher tries it again.
_PARK = timedelta(hours=1)


def dispatch_batch(session: Session, *, now: datetime, settings: DispatchSettings) -> int:
    """Claim up to batch_size due rules and queue what they owe. Returns rules claimed; flushes,
    never commits (the job commits each batch)."""
    rows = session.execute(due_rules(now=now, limit=settings.batch_size)).all()
    siblings = _regimen_times(session, {row.medication_id for row in rows if row.medication_id})
    occurrences: list[notifications.Occurrence] = []
    advanced: list[dict[str, Any]] = []
    missed = 0
    parked: list[uuid.UUID] = []
    for row in rows:
        # One rule that cannot be advanced (a bad stored row) is logged, counted and parked
        # for an hour; the batch's other rules are served.
        mark = len(occurrences)
        try:
            rule = _Claimed(*row[: len(_FIELDS)])
            quiet = (_hhmm(row.quiet_hours_start), _hhmm(row.quiet_hours_end))
            recorded = 0
            while rule.next_fire_at is not None and rule.next_fire_at <= now:
                assert rule.next_occurrence_at is not None
                late = now - rule.next_fire_at > settings.grace
                if late and recorded >= settings.catch_up_limit:
                    # Down for longer than catch_up_limit occurrences: skip to the grace window;
                    # what was skipped is not recorded one by one.
                    assert rule.last_local_date is not None
                    found = reminders.next_occurrence(
                        rule,
                        after=now - settings.grace,
                        min_date=rule.last_local_date + _ONE_DAY,
                        session=session,
                        sibling_times=siblings.get(rule.medication_id),
                    )
                    reminders.set_next(rule, found, quiet=quiet)
                    continue
                missed += late
                recorded += 1
                occurrences.append(
                    notifications.Occurrence(
                        user_id=rule.user_id,
                        rule_id=rule.id,
                        kind=rule.kind,
                        scheduled_for=rule.next_occurrence_at,
                        due_at=rule.next_fire_at,
                        email=rule.email,
                        push=rule.push,
                        missed=late,
                    )
                )
                rule.last_local_date = rule.next_local_date
                rule.last_occurrence_at = rule.next_occurrence_at
                found = reminders.next_occurrence(
                    rule,
                    after=rule.next_occurrence_at,
                    min_date=None,
                    session=session,
                    sibling_times=siblings.get(rule.medication_id),
                )
                reminders.set_next(rule, found, quiet=quiet)
            advanced.append({"id": rule.id, **{name: getattr(rule, name) for name in _ADVANCED}})
        except Exception as exc:
            del occurrences[mark:]
            item_failed("reminder_dispatch", exc, rule_id=row[0], user_id=row.user_id)
            parked.append(row[0])
    if parked:
        session.execute(
            update(ReminderRule)
            .where(ReminderRule.id.in_(parked))
            .values(next_fire_at=now + _PARK)
            .execution_options(synchronize_session=False)
        )
    bulk.update_by_id(session, ReminderRule.__table__, advanced)  # type: ignore[arg-type]
    inserted = notifications.enqueue(session, occurrences=occurrences, now=now)
    if rows:
        log.info(
            "dispatch.batch",
            rules=len(rows),
            notifications=len(inserted),
            duplicates=len(occurrences) - len(inserted),
            missed=missed,
        )
    return len(rows)
