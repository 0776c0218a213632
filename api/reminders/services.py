"""Reminder rules: create, edit, delete, snooze, follow the user's zone; compute the next fire.

`next_fire_at` always comes from zoneinfo arithmetic (api.reminders.timecalc, and for medication
rules api.medications.schedule, so a reminder fires at the very instant its dose is due), never
from cron triggers. Kinds:
- checkin: a local time (and optional weekdays), set by the user;
- medication: one rule per dose time of a regimen, created, changed and removed in step with it
  (sync_medication, called by the medication services);
- counseling: `lead_minutes` before each scheduled session (recomputed when sessions change).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import delete, exists, func, select
from sqlalchemy.orm import Session

from api.auth.models import User
from api.counseling import signals as counseling_signals
from api.counseling.models import CounselingSession
from api.errors import Conflict, NotFound, ValidationError
from api.localtime import local_day_start
from api.medications import signals as medication_signals
from api.medications.models import Medication
from api.medications.schedule import expand_doses_by_day
from api.notifications import services as notifications
from api.notifications.models import Delivery, Notification
from api.offline import create_once
from api.pagination import keyset_page
from api.reminders import timecalc
from api.reminders.models import ReminderRule
from api.sync.services import record_change, register_entity

log = structlog.get_logger("waymark.reminders")

_ONE_DAY = timedelta(days=1)
_TICK = timedelta(microseconds=1)
SCHEDULE_FIELDS = ("local_time", "days_of_week", "lead_minutes")
DEFAULT_CHANNELS = ("inbox", "push")

Quiet = tuple[time | None, time | None]


class RuleLike(Protocol):
    """What scheduling reads and writes: a ReminderRule, or the dispatcher's lighter row."""

    id: uuid.UUID
    user_id: uuid.UUID
    kind: str
    medication_id: uuid.UUID | None
    local_time: str | None
    lead_minutes: int | None
    start_date: date | None
    end_date: date | None
    enabled: bool
    timezone: str
    next_local_date: date | None
    next_occurrence_at: datetime | None
    next_fire_at: datetime | None
    last_local_date: date | None
    last_occurrence_at: datetime | None

    @property
    def weekdays(self) -> list[int] | None: ...


def quiet_hours(user: User) -> Quiet:
    if user.quiet_hours_start is None or user.quiet_hours_end is None:
        return None, None
    return timecalc.parse_hhmm(user.quiet_hours_start), timecalc.parse_hhmm(user.quiet_hours_end)


# --------------------------------------------------------------------------- when a rule fires


def next_occurrence(
    rule: RuleLike,
    *,
    after: datetime,
    min_date: date | None,
    session: Session | None = None,
    sibling_times: Sequence[str] | None = None,
) -> tuple[date, datetime] | None:
    """The rule's next (local day, nominal instant) strictly after `after`, or None.

    Counseling rules read the user's sessions (`session` required); medication rules skip a day
    on which an earlier dose time of the regimen (`sibling_times`) lands on the same instant
    (two times in one spring-forward gap are one dose, as api.medications.schedule has it).
    """
    if rule.kind == "counseling":
        assert session is not None, "counseling rules read the sessions"
        return _next_counseling(session, rule, after=after)
    assert rule.local_time is not None
    if rule.kind == "medication" and rule.start_date is not None:
        return _next_medication(rule, after=after, min_date=min_date, siblings=sibling_times)
    return timecalc.next_fire(
        at=timecalc.parse_hhmm(rule.local_time),
        zone=ZoneInfo(rule.timezone),
        after=after,
        days_of_week=rule.weekdays,
        start_date=rule.start_date,
        end_date=rule.end_date,
        min_date=min_date,
    )


