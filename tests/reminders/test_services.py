"""Rule services: one reminder per local day through edits and moves; deletes cancel the queue."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.account import services as account_services
from api.auth.models import User
from api.notifications.models import Delivery, Notification
from api.reminders import services
from api.reminders.dispatch import DispatchSettings
from jobs.reminders import dispatch_reminders

SETTINGS = DispatchSettings(grace=timedelta(minutes=30))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def checkin(session: Session, user: User, now: datetime, local_time: str = "09:00") -> object:
    rule, _ = services.create_rule(
        session, user=user, body={"kind": "checkin", "local_time": local_time}, now=now
    )
    session.commit()
    return rule


def test_moving_west_after_todays_reminder_does_not_fire_it_again_today(
    session: Session, make_patient: Callable[..., User]
) -> None:
    user = make_patient(timezone="America/New_York")
    rule = checkin(session, user, at("2026-12-01T08:00:00-05:00"))
    dispatch_reminders(session, now=at("2026-12-01T09:00:30-05:00"), settings=SETTINGS)
    # 06:30 in Los Angeles, where 09:00 is still ahead today: the day was served already
    moved_at = at("2026-12-01T06:30:00-08:00")
    account_services.update_profile(
        session, user=user, changes={"timezone": "America/Los_Angeles"}, now=moved_at
    )
    session.commit()
    assert rule.timezone == "America/Los_Angeles"
    assert rule.next_fire_at == at("2026-12-02T09:00:00-08:00")


def test_moving_east_fires_at_the_next_local_nine(
    session: Session, make_patient: Callable[..., User]
) -> None:
    user = make_patient(timezone="Asia/Tokyo")
    rule = checkin(session, user, at("2026-12-02T08:00:00+09:00"))
    dispatch_reminders(session, now=at("2026-12-02T09:00:30+09:00"), settings=SETTINGS)
    # that was Dec 1, 19:00 in New York: Dec 2 09:00 there is still owed
    account_services.update_profile(
        session,
        user=user,
        changes={"timezone": "America/New_York"},
        now=at("2026-12-01T19:30:00-05:00"),
    )
    session.commit()
    assert rule.next_fire_at == at("2026-12-02T09:00:00-05:00")


def test_a_new_time_after_todays_reminder_starts_tomorrow(
    session: Session, make_patient: Callable[..., User]
) -> None:
    user = make_patient(timezone="UTC")
    rule = checkin(session, user, at("2026-12-01T08:00:00+00:00"))
    dispatch_reminders(session, now=at("2026-12-01T09:00:00+00:00"), settings=SETTINGS)
    services.update_rule(
        session,
        user=user,
        rule_id=rule.id,
        changes={"local_time": "20:00"},
        now=at("2026-12-01T10:00:00+00:00"),
    )
    assert rule.next_fire_at == at("2026-12-02T20:00:00+00:00")
    # before today's fire, a new time applies today
    other = checkin(session, user, at("2026-12-01T08:00:00+00:00"), local_time="09:30")
    services.update_rule(
        session,
        user=user,
        rule_id=other.id,
        changes={"local_time": "21:00"},
        now=at("2026-12-01T08:05:00+00:00"),
    )
    assert other.next_fire_at == at("2026-12-01T21:00:00+00:00")


def test_deleting_a_rule_cancels_what_is_queued_and_keeps_the_inbox(
    session: Session, make_patient: Callable[..., User]
) -> None:
    user = make_patient(timezone="UTC")
    user.quiet_hours_start, user.quiet_hours_end = "08:30", "10:00"
    session.commit()
    rule = checkin(session, user, at("2026-12-01T07:00:00+00:00"))
    rule_id = rule.id
    # 09:00 falls in quiet hours: it is dispatched at 10:00 and queued, then the rule goes
    dispatch_reminders(session, now=at("2026-12-01T10:00:00+00:00"), settings=SETTINGS)
    services.delete_rule(session, user=user, rule_id=rule_id, now=at("2026-12-01T10:00:01+00:00"))
    session.commit()
    (notification,) = session.scalars(select(Notification)).all()
    assert notification.rule_id is None  # kept for the inbox history
    statuses = session.scalars(
        select(Delivery.status).where(Delivery.notification_id == notification.id)
    ).all()
    assert statuses == ["cancelled"]
