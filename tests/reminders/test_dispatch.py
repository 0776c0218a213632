"""The dispatcher: due rules become notifications once, next_fire_at moves on, late ones are
missed, and the work follows the index on next_fire_at."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from api.auth.models import User
from api.notifications.models import Delivery, Notification
from api.reminders import services
from api.reminders.dispatch import DispatchSettings, dispatch_batch, due_rules
from api.reminders.models import ReminderRule
from jobs.reminders import dispatch_reminders
from tests.support.queries import count_queries

SETTINGS = DispatchSettings(grace=timedelta(minutes=30), batch_size=50)
NY = ZoneInfo("America/New_York")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def make_rule(session: Session, user: User, now: datetime, **body: Any) -> ReminderRule:
    body = {"kind": "checkin", "local_time": "09:00", "channels": ["inbox"], **body}
    rule, _ = services.create_rule(session, user=user, body=body, now=now)
    session.commit()
    return rule


def notifications_of(session: Session, rule: ReminderRule) -> list[Notification]:
    return list(
        session.scalars(
            select(Notification)
            .where(Notification.rule_id == rule.id)
            .order_by(Notification.scheduled_for)
        )
    )


def test_a_due_rule_is_queued_once_and_moves_to_the_next_day(
    session: Session, make_patient: Callable[..., User]
) -> None:
    user = make_patient(timezone="America/New_York")
    created = at("2026-12-01T08:00:00-05:00")
    rule = make_rule(session, user, created, channels=["inbox", "email"])
    assert rule.next_fire_at == at("2026-12-01T09:00:00-05:00")

    assert dispatch_reminders(session, now=at("2026-12-01T08:59:59-05:00"), settings=SETTINGS) == 0
    assert dispatch_reminders(session, now=at("2026-12-01T09:00:10-05:00"), settings=SETTINGS) == 1
    session.refresh(rule)
    assert rule.next_fire_at == at("2026-12-02T09:00:00-05:00")
    assert rule.last_occurrence_at == at("2026-12-01T09:00:00-05:00")
    (sent,) = notifications_of(session, rule)
    assert sent.scheduled_for == sent.due_at == at("2026-12-01T09:00:00-05:00")
    channels = sorted(
        session.scalars(select(Delivery.channel).where(Delivery.notification_id == sent.id))
    )
    assert channels == ["email", "inbox"]
    # running again at the same instant finds nothing due
    assert dispatch_reminders(session, now=at("2026-12-01T09:00:20-05:00"), settings=SETTINGS) == 0
    assert len(notifications_of(session, rule)) == 1


def test_the_unique_key_stops_a_second_notification_for_the_same_instant(
    session: Session, make_patient: Callable[..., User]
) -> None:
    user = make_patient(timezone="UTC")
    rule = make_rule(session, user, at("2026-12-01T08:00:00+00:00"))
    dispatch_reminders(session, now=at("2026-12-01T09:00:00+00:00"), settings=SETTINGS)
    # A dispatcher that read the rule before the first one committed would see the old instant:
    # put it back and dispatch again.
    rule.next_local_date = rule.last_local_date
    rule.next_occurrence_at = rule.next_fire_at = at("2026-12-01T09:00:00+00:00")
    session.commit()
    assert dispatch_reminders(session, now=at("2026-12-01T09:00:30+00:00"), settings=SETTINGS) == 1
    assert len(notifications_of(session, rule)) == 1
    assert session.scalar(select(func.count()).select_from(Delivery)) == 1


def test_after_downtime_recent_ones_are_sent_late_and_older_ones_missed(
    session: Session, make_patient: Callable[..., User]
) -> None:
    user = make_patient(timezone="UTC")
    rule = make_rule(session, user, at("2026-12-01T00:00:00+00:00"), local_time="09:00")
    morning = make_rule(session, user, at("2026-12-01T00:00:00+00:00"), local_time="11:50")
    # the scheduler was down from Dec 1 08:00 until Dec 3 12:10
    dispatch_reminders(session, now=at("2026-12-03T12:10:00+00:00"), settings=SETTINGS)
    by_rule = {
        r.id: [
            (n.scheduled_for.isoformat(), _statuses(session, n))
            for n in notifications_of(session, r)
        ]
        for r in (rule, morning)
    }
    assert by_rule[rule.id] == [
        ("2026-12-01T09:00:00+00:00", ["missed"]),
        ("2026-12-02T09:00:00+00:00", ["missed"]),
        ("2026-12-03T09:00:00+00:00", ["missed"]),
    ]
    assert by_rule[morning.id] == [
        ("2026-12-01T11:50:00+00:00", ["missed"]),
        ("2026-12-02T11:50:00+00:00", ["missed"]),
        ("2026-12-03T11:50:00+00:00", ["queued"]),  # 20 minutes late: within the grace window
    ]
    session.refresh(rule)
    assert rule.next_fire_at == at("2026-12-04T09:00:00+00:00")


def _statuses(session: Session, notification: Notification) -> list[str]:
    return list(
        session.scalars(select(Delivery.status).where(Delivery.notification_id == notification.id))
    )


def test_a_long_downtime_does_not_record_every_day(
    session: Session, make_patient: Callable[..., User]
) -> None:
    user = make_patient(timezone="UTC")
    rule = make_rule(session, user, at("2026-01-01T00:00:00+00:00"))
    settings = DispatchSettings(grace=timedelta(minutes=30), batch_size=50, catch_up_limit=5)
    dispatch_reminders(session, now=at("2026-03-01T09:10:00+00:00"), settings=settings)
    fired = notifications_of(session, rule)
    # five recorded as missed, then skipped ahead to the grace window: today's is queued
    assert len(fired) == 6
    assert fired[-1].scheduled_for == at("2026-03-01T09:00:00+00:00")
    assert _statuses(session, fired[-1]) == ["queued"]
    session.refresh(rule)
    assert rule.next_fire_at == at("2026-03-02T09:00:00+00:00")


def test_quiet_hours_hold_the_reminder_and_the_key_stays_the_scheduled_instant(
    session: Session, make_patient: Callable[..., User]
) -> None:
    user = make_patient(timezone="America/New_York")
    user.quiet_hours_start, user.quiet_hours_end = "22:00", "07:30"
    session.commit()
    rule = make_rule(session, user, at("2026-12-01T12:00:00-05:00"), local_time="06:00")
    assert rule.next_fire_at == at("2026-12-02T07:30:00-05:00")
    assert rule.next_occurrence_at == at("2026-12-02T06:00:00-05:00")
    assert dispatch_reminders(session, now=at("2026-12-02T06:30:00-05:00"), settings=SETTINGS) == 0
    dispatch_reminders(session, now=at("2026-12-02T07:30:05-05:00"), settings=SETTINGS)
    (held,) = notifications_of(session, rule)
    assert held.scheduled_for == at("2026-12-02T06:00:00-05:00")
    assert held.due_at == at("2026-12-02T07:30:00-05:00")


@pytest.mark.parametrize(
    ("local_time", "days", "expected"),
    [
        # spring forward in New York on 2026-03-08: 02:30 does not exist -> 03:00 EDT
        (
            "02:30",
            ("2026-03-06T12:00:00+00:00", "2026-03-10T12:00:00+00:00"),
            [
                "2026-03-07T07:30:00+00:00",
                "2026-03-08T07:00:00+00:00",
                "2026-03-09T06:30:00+00:00",
                "2026-03-10T06:30:00+00:00",
            ],
        ),
        # fall back on 2026-11-01: 01:30 happens twice -> once, at the first (EDT)
        (
            "01:30",
            ("2026-10-30T12:00:00+00:00", "2026-11-03T12:00:00+00:00"),
            [
                "2026-10-31T05:30:00+00:00",
                "2026-11-01T05:30:00+00:00",
                "2026-11-02T06:30:00+00:00",
                "2026-11-03T06:30:00+00:00",
            ],
        ),
    ],
)
def test_dispatching_every_few_minutes_across_dst(
    session: Session,
    make_patient: Callable[..., User],
    local_time: str,
    days: tuple[str, str],
    expected: list[str],
) -> None:
    user = make_patient(timezone="America/New_York")
    start, end = at(days[0]), at(days[1])
    rule = make_rule(session, user, start, local_time=local_time)
    now = start
    while now <= end:
        dispatch_reminders(session, now=now, settings=SETTINGS)
        now += timedelta(minutes=10)
    fired = notifications_of(session, rule)
    assert [n.scheduled_for.isoformat() for n in fired] == expected
    assert all(_statuses(session, n) == ["queued"] for n in fired)


def _bulk_rules(session: Session, user: User, *, due: int, future: int, now: datetime) -> None:
    rows = []
    for i in range(due + future):
        fire = now - timedelta(seconds=i + 1) if i < due else now + timedelta(hours=1, seconds=i)
        rows.append(
            {
                "id": uuid.uuid4(),
                "user_id": user.id,
                "kind": "checkin",
                "local_time": fire.strftime("%H:%M"),
                "timezone": "UTC",
                "push": False,
                "email": False,
                "enabled": True,
                "next_local_date": fire.date(),
                "next_occurrence_at": fire,
                "next_fire_at": fire,
                "created_at": now,
                "updated_at": now,
            }
        )
    session.execute(sa.insert(ReminderRule.__table__), rows)
    session.commit()


def _count_statements(session: Session, action: Callable[[], Any]) -> int:
    with count_queries(session.connection()) as statements:
        action()
    return len(statements)


def test_statements_per_batch_do_not_grow_with_rules_due_or_stored(
    session: Session, make_patient: Callable[..., User]
) -> None:
    user = make_patient(timezone="UTC")
    now = at("2026-12-01T12:00:00+00:00")
    _bulk_rules(session, user, due=3, future=200, now=now)
    few = _count_statements(session, lambda: dispatch_batch(session, now=now, settings=SETTINGS))
    session.commit()
    _bulk_rules(session, user, due=40, future=0, now=now + timedelta(minutes=1))
    many = _count_statements(
        session,
        lambda: dispatch_batch(session, now=now + timedelta(minutes=1), settings=SETTINGS),
    )
    assert few == many <= 4


@pytest.mark.postgres_only
def test_the_claim_is_an_index_range_scan(
    session: Session, backend: str, make_patient: Callable[..., User]
) -> None:
    if backend != "postgresql":
        pytest.skip("query plans are PostgreSQL's")
    user = make_patient(timezone="UTC")
    now = at("2026-12-01T12:00:00+00:00")
    _bulk_rules(session, user, due=20, future=20000, now=now)
    session.execute(sa.text("ANALYZE reminder_rules"))
    stmt = due_rules(now=now, limit=500)
    compiled = stmt.compile(dialect=session.get_bind().dialect)
    plan = "\n".join(
        session.connection().exec_driver_sql(f"EXPLAIN {compiled}", compiled.params).scalars()
    )
    assert "ix_reminder_rules_next_fire_at" in plan, plan
    assert "Seq Scan on reminder_rules" not in plan, plan


@pytest.mark.postgres_only
def test_two_dispatchers_at_once_skip_each_others_rows(
    committed_db: sa.Engine, backend: str, app: Any
) -> None:
    if backend != "postgresql":
        pytest.skip("FOR UPDATE SKIP LOCKED is PostgreSQL's")
    from api.auth.models import User as UserModel

    now = at("2026-12-01T12:00:00+00:00")
    make = sessionmaker(bind=committed_db, expire_on_commit=False)
    with make() as setup:
        user = UserModel(email="two@example.test", password_hash="x", display_name="T")
        setup.add(user)
        setup.commit()
        _bulk_rules(setup, user, due=10, future=0, now=now)
    settings = DispatchSettings(grace=timedelta(minutes=30), batch_size=6)
    first, second = make(), make()
    try:
        assert dispatch_batch(first, now=now, settings=settings) == 6  # holds 6 row locks
        assert dispatch_batch(second, now=now, settings=settings) == 4  # takes the other 4
        first.commit()
        second.commit()
    finally:
        first.close()
        second.close()
    with make() as check:
        assert check.scalar(select(func.count()).select_from(Notification)) == 10
        assert check.scalar(select(func.count(func.distinct(Notification.rule_id)))) == 10