def _next_medication(
    rule: RuleLike, *, after: datetime, min_date: date | None, siblings: Sequence[str] | None
) -> tuple[date, datetime] | None:
    # The regimen's own expansion (days of week, start and end dates, DST policy), for this
    # dose time, minus the instants an earlier dose time of the same day already takes.
    assert rule.local_time is not None and rule.start_date is not None
    zone = ZoneInfo(rule.timezone)
    start = after + _TICK
    for bound in (rule.start_date, min_date):
        if bound is not None:
            start = max(start, local_day_start(bound, zone))
    end = start + timedelta(days=9)  # a week and a spare day each side holds every weekday
    args = (rule.weekdays, rule.start_date, rule.end_date, zone, start, end)
    mine = expand_doses_by_day([rule.local_time], *args)
    earlier = [t for t in siblings or () if t < rule.local_time]
    taken = expand_doses_by_day(earlier, *args) if earlier else {}
    for instant in sorted(mine):
        day = mine[instant]
        if instant not in taken and (min_date is None or day >= min_date):
            return day, instant
    return None


def _next_counseling(
    session: Session, rule: RuleLike, *, after: datetime
) -> tuple[date, datetime] | None:
    lead = timedelta(minutes=rule.lead_minutes or 0)
    starts = session.scalar(
        select(func.min(CounselingSession.starts_at)).where(
            CounselingSession.user_id == rule.user_id,
            CounselingSession.attendance == "scheduled",
            CounselingSession.starts_at > after + lead,
        )
    )
    if starts is None:
        return None
    instant = starts - lead
    return instant.astimezone(ZoneInfo(rule.timezone)).date(), instant


def set_next(rule: RuleLike, found: tuple[date, datetime] | None, *, quiet: Quiet) -> None:
    """Store the next occurrence and the instant it fires (held past quiet hours; a counseling
    reminder is never held past the start of its session)."""
    if found is None or not rule.enabled:
        rule.next_local_date = rule.next_occurrence_at = rule.next_fire_at = None
        return
    rule.next_local_date, rule.next_occurrence_at = found
    fire = timecalc.hold_for_quiet_hours(found[1], ZoneInfo(rule.timezone), quiet[0], quiet[1])
    if rule.kind == "counseling" and fire >= found[1] + timedelta(minutes=rule.lead_minutes or 0):
        fire = found[1]
    rule.next_fire_at = fire


def reschedule(
    session: Session, rule: ReminderRule, *, user: User, now: datetime, moved: bool = False
) -> None:
    """Recompute the next fire from now, never a second time on a local day already served."""
    min_date = None
    if rule.kind != "counseling" and rule.last_occurrence_at is not None:
        if moved or rule.last_local_date is None:
            zone = ZoneInfo(rule.timezone)
            min_date = rule.last_occurrence_at.astimezone(zone).date() + _ONE_DAY
        else:
            min_date = rule.last_local_date + _ONE_DAY
    siblings = None
    if rule.medication_id is not None:
        medication = session.get(Medication, rule.medication_id)
        siblings = medication.times if medication is not None else None
    found = next_occurrence(
        rule, after=now, min_date=min_date, session=session, sibling_times=siblings
    )
    set_next(rule, found, quiet=quiet_hours(user))


# --------------------------------------------------------------------------- the API


def _validate(kind: str, fields: dict[str, Any]) -> None:
    required = {
        "checkin": ("local_time",),
        "medication": ("medication_id", "local_time"),
        "counseling": ("lead_minutes",),
    }[kind]
    allowed = {
        "checkin": ("local_time", "days_of_week"),
        "medication": ("medication_id", "local_time"),
        "counseling": ("lead_minutes",),
    }[kind]
    errors: dict[str, list[str]] = {}
    for name in required:
        if fields.get(name) is None:
            errors[name] = [f"Required for a {kind} reminder."]
    for name in ("local_time", "days_of_week", "lead_minutes", "medication_id"):
        if name not in allowed and fields.get(name) is not None:
            errors[name] = [f"Not used by a {kind} reminder."]
    if errors:
        raise ValidationError(errors)


def _channels(channels: Iterable[str]) -> dict[str, bool]:
    wanted = set(channels)
    return {"push": "push" in wanted, "email": "email" in wanted}


def _weekdays(days: Sequence[int] | None) -> str | None:
    return None if not days else "".join(str(d) for d in sorted(set(days)))


