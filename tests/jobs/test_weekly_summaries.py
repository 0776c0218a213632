"""The weekly summaries job: one per consent and week, consent checked again at delivery, a
disclosure per delivery, an email with a link and no health data."""

from __future__ import annotations

import dataclasses
import math
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api.consent import services as consent_services
from api.disclosures.models import Disclosure
from api.notifications.models import Delivery, Notification
from api.notifications.push import PushRouter
from api.summaries.models import WeeklySummary
from jobs import reminders as reminder_jobs
from jobs import weekly_summaries
from tests.consenting import sign
from tests.servers import Mailbox, start_smtp
from tests.support.demo import DemoPatient, generate_demo
from tests.support.demo_seed import seed_demo
from tests.support.test_demo import Expected, leaves

# Tuesday after the demo's last week (Monday 2026-11-09 to Monday 2026-11-16, Chicago).
BUILD = datetime(2026, 11, 17, 12, 0, tzinfo=UTC)
DELIVER = BUILD + timedelta(minutes=5)
ALL = ["symptoms", "medications", "counseling"]


def send_outbox(app: Flask, session: Session, *, now: datetime, port: int) -> Counter[str]:
    """Run the outbox's sender (the scheduler's send_notifications) against an SMTP server."""
    config = {**app.config, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": port}
    email, links = reminder_jobs.channels(config)
    return reminder_jobs.send_notifications(
        session,
        clock=lambda: now,
        settings=reminder_jobs.sender_settings(config),
        batch_size=20,
        email=email,
        push=PushRouter(),
        links=links,
    )


def notices(session: Session) -> list[tuple[Notification, list[Delivery]]]:
    found = []
    for notification in session.scalars(
        select(Notification).where(Notification.kind == "weekly_summaries")
    ):
        rows = session.scalars(
            select(Delivery)
            .where(Delivery.notification_id == notification.id)
            .execution_options(populate_existing=True)  # the sender updates rows in SQL
        ).all()
        found.append((notification, list(rows)))
    return found


@pytest.fixture
def demo() -> DemoPatient:
    return generate_demo(seed=6)


@pytest.fixture
def world(
    session: Session,
    demo: DemoPatient,
    make_patient: Callable[..., Any],
    make_clinician: Callable[..., Any],
    auth_headers: Callable[[Any], dict[str, str]],
) -> dict[str, Any]:
    patient = make_patient(display_name="Weekly Demo Patient", timezone=demo.timezone)
    clinician = make_clinician(email="dr.weekly@example.test")
    seed_demo(session, demo, patient_id=patient.id, created_at=demo.start)
    consent = sign(
        session,
        patient=patient,
        clinician=clinician,
        categories=ALL,
        now=demo.start - timedelta(days=1),
        days=120,
        share_weekly_summary=True,
    )
    return {
        "patient": patient,
        "clinician": clinician,
        "consent": consent,
        "headers": auth_headers(clinician),
    }


def summaries(session: Session) -> list[WeeklySummary]:
    return list(session.scalars(select(WeeklySummary)))


def test_build_once_per_consent_and_week_with_the_weeks_figures(
    app: Flask, session: Session, world: dict[str, Any], demo: DemoPatient
) -> None:
    assert weekly_summaries.build_weekly_summaries(session, now=BUILD, config=app.config) == 1
    assert weekly_summaries.build_weekly_summaries(session, now=BUILD, config=app.config) == 0
    later = BUILD + timedelta(days=1)  # same week still the last one that ended
    assert weekly_summaries.build_weekly_summaries(session, now=later, config=app.config) == 0
    (row,) = summaries(session)
    assert row.status == "built" and row.week_start.isoformat() == "2026-11-09"
    content = row.content
    assert content["kind"] == "weekly" and content["period"]["days"] == 7
    assert content["patient"]["display_name"] == "Weekly Demo Patient"
    assert content["consent"]["id"] == str(world["consent"].id)
    # The parts every summary shares are restored when read, not stored 10,000 times a week.
    assert "redisclosure_notice" not in content and "definitions" not in content
    # Every figure of the week, recomputed by the independent loops.
    week = dataclasses.replace(demo, start=demo.end - timedelta(days=7), now=BUILD)
    want = leaves(Expected(week).sections())
    got = leaves(content["sections"])
    assert set(got) == set(want)
    for path, value in want.items():
        if isinstance(value, float) or isinstance(got[path], float):
            assert got[path] is not None and value is not None, (path, got[path], value)
            assert math.isclose(got[path], value, abs_tol=1e-9), path
        else:
            assert got[path] == value, path


def test_deliver_discloses_and_queues_an_email_with_a_link_without_health_data(
    app: Flask, session: Session, world: dict[str, Any]
) -> None:
    weekly_summaries.build_weekly_summaries(session, now=BUILD, config=app.config)
    result = weekly_summaries.deliver_weekly_summaries(session, now=DELIVER, config=app.config)
    assert result == {"delivered": 1, "cancelled": 0, "notified": 1}
    (row,) = summaries(session)
    assert row.status == "delivered" and row.delivered_at == DELIVER and row.notified_at
    (disclosure,) = session.scalars(select(Disclosure))
    assert disclosure.kind == "summary" and disclosure.consent_id == world["consent"].id
    assert disclosure.recipient_id == world["clinician"].id
    assert sorted(disclosure.categories) == sorted(ALL)
    # The one email path: queued in the outbox, in the transaction that marked it notified;
    # nothing has left the process yet. No inbox row, no push: an email to the clinician.
    ((notice, rows),) = notices(session)
    assert notice.user_id == world["clinician"].id and notice.payload == {
        "summary_ids": [str(row.id)]
    }
    assert [(d.channel, d.status) for d in rows] == [("email", "queued")]
    mailbox = Mailbox()
    controller, port = start_smtp(mailbox)
    try:
        assert send_outbox(app, session, now=DELIVER, port=port)["sent"] == 1
        # Nothing twice: a rerun queues nothing more, and the sender has nothing left.
        again = weekly_summaries.deliver_weekly_summaries(session, now=DELIVER, config=app.config)
        assert again == {"delivered": 0, "cancelled": 0, "notified": 0}
        send_outbox(app, session, now=DELIVER + timedelta(minutes=1), port=port)
    finally:
        controller.stop()
    (message,) = mailbox.messages
    assert message["To"] == "dr.weekly@example.test"
    subject, body = message["Subject"], message.get_payload(decode=True).decode()
    assert subject == "New weekly summaries are ready"
    assert f"/clinic/summaries/{row.id}" in body
    for secret in ("Weekly Demo Patient", "Buprenorphine", "SOWS", "Lofexidine", "missed"):
        assert secret not in subject + body
    (_notice, (delivery,)) = notices(session)[0]
    assert delivery.status == "sent"
    assert message["Message-ID"].startswith(f"<{delivery.id}@")


def test_a_consent_revoked_between_building_and_delivering_stops_the_delivery(
    app: Flask, session: Session, client: FlaskClient, world: dict[str, Any]
) -> None:
    weekly_summaries.build_weekly_summaries(session, now=BUILD, config=app.config)
    consent_services.revoke_consent(
        session,
        patient_id=world["patient"].id,
        consent_id=world["consent"].id,
        now=BUILD + timedelta(minutes=1),
    )
    session.commit()
    result = weekly_summaries.deliver_weekly_summaries(session, now=DELIVER, config=app.config)
    assert result == {"delivered": 0, "cancelled": 1, "notified": 0}
    (row,) = summaries(session)
    assert row.status == "cancelled" and row.content is None and row.delivered_at is None
    assert session.scalars(select(Disclosure)).all() == []
    assert notices(session) == []
    listed = client.get("/v1/clinician/summaries", headers=world["headers"])
    assert listed.status_code == 200 and listed.json["items"] == []


def test_clinician_lists_and_reads_delivered_summaries_until_revoked(
    app: Flask, session: Session, client: FlaskClient, world: dict[str, Any]
) -> None:
    weekly_summaries.build_weekly_summaries(session, now=BUILD, config=app.config)
    weekly_summaries.deliver_weekly_summaries(session, now=DELIVER, config=app.config)
    listed = client.get("/v1/clinician/summaries", headers=world["headers"])
    assert listed.status_code == 200
    (item,) = listed.json["items"]
    assert item["display_name"] == "Weekly Demo Patient" and item["week_start"] == "2026-11-09"
    assert listed.json["notice"].startswith("This record")
    one = client.get(f"/v1/clinician/summaries/{item['id']}", headers=world["headers"])
    assert one.status_code == 200
    assert one.json["content"]["sections"]["checkins"]["days_in_period"] == 7
    assert one.json["content"]["redisclosure_notice"].startswith("This record")
    assert "pdc" in one.json["content"]["definitions"]
    assert one.json["display_name"] == "Weekly Demo Patient"
    page = client.get(f"/v1/clinician/summaries/{item['id']}?format=html", headers=world["headers"])
    assert page.mimetype == "text/html" and "<svg" in page.get_data(as_text=True)
    pdf = client.get(f"/v1/clinician/summaries/{item['id']}?format=pdf", headers=world["headers"])
    assert pdf.data.startswith(b"%PDF")
    # The same pages at paths of their own (one media type each, for generated clients).
    alone = client.get(f"/v1/clinician/summaries/{item['id']}.html", headers=world["headers"])
    assert alone.mimetype == "text/html" and alone.get_data(as_text=True) == page.get_data(True)
    alone_pdf = client.get(f"/v1/clinician/summaries/{item['id']}.pdf", headers=world["headers"])
    assert alone_pdf.mimetype == "application/pdf" and alone_pdf.data.startswith(b"%PDF")
    consent_services.revoke_consent(
        session,
        patient_id=world["patient"].id,
        consent_id=world["consent"].id,
        now=datetime.now(UTC),
    )
    session.commit()
    gone = client.get(f"/v1/clinician/summaries/{item['id']}", headers=world["headers"])
    assert gone.status_code == 404
    for suffix in (".html", ".pdf"):
        path = f"/v1/clinician/summaries/{item['id']}{suffix}"
        assert client.get(path, headers=world["headers"]).status_code == 404
    assert client.get("/v1/clinician/summaries", headers=world["headers"]).json["items"] == []


def test_only_consents_sharing_weekly_summaries_get_one(
    app: Flask,
    session: Session,
    world: dict[str, Any],
    demo: DemoPatient,
    make_clinician: Callable[..., Any],
) -> None:
    sign(
        session,
        patient=world["patient"],
        clinician=make_clinician(),
        categories=ALL,
        now=demo.start,
        days=120,
        share_weekly_summary=False,
    )
    assert weekly_summaries.build_weekly_summaries(session, now=BUILD, config=app.config) == 1
    (row,) = summaries(session)
    assert row.consent_id == world["consent"].id


def test_a_refused_notice_is_retried_by_the_outbox(
    app: Flask, session: Session, world: dict[str, Any]
) -> None:
    """The outbox's retries, not the next weekly run: the SMTP server is down at the first try
    (the row waits its backoff, the summary stays notified), up at the next."""
    weekly_summaries.build_weekly_summaries(session, now=BUILD, config=app.config)
    weekly_summaries.deliver_weekly_summaries(session, now=DELIVER, config=app.config)
    # Port 1 on loopback: nothing listens, so the first try fails at once.
    assert send_outbox(app, session, now=DELIVER, port=1)["queued"] == 1
    ((_notice, (delivery,)),) = notices(session)
    assert (delivery.status, delivery.last_error, delivery.attempts) == (
        "queued",
        "smtp_unavailable",
        1,
    )
    mailbox = Mailbox()
    controller, port = start_smtp(mailbox)
    try:
        # Before the backoff is over nothing is tried; after it, the notice goes out.
        assert send_outbox(app, session, now=DELIVER, port=port) == Counter()
        later = delivery.next_attempt_at
        assert send_outbox(app, session, now=later, port=port)["sent"] == 1
    finally:
        controller.stop()
    (message,) = mailbox.messages
    assert message["To"] == "dr.weekly@example.test"
    assert weekly_summaries.deliver_weekly_summaries(session, now=later, config=app.config) == {
        "delivered": 0,
        "cancelled": 0,
        "notified": 0,
    }


@pytest.mark.postgres_only
def test_two_schedulers_building_at_once_make_one_summary(
    app: Flask, backend: str, committed_db: Any
) -> None:
    if backend != "postgresql":
        pytest.skip("needs PostgreSQL: real concurrent transactions")
    from api.auth import services as auth_services
    from api.security import password_hasher

    maker = sessionmaker(bind=committed_db, expire_on_commit=False)
    with app.app_context():
        setup = maker()
        people = {
            role: auth_services.create_user(
                setup,
                hasher=password_hasher(),
                email=f"{role}-race@example.test",
                password="correct horse battery",
                display_name=role,
                timezone="America/Chicago",
                role=role,
                **({"organization": "Clinic"} if role == "clinician" else {}),
            )
            for role in ("patient", "clinician")
        }
        setup.commit()
        sign(
            setup,
            patient=people["patient"],
            clinician=people["clinician"],
            categories=ALL,
            now=BUILD - timedelta(days=30),
            days=120,
            share_weekly_summary=True,
        )
        setup.close()
    results: list[int] = []
    start = threading.Barrier(2)

    def build() -> None:
        with app.app_context():
            own = maker()
            try:
                start.wait(10)
                results.append(
                    weekly_summaries.build_weekly_summaries(own, now=BUILD, config=app.config)
                )
            finally:
                own.close()

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == [0, 1]
    check = maker()
    assert len(summaries(check)) == 1
    check.close()
