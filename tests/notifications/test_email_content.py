"""No user-supplied text ever reaches an email (issue 11 item 9; STYLE: never health values, notes,
tokens or emails in email bodies). A marker is planted in every user-supplied text field of a
patient and a clinician, every kind of email the service sends goes out through a real SMTP
server, and no subject or body holds the marker, an address or a name."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

import api.all_models  # noqa: F401 - every table on Base.metadata
from api.alerts.models import Alert, AlertAcknowledgement
from api.auth import email_tokens, recovery
from api.auth.email_tokens import EmailTokenSettings
from api.auth.models import User
from api.db import Base
from api.reminders.models import KINDS
from jobs import alerts as alert_job
from jobs import weekly_summaries
from tests.consenting import sign
from tests.notifications.test_sender import queue
from tests.servers import Mailbox
from tests.support.demo import generate_demo
from tests.support.demo_seed import seed_demo

MARK = "Qz9marker"
# Every column that holds text a person typed (or a copy of it): the marker goes into each.
USER_TEXT = {
    ("users", "display_name"),
    ("users", "organization"),
    ("users", "email"),  # planted per account (unique): see _mark_everything
    ("checkins", "note"),
    ("medications", "name"),
    ("doses", "note"),
    ("counseling_sessions", "title"),
    ("counseling_sessions", "provider_name"),
    ("counseling_sessions", "location"),
    ("counseling_sessions", "note"),
    ("consents", "signature"),
    ("consents", "patient_name"),
    ("consents", "recipient_name"),
    ("consents", "recipient_organization"),
    ("disclosures", "recipient_name"),
    ("disclosures", "recipient_organization"),
    ("disclosures", "client_name"),
    ("alert_acknowledgements", "note"),
    ("system_clients", "name"),
    ("export_jobs", "request_url"),
    ("email_requests", "email"),  # an address typed for a reset, kept until the sender's run
}
# Long text columns that no person types: the service's own words or machine values.
NOT_USER_TEXT = {
    ("alerts", "detail"),  # written by the alert rules
    ("alerts", "episode_key"),
    ("consents", "discloser"),  # the program's name, from configuration
    ("consents", "revocation_statement"),  # the program's text, from configuration
    ("audit_events", "client_address"),
    ("rate_counters", "key"),
    ("scheduler_heartbeats", "instance"),
    ("site_settings", "value"),
    ("devices", "push_p256dh"),
    ("idempotency_keys", "key"),
    ("system_clients", "jwks_url"),
    ("client_assertions", "jti"),
    ("export_jobs", "error"),  # generic text, never values
    ("devices", "token"),
    ("users", "password_hash"),
    ("users", "totp_secret"),  # sealed (Fernet): machine text
    ("clinic_sessions", "pending_totp_secret"),  # the same, during enrolment
    ("audit_events", "request_id"),
}


def _long_text_columns() -> set[tuple[str, str]]:
    found = set()
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            kind = column.type
            if isinstance(kind, sa.String) and (kind.length is None or kind.length >= 100):
                found.add((table.name, column.name))
    return found


def test_every_long_text_column_is_classified() -> None:
    # A new free-text column must join USER_TEXT (and so get the marker below) or say why not.
    assert _long_text_columns() - USER_TEXT - NOT_USER_TEXT == set()
    assert (USER_TEXT | NOT_USER_TEXT) - _long_text_columns() == set()


def _mark_everything(session: Session) -> None:
    """The marker in every USER_TEXT column of every row (the address: one per account)."""
    tables = Base.metadata.tables
    for table_name, column in sorted(USER_TEXT - {("users", "email")}):
        session.execute(sa.update(tables[table_name]).values({column: MARK}))
    users = tables["users"]
    for n, user_id in enumerate(session.scalars(sa.select(users.c.id)).all()):
        address = f"{MARK.lower()}{n}@example.test"
        session.execute(sa.update(users).where(users.c.id == user_id).values(email=address))
    session.commit()


class TestNoUserTextInAnyEmail:
    # Tuesday after the demo's last week: the weekly summary is built then.
    BUILD = datetime(2026, 11, 17, 12, 0, tzinfo=UTC)

    @pytest.fixture(params=[False, True], ids=["plain", "discreet"])
    def sent(
        self,
        request: pytest.FixtureRequest,
        app: Flask,
        client: FlaskClient,
        session: Session,
        make_patient: Callable[..., User],
        make_clinician: Callable[..., User],
        mailbox: Mailbox,
        send: Callable[..., Any],
    ) -> list[tuple[str, str, str]]:
        """(subject, body, a secret it must not hold) for every email the service sent in a
        world full of the marker."""
        demo = generate_demo(seed=6)
        patient = make_patient(timezone=demo.timezone)
        patient.discreet_notifications = request.param
        clinician = make_clinician()
        seed_demo(session, demo, patient_id=patient.id, created_at=demo.start)
        session.commit()
        sign(
            session,
            patient=patient,
            clinician=clinician,
            categories=["symptoms", "medications", "counseling"],
            now=demo.start - timedelta(days=1),
            days=120,
            share_weekly_summary=True,
        )
        alert_job.evaluate_alerts(session, now=demo.now, config=app.config)
        for alert_id in session.scalars(sa.select(Alert.id)):
            session.add(
                AlertAcknowledgement(
                    alert_id=alert_id, clinician_id=clinician.id, acknowledged_at=demo.now
                )
            )
        session.commit()
        _mark_everything(session)
        # The world really holds the marker (no system client or bulk export here; disclosure
        # rows are made at delivery, copying the consent's marked names).
        for table, column in sorted(USER_TEXT):
            if table not in ("system_clients", "export_jobs", "disclosures", "email_requests"):
                values = list(session.scalars(sa.select(Base.metadata.tables[table].c[column])))
                assert values and all(MARK.lower() in v.lower() for v in values), (table, column)
        session.refresh(patient)
        session.refresh(clinician)

        # 1. The clinician's weekly summary notice (queued in the outbox, sent by its sender).
        weekly_summaries.build_weekly_summaries(session, now=self.BUILD, config=app.config)
        noticed = self.BUILD + timedelta(minutes=5)
        delivered = weekly_summaries.deliver_weekly_summaries(
            session, now=noticed, config=app.config
        )
        assert delivered["notified"] == 1
        assert send(session, noticed + timedelta(seconds=3))["sent"] == 1
        # 2. A reminder email of every kind.
        due = self.BUILD + timedelta(days=1)
        for kind in KINDS:
            queue(session, patient, kind=kind, push=False, due=due)
        assert send(session, due + timedelta(seconds=3))["sent"] == len(KINDS)
        # 3. The notice to an address's owner that someone tried to register with it.
        resp = client.post(
            "/v1/auth/register",
            json={
                "email": patient.email,
                "password": "another long password",
                "display_name": MARK,
                "timezone": "UTC",
            },
        )
        assert resp.status_code == 202
        send(session, datetime.now(UTC) + timedelta(seconds=3))
        # 4. A password-reset link (asked for by address) and a verification link.
        assert client.post("/v1/auth/password-reset", json={"email": patient.email}).status_code
        settings = EmailTokenSettings.from_config(app.config)
        now = datetime.now(UTC)
        assert recovery.issue_requested_emails(session, now=now, settings=settings) == 1
        email_tokens.issue(
            session,
            user_id=patient.id,
            purpose=email_tokens.VERIFY_EMAIL,
            now=now,
            settings=settings,
        )
        session.commit()
        assert send(session, now + timedelta(seconds=3))["sent"] == 2

        with mailbox.lock:
            messages = list(mailbox.messages)
        assert len(messages) == len(KINDS) + 4
        recipients = {m["To"] for m in messages}
        assert recipients == {patient.email, clinician.email}
        # The marker in every spelling it was planted in, and both addresses.
        secrets = [MARK, MARK.lower(), patient.email, clinician.email]
        return [
            (str(m["Subject"]), m.get_payload(decode=True).decode("utf-8"), secret)
            for m in messages
            for secret in secrets
        ]

    def test_every_kind_of_email_is_sent(self, sent: list[tuple[str, str, str]]) -> None:
        subjects = {subject for subject, _, _ in sent}
        assert "New weekly summaries are ready" in subjects
        assert subjects & {"About your Waymark account", "About your account"}
        assert subjects & {"A reminder from Waymark", "You have a reminder"}
        assert subjects & {"Reset your Waymark password", "Reset your password"}
        assert subjects & {"Confirm your email for Waymark", "Confirm your email address"}

    def test_no_marker_address_or_name_in_any_subject_or_body(
        self, sent: list[tuple[str, str, str]]
    ) -> None:
        for subject, body, secret in sent:
            assert secret not in subject
            assert secret not in body