def get_rule(session: Session, *, user_id: uuid.UUID, rule_id: uuid.UUID) -> ReminderRule:
    """Raises NotFound unless the rule exists and belongs to the user."""
    rule = session.get(ReminderRule, rule_id)
    if rule is None or rule.user_id != user_id:
        raise NotFound("No such reminder.")
    return rule


def list_rules(
    session: Session, *, user_id: uuid.UUID, limit: int, cursor: str | None
) -> tuple[list[ReminderRule], str | None]:
    stmt = select(ReminderRule).where(ReminderRule.user_id == user_id)
    return keyset_page(
        session,
        stmt,
        order=ReminderRule.created_at,
        tiebreak=ReminderRule.id,
        limit=limit,
        cursor=cursor,
    )


def _regimen_for(session: Session, *, user: User, body: dict[str, Any]) -> Medication:
    medication = session.get(Medication, body["medication_id"])
    if medication is None or medication.user_id != user.id:
        raise ValidationError({"medication_id": ["No such medication."]})
    if medication.archived_at is not None or medication.as_needed:
        raise ValidationError({"medication_id": ["This medication has no scheduled doses."]})
    if body["local_time"] not in medication.times:
        raise ValidationError({"local_time": ["Not one of the medication's dose times."]})
    return medication


def create_rule(
    session: Session, *, user: User, body: dict[str, Any], now: datetime
) -> tuple[ReminderRule, bool]:
    """Create a reminder rule; a replay of the same client id and body answers the stored one.

    A medication rule is for one dose time of one of the user's regimens (the regimen creates
    them itself; this brings back one that was deleted). Raises ValidationError for fields that
    do not fit the kind, Conflict for a reused id or a dose time that has its rule already.
    """
    kind = body["kind"]
    _validate(kind, body)
    replay = body.get("id") is not None and session.get(ReminderRule, body["id"]) is not None
    medication = None
    if kind == "medication" and not replay:
        medication = _regimen_for(session, user=user, body=body)
        taken = session.scalar(
            select(ReminderRule.id).where(
                ReminderRule.medication_id == medication.id,
                ReminderRule.local_time == body["local_time"],
            )
        )
        if taken is not None:
            raise Conflict("This dose time has its reminder already; change it with PATCH.")
    rule = ReminderRule(
        id=body.get("id"),
        user_id=user.id,
        kind=kind,
        local_time=body.get("local_time"),
        lead_minutes=body.get("lead_minutes"),
        days_of_week=_weekdays(body.get("days_of_week")),
        enabled=body.get("enabled", True),
        timezone=user.timezone,
        created_at=now,
        updated_at=now,
        **_channels(body.get("channels", DEFAULT_CHANNELS)),
    )
    if medication is not None:
        _follow_regimen(rule, medication)
    if not replay:
        reschedule(session, rule, user=user, now=now)
    rule, created = create_once(session, rule, body=body, feed="reminder", now=now)
    if created:
        log.info("reminder.created", reminder_id=str(rule.id), user_id=str(user.id), kind=kind)
    return rule, created


def update_rule(
    session: Session, *, user: User, rule_id: uuid.UUID, changes: dict[str, Any], now: datetime
) -> ReminderRule:
    """Edit channels, enabled and the schedule fields of the rule's kind; recompute next_fire_at.

    A medication rule's time and days follow its regimen (422 here)."""
    rule = get_rule(session, user_id=user.id, rule_id=rule_id)
    if rule.kind == "medication" and {"local_time", "days_of_week"} & set(changes):
        raise ValidationError(
            {
                f: ["Follows the medication regimen."]
                for f in ("local_time", "days_of_week")
                if f in changes
            }
        )
    merged = {
        "local_time": changes.get("local_time", rule.local_time),
        "lead_minutes": changes.get("lead_minutes", rule.lead_minutes),
        "days_of_week": changes.get("days_of_week", rule.weekdays),
        "medication_id": rule.medication_id,
    }
    _validate(rule.kind, merged)
    if "channels" in changes:
        for name, on in _channels(changes["channels"]).items():
            setattr(rule, name, on)
    if "local_time" in changes:
        rule.local_time = changes["local_time"]
    if "lead_minutes" in changes:
        rule.lead_minutes = changes["lead_minutes"]
    if "days_of_week" in changes:
        rule.days_of_week = _weekdays(changes["days_of_week"])
    if "enabled" in changes:
        rule.enabled = changes["enabled"]
    rule.updated_at = now
    if not rule.enabled:
        set_next(rule, None, quiet=(None, None))
        notifications.cancel_pending(session, rule_id=rule.id)
    elif "enabled" in changes or set(SCHEDULE_FIELDS) & set(changes):
        reschedule(session, rule, user=user, now=now)
    session.flush()
    _changed(session, rule, now=now)
    log.info("reminder.updated", reminder_id=str(rule.id), fields=sorted(changes))
    return rule


