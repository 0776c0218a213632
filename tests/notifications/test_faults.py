"""Faults in the sender (issue 15): a database outage in the middle of an SMTP exchange and a
sender lost after the end of the message must not put a second copy in anyone's mailbox.

The database is cut through a TCP proxy (tests/support/proxy.py): the shared PostgreSQL server
itself is never stopped. The mail server here counts a message when it reads the end-of-data
mark, before it replies, as many real servers do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from api.auth.models import User
from api.db import make_engine
from api.notifications import services as outbox
from api.notifications.channels import EmailChannel, EmailSettings
from api.notifications.models import Delivery
from api.notifications.push import PushRouter
from jobs import reminders as reminder_jobs
from tests.notifications.conftest import LINKS
from tests.notifications.test_sender import queue
from tests.servers import Mailbox, start_smtp
from tests.support.proxy import TcpProxy

pytestmark = pytest.mark.postgres_only


class SlowToReply(Mailbox):
    """Counts the message at the end of data, then takes longer to answer than the sender waits."""

    delay = 3.0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        await super().handle_DATA(server, session, envelope)
        await asyncio.sleep(self.delay)
        return "250 Message accepted for delivery"


@pytest.fixture
def proxy(database_url: str, backend: str) -> Iterator[TcpProxy]:
    if backend != "postgresql":
        pytest.skip("the outage is cut between the sender and PostgreSQL")
    proxied = TcpProxy.for_url(database_url)
    yield proxied
    proxied.close()


def _user(make: Any) -> User:
    with make() as session:
        user = User(email="fault@example.test", password_hash="x", display_name="F", timezone="UTC")
        session.add(user)
        session.commit()
        return user


def _run(make: Any, channel: EmailChannel, settings: Any, now: datetime) -> Any:
    with make() as session:
        try:
            return reminder_jobs.send_notifications(
                session,
                clock=lambda: now,
                settings=settings,
                batch_size=20,
                email=channel,
                push=PushRouter(),  # email only here
                links=LINKS,
                budget_seconds=10,
            )
        finally:
            session.rollback()


def _recover(make: Any, channel: EmailChannel, settings: Any, now: datetime) -> None:
    """What the scheduler does next: the leader's next send run (and, were the claim still
    held, the lease running out)."""
    later = now + settings.lease + timedelta(seconds=1)
    with make() as session:
        outbox.release_orphaned_claims(session, now=later)
        session.commit()
    _run(make, channel, settings, later)


def test_a_database_outage_at_the_commit_point_sends_the_email_once(
    committed_db: sa.Engine,
    proxy: TcpProxy,
    database_url: str,
    sender_settings: outbox.SenderSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mailbox = Mailbox()
    controller, port = start_smtp(mailbox)
    channel = EmailChannel(EmailSettings(host="127.0.0.1", port=port, mail_from="w@waymark.test"))
    make = sessionmaker(bind=committed_db, expire_on_commit=False)
    now = datetime.now(UTC).replace(microsecond=0)
    with make() as session:
        queue(session, _user(make), push=False, due=now)
    flaky = make_engine(proxy.url(database_url))
    real_mark_sent = outbox.mark_sent

    def outage_then_mark(session: Any, **kw: Any) -> bool:
        proxy.cut()  # PostgreSQL goes away just as the sender records the delivery
        return real_mark_sent(session, **kw)

    monkeypatch.setattr(outbox, "mark_sent", outage_then_mark)
    try:
        with pytest.raises(sa.exc.OperationalError):
            _run(sessionmaker(bind=flaky), channel, sender_settings, now)
        monkeypatch.setattr(outbox, "mark_sent", real_mark_sent)
        proxy.restore()
        flaky.dispose()
        _recover(make, channel, sender_settings, now)
        with make() as session:
            (row,) = session.scalars(sa.select(Delivery).where(Delivery.channel == "email"))
            assert row.status == "sent"
        assert len(mailbox.messages) == 1
    finally:
        channel.close()
        controller.stop()
        flaky.dispose()


def test_a_sender_lost_after_the_end_of_the_message_does_not_send_it_again(
    committed_db: sa.Engine, sender_settings: outbox.SenderSettings
) -> None:
    mailbox = SlowToReply()
    controller, port = start_smtp(mailbox)
    # The reply never reaches the sender (its timeout is shorter than the server's delay), as
    # when it is killed right after writing the end mark.
    channel = EmailChannel(
        EmailSettings(host="127.0.0.1", port=port, mail_from="w@waymark.test", timeout=1)
    )
    make = sessionmaker(bind=committed_db, expire_on_commit=False)
    now = datetime.now(UTC).replace(microsecond=0)
    with make() as session:
        queue(session, _user(make), push=False, due=now)
    try:
        _run(make, channel, sender_settings, now)
        assert len(mailbox.messages) == 1
        _recover(make, channel, sender_settings, now)
        with make() as session:
            (row,) = session.scalars(sa.select(Delivery).where(Delivery.channel == "email"))
            assert row.status == "sent"
        assert len(mailbox.messages) == 1
    finally:
        channel.close()
        controller.stop()
