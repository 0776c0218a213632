"""Servers and helpers for the outbox tests: a real SMTP server and local push providers that
speak FCM v1 (with Google's OAuth token endpoint), Web Push and APNs (tests/push_servers.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid02
from py_vapid.utils import b64urlencode
from sqlalchemy.orm import Session

from api.notifications import services as outbox
from api.notifications.channels import EmailChannel, EmailSettings, LinkSettings
from api.notifications.push import PushRouter
from api.notifications.push.apns import ApnsProvider, load_key
from api.notifications.push.fcm import FcmProvider
from api.notifications.push.webpush import WebPushProvider
from jobs import reminders as reminder_jobs
from tests.push_servers import (
    ApnsLog,
    ApnsServer,
    FcmLog,
    WebPushLog,
    start_apns,
    start_fcm,
    start_webpush,
)
from tests.servers import Mailbox, start_smtp

GRACE = timedelta(minutes=30)


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    controller, port = start_smtp(mailbox)
    yield mailbox, port
    controller.stop()


@pytest.fixture(scope="session")
def fcm_server() -> Iterator[tuple[FcmLog, int]]:
    log = FcmLog()
    server, port = start_fcm(log)
    yield log, port
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def vapid_key() -> Vapid02:
    key = Vapid02()
    key.generate_keys()
    return key


@pytest.fixture(scope="session")
def webpush_server(vapid_key: Vapid02) -> Iterator[WebPushLog]:
    public = vapid_key.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    log = WebPushLog(vapid_public_key=b64urlencode(public))
    server, _ = start_webpush(log)
    yield log
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def apns_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApnsLog, ApnsServer]]:
    log = ApnsLog()
    server = start_apns(log, Path(tmp_path_factory.mktemp("apns")))
    yield log, server
    server.stop()


@pytest.fixture
def mailbox(smtp_server: tuple[Mailbox, int]) -> Mailbox:
    box = smtp_server[0]
    with box.lock:
        box.messages.clear()
        box.envelopes.clear()
    return box


@pytest.fixture
def push_log(fcm_server: tuple[FcmLog, int]) -> FcmLog:
    """The FCM side (with its OAuth token endpoint), emptied for this test."""
    fcm_server[0].reset()
    return fcm_server[0]


@pytest.fixture
def webpush_log(webpush_server: WebPushLog) -> WebPushLog:
    webpush_server.reset()
    return webpush_server


@pytest.fixture
def apns_log(apns_server: tuple[ApnsLog, ApnsServer]) -> ApnsLog:
    apns_server[0].reset()
    return apns_server[0]


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
def fcm_provider(fcm_server: tuple[FcmLog, int], push_log: FcmLog) -> Iterator[FcmProvider]:
    assert push_log.account is not None
    provider = FcmProvider(
        service_account_info=push_log.account.info,
        base_url=f"http://127.0.0.1:{fcm_server[1]}",
        timeout=0.5,
    )
    yield provider
    provider.close()


@pytest.fixture
def webpush_provider(webpush_log: WebPushLog, vapid_key: Vapid02) -> Iterator[WebPushProvider]:
    pem = vapid_key.private_pem().decode()
    provider = WebPushProvider(
        vapid_private_key=pem,
        subject="mailto:ops@waymark.test",
        origins=["http://127.0.0.1"],
        timeout=0.5,
    )
    yield provider
    provider.close()


@pytest.fixture
def apns_provider(
    apns_server: tuple[ApnsLog, ApnsServer], apns_log: ApnsLog
) -> Iterator[ApnsProvider]:
    server = apns_server[1]
    provider = ApnsProvider(
        key=load_key(server.p8),
        key_id=apns_log.key_id,
        team_id=apns_log.team_id,
        topic=apns_log.topic,
        base_url=f"https://127.0.0.1:{server.port}",
        timeout=2.0,
        verify=server.ca,
    )
    yield provider
    provider.close()


@pytest.fixture
def push_channel(
    fcm_provider: FcmProvider, webpush_provider: WebPushProvider, apns_provider: ApnsProvider
) -> PushRouter:
    """android and ios through FCM, web through Web Push (APNs: see apns_router)."""
    return PushRouter(fcm=fcm_provider, webpush=webpush_provider, apns=apns_provider, ios="fcm")


TOKEN_KEY = b"sender-test-key-" + b"k" * 32
LINKS = LinkSettings(
    base_url="https://app.waymark.test", message_domain="waymark.test", token_key=TOKEN_KEY
)


@pytest.fixture
def send(
    email_channel: EmailChannel, push_channel: PushRouter, sender_settings: Any
) -> Callable[..., Counter[str]]:
    """Run the sender job at a fixed instant."""

    def run(session: Session, now: datetime, **kw: Any) -> Counter[str]:
        return reminder_jobs.send_notifications(
            session,
            clock=lambda: now,
            settings=kw.pop("settings", sender_settings),
            batch_size=kw.pop("batch_size", 20),
            email=email_channel,
            push=kw.pop("push", push_channel),
            links=LINKS,
            **kw,
        )

    return run