def _remove(session: Session, rule: ReminderRule, *, now: datetime) -> None:
    notifications.cancel_pending(session, rule_id=rule.id)
    rule_id, user_id = rule.id, rule.user_id
    session.delete(rule)
    session.flush()
    record_change(
        session, user_id=user_id, entity_type="reminder", entity_id=rule_id, op="delete", now=now
    )


def delete_rule(session: Session, *, user: User, rule_id: uuid.UUID, now: datetime) -> None:
    """Delete the rule; what it queued and has not sent is cancelled, the inbox keeps the rest."""
    rule = get_rule(session, user_id=user.id, rule_id=rule_id)
    _remove(session, rule, now=now)
    log.info("reminder.deleted", reminder_id=str(rule_id), user_id=str(user.id))


def snooze_rule(
    session: Session, *, user: User, rule_id: uuid.UUID, minutes: int, now: datetime
) -> ReminderRule:
    """Fire the rule once more, `minutes` from now (held past quiet hours). A pending snooze that
    has not gone out yet is replaced, not doubled. Raises Conflict for a disabled rule."""
    rule = get_rule(session, user_id=user.id, rule_id=rule_id)
    if not rule.enabled:
        raise Conflict("This reminder is turned off.")
    started = exists().where(
        Delivery.notification_id == Notification.id,
        (Delivery.status != "queued") | (Delivery.attempts > 0),
    )
    session.execute(
        delete(Notification)
        .where(Notification.rule_id == rule.id, Notification.source == "snooze", ~started)
        .execution_options(synchronize_session=False)
    )
    at = (now + timedelta(minutes=minutes)).replace(microsecond=0)
    start, end = quiet_hours(user)
    due = timecalc.hold_for_quiet_hours(at, ZoneInfo(rule.timezone), start, end)
    notifications.enqueue(
        session,
        occurrences=[
            notifications.Occurrence(
                user_id=user.id,
                rule_id=rule.id,
                kind=rule.kind,
                scheduled_for=at,
                due_at=due,
                email=rule.email,
                push=rule.push,
                source="snooze",
            )
        ],
        now=now,
    )
    rule.snoozed_until = due
    session.flush()
    log.info("reminder.snoozed", reminder_id=str(rule.id), minutes=minutes)
    return rule


def follow_user(session: Session, *, user: User, now: datetime, moved: bool) -> int:
    """After the user's zone or quiet hours changed: every rule takes the user's zone and its next
    fire is recomputed (a move), or re-held against the new quiet hours. Returns rules touched."""
    rules = list(session.scalars(select(ReminderRule).where(ReminderRule.user_id == user.id)))
    quiet = quiet_hours(user)
    for rule in rules:
        if moved and rule.timezone != user.timezone:
            rule.timezone = user.timezone
            reschedule(session, rule, user=user, now=now, moved=True)
            rule.updated_at = now
            _changed(session, rule, now=now)
        elif rule.next_occurrence_at is not None and rule.next_local_date is not None:
            set_next(rule, (rule.next_local_date, rule.next_occurrence_at), quiet=quiet)
    session.flush()
    if rules:
        log.info("reminders.followed_user", user_id=str(user.id), rules=len(rules), moved=moved)
    return len(rules)


# --------------------------------------------------------------------------- other features


def _follow_regimen(rule: ReminderRule, medication: Medication) -> None:
    rule.medication_id = medication.id
    rule.days_of_week = _weekdays(medication.days_of_week)
    rule.start_date = medication.start_date
    rule.end_date = medication.end_date
    rule.timezone = medication.schedule_timezone


