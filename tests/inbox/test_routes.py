"""The in-app inbox: what reached the user, newest first, and read marks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from api.auth.models import User
from api.notifications import services as outbox
from api.reminders import services as reminder_services

NOW = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
SETTINGS = outbox.SenderSettings(
    grace=timedelta(minutes=30),
    lease=timedelta(minutes=5),
    max_attempts=3,
    backoff_base=timedelta(seconds=30),
    backoff_cap=timedelta(minutes=5),
)


def deliver_to_inbox(session: Session, user: User, count: int) -> None:
    rule, _ = reminder_services.create_rule(
        session,
        user=user,
        body={"kind": "checkin", "local_time": "09:00", "channels": ["inbox"]},
        now=NOW - timedelta(days=1),
    )
    for i in range(count):
        due = NOW + timedelta(minutes=i)
        outbox.enqueue(
            session,
            occurrences=[
                outbox.Occurrence(
                    user_id=user.id,
                    rule_id=rule.id,
                    kind="checkin",
                    scheduled_for=due,
                    due_at=due,
                    email=False,
                    push=False,
                )
            ],
            now=due,
        )
        outbox.claim_deliveries(session, now=due, limit=10, settings=SETTINGS)
    # one more, not yet due: not in the inbox
    later = NOW + timedelta(hours=3)
    outbox.enqueue(
        session,
        occurrences=[
            outbox.Occurrence(
                user_id=user.id,
                rule_id=rule.id,
                kind="checkin",
                scheduled_for=later,
                due_at=later,
                email=False,
                push=False,
            )
        ],
        now=NOW,
    )
    session.commit()


def test_inbox_lists_delivered_notifications_newest_first_and_pages(
    client: FlaskClient, session: Session, patient: User, patient_headers: dict[str, str]
) -> None:
    deliver_to_inbox(session, patient, 3)
    first = client.get("/v1/inbox?limit=2", headers=patient_headers).json
    assert [i["scheduled_for"] for i in first["items"]] == [
        "2026-12-01T14:02:00+00:00",
        "2026-12-01T14:01:00+00:00",
    ]
    item = first["items"][0]
    assert item["title"] == "Time to check in" and item["kind"] == "checkin"
    assert item["read_at"] is None and item["snoozed"] is False
    rest = client.get(f"/v1/inbox?limit=2&cursor={first['next_cursor']}", headers=patient_headers)
    assert len(rest.json["items"]) == 1 and rest.json["next_cursor"] is None


def test_mark_read_and_privacy(
    client: FlaskClient,
    session: Session,
    patient: User,
    patient_headers: dict[str, str],
    make_patient: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
) -> None:
    deliver_to_inbox(session, patient, 1)
    (item,) = client.get("/v1/inbox", headers=patient_headers).json["items"]
    stranger = auth_headers(make_patient())
    assert client.post(f"/v1/inbox/{item['id']}/read", headers=stranger).status_code == 404
    assert client.get("/v1/inbox", headers=stranger).json["items"] == []
    read = client.post(f"/v1/inbox/{item['id']}/read", headers=patient_headers)
    assert read.status_code == 200 and read.json["read_at"]
    again = client.post(f"/v1/inbox/{item['id']}/read", headers=patient_headers)
    assert again.json["read_at"] == read.json["read_at"]


def test_discreet_users_see_the_discreet_text_in_the_inbox(
    client: FlaskClient, session: Session, patient: User, patient_headers: dict[str, str]
) -> None:
    deliver_to_inbox(session, patient, 1)
    client.patch("/v1/me", json={"discreet_notifications": True}, headers=patient_headers)
    (item,) = client.get("/v1/inbox", headers=patient_headers).json["items"]
    assert item["title"] == "You have a reminder"
    assert "check" not in item["body"].lower()
