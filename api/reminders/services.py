"""Reminder rules: create, edit, delete, snooze, follow the user's zone; compute the next fire.

`next_fire_at` always comes from api.reminders.timecalc (zoneinfo), never from cron triggers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from api.auth.models import User
from api.errors import Conflict, NotFound, ValidationError
from api.notifications import services as notifications
from api.notifications.models import Delivery, Notification
from api.offline import create_once
from api.pagination import keyset_page
from api.reminders import timecalc
from api.reminders.models import ReminderRule
from api.sync.services import record_change, register_entity

log = structlog.get_logger("waymark.reminders")

_ONE_DAY = timedelta(days=1)
# Kinds whose occurrences come from another feature (regimen, sessions) are created through it.
SELF_SERVICE_KINDS = ("checkin",)
SCHEDULE_FIELDS = ("local_time", "days_of_week", "lead_minutes")


def quiet_hours(user: User) -> tuple[time | None, time | None]:
    if user.quiet_hours_start is None or user.quiet_hours_end is None:
        return None, None
    return timecalc.parse_hhmm(user.quiet_hours_start), timecalc.parse_hhmm(user.quiet_hours_end)


def next_occurrence(
    rule: ReminderRule, *, after: datetime, min_date: date | None
) -> tuple[date, datetime] | None:
    """The rule's next (local day, nominal instant) strictly after `after`, or None."""
    if rule.local_time is None:  # counseling rules are scheduled from sessions
        return None
    return timecalc.next_fire(
        at=timecalc.parse_hhmm(rule.local_time),
        zone=ZoneInfo(rule.timezone),
        after=after,
        days_of_week=rule.weekdays,
        start_date=rule.start_date,
        end_date=rule.end_date,
        min_date=min_date,
    )


def set_next(
    rule: ReminderRule,
    found: tuple[date, datetime] | None,
    *,
    quiet: tuple[time | None, time | None],
) -> None:
    """Store the next occurrence and the instant it fires (held past quiet hours)."""
    if found is None or not rule.enabled:
        rule.next_local_date = rule.next_occurrence_at = rule.next_fire_at = None
        return
    rule.next_local_date, rule.next_occurrence_at = found
    rule.next_fire_at = timecalc.hold_for_quiet_hours(
        found[1], ZoneInfo(rule.timezone), quiet[0], quiet[1]
    )


def reschedule(rule: ReminderRule, *, user: User, now: datetime, moved: bool = False) -> None:
    """Recompute the next fire from now, never a second time on a local day already served."""
    min_date = None
    if rule.last_occurrence_at is not None and rule.last_local_date is not None:
        if moved:
            zone = ZoneInfo(rule.timezone)
            min_date = rule.last_occurrence_at.astimezone(zone).date() + _ONE_DAY
        else:
            min_date = rule.last_local_date + _ONE_DAY
    set_next(rule, next_occurrence(rule, after=now, min_date=min_date), quiet=quiet_hours(user))


def _validate(kind: str, fields: dict[str, Any]) -> None:
    errors: dict[str, list[str]] = {}
    if kind == "checkin":
        if fields.get("local_time") is None:
            errors["local_time"] = ["Required for a check-in reminder."]
        if fields.get("lead_minutes") is not None:
            errors["lead_minutes"] = ["Only for counseling reminders."]
    if errors:
        raise ValidationError(errors)


def _channels(channels: Iterable[str]) -> dict[str, bool]:
    wanted = set(channels)
    return {"push": "push" in wanted, "email": "email" in wanted}


def _weekdays(days: list[int] | None) -> str | None:
    return None if days is None else "".join(str(d) for d in sorted(set(days)))


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


def create_rule(
    session: Session, *, user: User, body: dict[str, Any], now: datetime
) -> tuple[ReminderRule, bool]:
    """Create a reminder rule; a replay of the same client id and body answers the stored one.

    Raises ValidationError for fields that do not fit the kind, Conflict for a reused id.
    """
    kind = body["kind"]
    if kind not in SELF_SERVICE_KINDS:
        raise ValidationError({"kind": [f"{kind} reminders are not available yet."]})
    _validate(kind, body)
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
        **_channels(body.get("channels", ("inbox", "push"))),
    )
    reschedule(rule, user=user, now=now)
    rule, created = create_once(session, rule, body=body)
    if created:
        _changed(session, rule, now=now)
        log.info("reminder.created", reminder_id=str(rule.id), user_id=str(user.id), kind=kind)
    return rule, created


def update_rule(
    session: Session, *, user: User, rule_id: uuid.UUID, changes: dict[str, Any], now: datetime
) -> ReminderRule:
    """Edit channels, enabled and the schedule fields of the rule's kind; recompute next_fire_at."""
    rule = get_rule(session, user_id=user.id, rule_id=rule_id)
    merged = {
        "local_time": changes.get("local_time", rule.local_time),
        "lead_minutes": changes.get("lead_minutes", rule.lead_minutes),
    }
    _validate(rule.kind, merged)
    if rule.kind != "checkin" and {"local_time", "days_of_week"} & set(changes):
        raise ValidationError(
            {f: ["Follows the medication regimen."] for f in ("local_time", "days_of_week")}
        )
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
        reschedule(rule, user=user, now=now)
    session.flush()
    _changed(session, rule, now=now)
    log.info("reminder.updated", reminder_id=str(rule.id), fields=sorted(changes))
    return rule


def delete_rule(session: Session, *, user: User, rule_id: uuid.UUID, now: datetime) -> None:
    """Delete the rule; what it queued and has not sent is cancelled, the inbox keeps the rest."""
    rule = get_rule(session, user_id=user.id, rule_id=rule_id)
    notifications.cancel_pending(session, rule_id=rule.id)
    session.delete(rule)
    session.flush()
    record_change(
        session, user_id=user.id, entity_type="reminder", entity_id=rule_id, op="delete", now=now
    )
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
            reschedule(rule, user=user, now=now, moved=True)
            rule.updated_at = now
            _changed(session, rule, now=now)
        elif rule.next_occurrence_at is not None and rule.next_local_date is not None:
            set_next(rule, (rule.next_local_date, rule.next_occurrence_at), quiet=quiet)
    session.flush()
    if rules:
        log.info("reminders.followed_user", user_id=str(user.id), rules=len(rules), moved=moved)
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
