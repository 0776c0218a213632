"""Servers and helpers for the outbox tests: a real SMTP server, a fake push provider."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from api.notifications import services as outbox
from api.notifications.channels import (
    EmailChannel,
    EmailSettings,
    LinkSettings,
    PushChannel,
    PushSettings,
)
from jobs import reminders as reminder_jobs
from tests.servers import Mailbox, PushLog, start_push, start_smtp

GRACE = timedelta(minutes=30)


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    controller, port = start_smtp(mailbox)
    yield mailbox, port
    controller.stop()


@pytest.fixture(scope="session")
def push_server() -> Iterator[tuple[PushLog, int]]:
    log = PushLog()
    server, port = start_push(log)
    yield log, port
    server.shutdown()
    server.server_close()


@pytest.fixture
def mailbox(smtp_server: tuple[Mailbox, int]) -> Mailbox:
    box = smtp_server[0]
    with box.lock:
        box.messages.clear()
        box.envelopes.clear()
    return box


@pytest.fixture
def push_log(push_server: tuple[PushLog, int]) -> PushLog:
    log = push_server[0]
    with log.lock:
        log.requests.clear()
        log.headers.clear()
    return log


@pytest.fixture
def sender_settings() -> outbox.SenderSettings:
    return outbox.SenderSettings(
        grace=GRACE,
        lease=timedelta(minutes=5),
        max_attempts=3,
        backoff_base=timedelta(seconds=30),
        backoff_cap=timedelta(minutes=10),
    )


@pytest.fixture
def email_channel(smtp_server: tuple[Mailbox, int]) -> EmailChannel:
    return EmailChannel(
        EmailSettings(
            host="127.0.0.1", port=smtp_server[1], mail_from="Waymark <no-reply@waymark.test>"
        )
    )


@pytest.fixture
def push_channel(push_server: tuple[PushLog, int]) -> PushChannel:
    url = f"http://127.0.0.1:{push_server[1]}/v1/projects/p/messages:send"
    return PushChannel(PushSettings(endpoint=url, timeout=0.5, auth_token="provider-secret"))


LINKS = LinkSettings(base_url="https://app.waymark.test", message_domain="waymark.test")


@pytest.fixture
def send(
    email_channel: EmailChannel, push_channel: PushChannel, sender_settings: Any
) -> Callable[..., Counter[str]]:
    """Run the sender job at a fixed instant."""

    def run(session: Session, now: datetime, **kw: Any) -> Counter[str]:
        return reminder_jobs.send_notifications(
            session,
            clock=lambda: now,
            settings=kw.pop("settings", sender_settings),
            batch_size=kw.pop("batch_size", 20),
            email=email_channel,
            push=push_channel,
            links=LINKS,
            **kw,
        )

    return run