def sync_medication(
    session: Session,
    *,
    medication: Medication,
    now: datetime,
    previous_times: Sequence[str] | None = None,
) -> None:
    """Keep a regimen's reminder rules in step with it: one per dose time.

    Called by the medication services when a regimen is created (`previous_times` None: every
    time gets a rule), changed (times that are new get a rule, with the channels of a sibling;
    times that went lose theirs; the rest follow new days, dates and zone) or archived, or turns
    as-needed (every rule goes). A rule the user deleted comes back only if its time is new.
    """
    rules = {
        rule.local_time: rule
        for rule in session.scalars(
            select(ReminderRule).where(ReminderRule.medication_id == medication.id)
        )
    }
    live = medication.archived_at is None and not medication.as_needed
    wanted = list(medication.times) if live else []
    for local_time, rule in list(rules.items()):
        if local_time not in wanted:
            _remove(session, rule, now=now)
            del rules[local_time]
    template = next(iter(rules.values()), None)
    user = session.get(User, medication.user_id)
    assert user is not None
    for local_time in wanted:
        if local_time in rules or (previous_times is not None and local_time in previous_times):
            continue
        rule = ReminderRule(
            user_id=medication.user_id,
            kind="medication",
            local_time=local_time,
            enabled=template.enabled if template is not None else True,
            push=template.push if template is not None else True,
            email=template.email if template is not None else False,
            timezone=medication.schedule_timezone,
            created_at=now,
            updated_at=now,
        )
        session.add(rule)
        rules[local_time] = rule
    touched = []
    for rule in rules.values():
        moved = rule.timezone != medication.schedule_timezone
        before = (rule.days_of_week, rule.start_date, rule.end_date, rule.timezone)
        _follow_regimen(rule, medication)
        after = (rule.days_of_week, rule.start_date, rule.end_date, rule.timezone)
        if rule.id is None or before != after:
            reschedule(session, rule, user=user, now=now, moved=moved)
            rule.updated_at = now
            touched.append(rule)
    session.flush()
    for rule in touched:
        _changed(session, rule, now=now)
    log.info("reminders.synced_medication", medication_id=str(medication.id), rules=len(rules))


def sessions_changed(session: Session, *, user_id: uuid.UUID, now: datetime) -> int:
    """A counseling session was added, moved, cancelled or removed: the user's counseling rules
    aim at the next session again. Returns the rules touched."""
    rules = list(
        session.scalars(
            select(ReminderRule).where(
                ReminderRule.user_id == user_id, ReminderRule.kind == "counseling"
            )
        )
    )
    if not rules:
        return 0
    user = session.get(User, user_id)
    assert user is not None
    for rule in rules:
        if rule.enabled:
            reschedule(session, rule, user=user, now=now)
    session.flush()
    return len(rules)


def _changed(session: Session, rule: ReminderRule, *, now: datetime) -> None:
    record_change(
        session,
        user_id=rule.user_id,
        entity_type="reminder",
        entity_id=rule.id,
        op="upsert",
        now=now,
    )


def _load_for_sync(
    session: Session, user_id: uuid.UUID, ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    from api.reminders.schemas import ReminderSchema

    schema = ReminderSchema()
    rules = session.scalars(
        select(ReminderRule).where(ReminderRule.user_id == user_id, ReminderRule.id.in_(list(ids)))
    )
    return {rule.id: schema.dump(rule) for rule in rules}


register_entity("reminder", _load_for_sync)


# Reactions to the features below (they send, reminders follow; see their signals.py).
@medication_signals.regimen_changed.connect
def _on_regimen_changed(
    session: Session,
    *,
    medication: Medication,
    now: datetime,
    previous_times: Sequence[str] | None = None,
) -> None:
    sync_medication(session, medication=medication, now=now, previous_times=previous_times)


@counseling_signals.sessions_changed.connect
def _on_sessions_changed(session: Session, *, user_id: uuid.UUID, now: datetime) -> None:
    sessions_changed(session, user_id=user_id, now=now)
