"""Each push provider against a local server speaking its real protocol (tests/push_servers.py):
FCM v1 behind Google's OAuth JWT grant, Web Push with VAPID and aes128gcm, APNs over HTTP/2."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy.orm import Session

from api.auth.models import User
from api.devices.models import Device
from api.devices.services import register_device
from api.notifications.push import PushMessage, PushRouter, PushTarget
from api.notifications.push.apns import TOKEN_LIFETIME, ApnsProvider
from api.notifications.push.base import retry_after
from api.notifications.push.fcm import FcmProvider
from api.notifications.push.webpush import WebPushProvider
from api.notifications.results import SENT
from api.notifications.texts import DISCREET_TEXT
from tests.notifications.test_sender import HEALTH_WORDS, NOW, deliveries, queue
from tests.push_servers import ApnsLog, FcmLog, Subscriber, WebPushLog, hex_token

TTL = 1800  # PushRouter's default PUSH_TTL


def device(session: Session, user: User, platform: str, token: str) -> Device:
    registered, _ = register_device(
        session, user_id=user.id, body={"platform": platform, "token": token}, now=NOW
    )
    session.commit()
    return registered


def web_device(session: Session, user: User, subscriber: Subscriber) -> Device:
    registered, _ = register_device(
        session,
        user_id=user.id,
        body={"platform": "web", "subscription": subscriber.json()},
        now=NOW,
    )
    session.commit()
    return registered


def message(**overrides: Any) -> PushMessage:
    values: dict[str, Any] = {
        "title": "Time to check in",
        "body": "b",
        "collapse_id": str(uuid.uuid4()),
        "expires_at": NOW + timedelta(seconds=TTL),
        "ttl": TTL,
    }
    return PushMessage(**{**values, **overrides})


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# ----------------------------------------------------------------------------------------- FCM


def test_fcm_message_carries_android_and_apns_options_and_no_health_data(
    session: Session,
    make_patient: Callable[..., User],
    send: Callable[..., Any],
    push_log: FcmLog,
) -> None:
    user = make_patient()
    device(session, user, "android", "ok-android-1")
    device(session, user, "ios", "ok-ios-1")
    notification = queue(session, user, kind="medication", email=False)
    sent_before = metric("waymark_push_sent_total", provider="fcm")

    send(session, NOW + timedelta(minutes=10))

    assert push_log.shape_errors == [[], []]  # FCM v1 would take both as they are
    for request in push_log.requests:
        msg = request["message"]
        assert msg["data"] == {"notification_id": str(notification.id)}
        android, apns = msg["android"], msg["apns"]["headers"]
        assert android["collapse_key"] == str(notification.id)
        assert android["priority"] == "HIGH"
        # stale PUSH_TTL after the due time: 20 of the 30 minutes are left
        assert android["ttl"] == f"{TTL - 600}s"
        assert apns["apns-expiration"] == str(int((NOW + timedelta(seconds=TTL)).timestamp()))
        assert apns["apns-collapse-id"] == str(notification.id)
        assert apns["apns-push-type"] == "alert" and apns["apns-priority"] == "10"
        assert msg["notification"]["title"] == "Medication reminder"
        assert not HEALTH_WORDS.search(json.dumps(msg["data"]))
    assert metric("waymark_push_sent_total", provider="fcm") == sent_before + 2


def test_one_access_token_serves_every_delivery_until_it_nears_expiry(
    push_log: FcmLog, fcm_provider: FcmProvider
) -> None:
    moved = {"by": timedelta(0)}
    fcm_provider.clock = lambda: datetime.now(UTC) + moved["by"]
    for _ in range(3):
        assert fcm_provider.send(PushTarget("android", "ok-1"), message(), None).outcome == "sent"
    assert len(push_log.grants) == 1  # minted once, by a grant the server verified
    (grant,) = push_log.grants
    assert grant["iss"] == push_log.account.info["client_email"]  # type: ignore[union-attr]

    moved["by"] = timedelta(minutes=50)  # 10 minutes left: still used
    assert fcm_provider.send(PushTarget("android", "ok-2"), message(), None).outcome == "sent"
    assert len(push_log.grants) == 1
    moved["by"] = timedelta(minutes=56)  # 4 minutes left: refreshed before it runs out
    assert fcm_provider.send(PushTarget("android", "ok-3"), message(), None).outcome == "sent"
    assert len(push_log.grants) == 2
    tokens = [h["authorization"] for h in push_log.headers]
    assert len(set(tokens[:4])) == 1 and tokens[4] != tokens[0]


def test_a_refused_access_token_is_refreshed_once(
    push_log: FcmLog, fcm_provider: FcmProvider
) -> None:
    assert fcm_provider.send(PushTarget("android", "ok-1"), message(), None).outcome == "sent"
    push_log.revoke_all()  # e.g. the key was rotated: FCM answers 401
    commits: list[int] = []

    def commit() -> bool:
        commits.append(1)
        return True

    result = fcm_provider.send(PushTarget("android", "ok-2"), message(), commit)
    assert result.outcome == "sent"
    assert push_log.refused == 1 and len(push_log.grants) == 2
    assert commits == [1]  # one delivery, marked sent once however many requests it took

    # tokens that are refused again and again: a retry, once refreshed, the device untouched
    push_log.expires_in = 0
    push_log.revoke_all()
    result = fcm_provider.send(PushTarget("android", "ok-3"), message(), None)
    assert (result.outcome, result.error) == ("retry", "fcm_http_401")
    assert push_log.refused == 3 and len(push_log.grants) == 3  # one refresh, not a loop


def test_a_token_endpoint_that_fails_is_a_retry_not_a_dead_device(
    session: Session,
    make_patient: Callable[..., User],
    send: Callable[..., Any],
    push_log: FcmLog,
) -> None:
    push_log.token_endpoint_fails = True
    user = make_patient()
    phone = device(session, user, "android", "ok-1")
    notification = queue(session, user, email=False)
    send(session, NOW)
    row = deliveries(session, notification)[f"push:{phone.id}"]
    assert (row.status, row.last_error) == ("queued", "fcm_auth_failed")
    assert push_log.requests == []
    session.refresh(phone)
    assert phone.enabled


@pytest.mark.parametrize(
    ("prefix", "error"),
    [("dead-", "fcm_unregistered"), ("badtoken-", "fcm_invalid_token")],
)
def test_fcm_unregistered_or_invalid_token_disables_the_device(
    session: Session,
    make_patient: Callable[..., User],
    send: Callable[..., Any],
    push_log: FcmLog,
    prefix: str,
    error: str,
) -> None:
    disabled_before = metric("waymark_push_disabled_tokens_total", provider="fcm")
    user = make_patient()
    phone = device(session, user, "android", f"{prefix}{uuid.uuid4().hex}")
    notification = queue(session, user, email=False)
    send(session, NOW)
    row = deliveries(session, notification)[f"push:{phone.id}"]
    assert (row.status, row.last_error) == ("failed", error)
    session.refresh(phone)
    assert phone.disabled_reason == "invalid_token"
    assert metric("waymark_push_disabled_tokens_total", provider="fcm") == disabled_before + 1


@pytest.mark.parametrize(
    ("prefix", "error", "wait"),
    [("quota-", "fcm_quota_exceeded", 90), ("down-", "fcm_http_500", 120)],
)
def test_quota_and_5xx_wait_for_retry_after_and_pause_only_fcm(
    session: Session,
    make_patient: Callable[..., User],
    send: Callable[..., Any],
    push_log: FcmLog,
    webpush_log: WebPushLog,
    push_channel: PushRouter,
    prefix: str,
    error: str,
    wait: int,
) -> None:
    user = make_patient()
    limited = device(session, user, "android", f"{prefix}{uuid.uuid4().hex}")
    browser = web_device(session, user, webpush_log.subscribe("ok"))
    notification = queue(session, user, email=False)
    send(session, NOW)
    rows = deliveries(session, notification)
    row = rows[f"push:{limited.id}"]
    # the provider's Retry-After, longer than our own backoff (30 s), is what the row waits
    assert (row.status, row.last_error, row.attempts) == ("queued", error, 1)
    assert row.next_attempt_at == NOW + timedelta(seconds=wait)
    assert rows[f"push:{browser.id}"].status == "sent"  # Web Push was not held up

    # FCM itself is paused: another FCM row is put back untried, its attempt not spent
    assert push_channel.fcm is not None and push_channel.fcm.paused_for() > wait - 5
    calls = len(push_log.requests)
    other = device(session, user, "ios", f"ok-{uuid.uuid4().hex}")
    second = queue(session, user, email=False, due=NOW + timedelta(minutes=1))
    send(session, NOW + timedelta(minutes=1))
    deferred = deliveries(session, second)[f"push:{other.id}"]
    assert (deferred.status, deferred.attempts, deferred.last_error) == (
        "queued",
        0,
        "fcm_paused",
    )
    assert deferred.next_attempt_at >= NOW + timedelta(minutes=1, seconds=wait - 5)
    assert len(push_log.requests) == calls
    assert deliveries(session, second)[f"push:{browser.id}"].status == "sent"


def test_retry_after_accepts_seconds_and_http_dates_and_is_bounded() -> None:
    assert retry_after("120") == 120
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 - 30) == 30
    assert retry_after("99999999") == 3600
    assert retry_after("soon") is None and retry_after(None) is None


# ------------------------------------------------------------------------------------ Web Push


def test_web_push_is_encrypted_to_the_subscription_and_signed_with_vapid(
    session: Session,
    make_patient: Callable[..., User],
    send: Callable[..., Any],
    webpush_log: WebPushLog,
) -> None:
    user = make_patient()
    user.discreet_notifications = True
    session.commit()
    subscriber = webpush_log.subscribe("ok")
    web_device(session, user, subscriber)
    notification = queue(session, user, kind="medication", email=False)

    send(session, NOW + timedelta(minutes=5))

    assert webpush_log.refused == []  # VAPID checked, payload decrypted with the browser's keys
    (shown,) = webpush_log.messages
    assert shown["title"] == DISCREET_TEXT and not HEALTH_WORDS.search(json.dumps(shown))
    assert shown["notification_id"] == str(notification.id)
    (headers,) = webpush_log.headers
    assert headers["ttl"] == str(TTL - 300) and headers["urgency"] == "high"
    assert headers["topic"] == str(notification.id).replace("-", "")
    assert headers["content-encoding"] == "aes128gcm"


@pytest.mark.parametrize("name", ["gone", "missing"])
def test_a_gone_subscription_is_disabled(
    session: Session,
    make_patient: Callable[..., User],
    send: Callable[..., Any],
    webpush_log: WebPushLog,
    name: str,
) -> None:
    user = make_patient()
    browser = web_device(session, user, webpush_log.subscribe(name))
    notification = queue(session, user, email=False)
    send(session, NOW)
    row = deliveries(session, notification)[f"push:{browser.id}"]
    status = 410 if name == "gone" else 404
    assert (row.status, row.last_error) == ("failed", f"webpush_http_{status}")
    session.refresh(browser)
    assert browser.disabled_reason == "invalid_token"


def test_web_push_5xx_backs_off_and_429_waits_for_retry_after(
    session: Session,
    make_patient: Callable[..., User],
    send: Callable[..., Any],
    webpush_log: WebPushLog,
) -> None:
    user = make_patient()
    down = web_device(session, user, webpush_log.subscribe("down"))
    first = queue(session, user, email=False)
    send(session, NOW)
    row = deliveries(session, first)[f"push:{down.id}"]
    assert (row.last_error, row.next_attempt_at) == (
        "webpush_http_503",
        NOW + timedelta(seconds=30),
    )

    other = make_patient()
    busy = web_device(session, other, webpush_log.subscribe("busy"))
    second = queue(session, other, email=False)
    send(session, NOW)
    row = deliveries(session, second)[f"push:{busy.id}"]
    assert (row.last_error, row.next_attempt_at) == (
        "webpush_http_429",
        NOW + timedelta(seconds=60),
    )


def test_an_endpoint_outside_the_allowed_push_services_is_never_called(
    webpush_log: WebPushLog, webpush_provider: WebPushProvider
) -> None:
    subscriber = webpush_log.subscribe("ok")
    keys = subscriber.json()["keys"]
    webpush_provider.origins = ("https://*.push.services.mozilla.com",)
    result = webpush_provider.send(
        PushTarget("web", subscriber.endpoint, keys["p256dh"], keys["auth"]), message(), None
    )
    assert (result.outcome, result.error) == ("invalid_token", "webpush_origin_refused")
    assert webpush_log.messages == [] and webpush_log.refused == []


# ---------------------------------------------------------------------------------------- APNs


def test_apns_over_http2_with_a_provider_token_reused_within_its_lifetime(
    session: Session,
    make_patient: Callable[..., User],
    send: Callable[..., Any],
    apns_log: ApnsLog,
    apns_provider: ApnsProvider,
    push_channel: PushRouter,
) -> None:
    router = PushRouter(fcm=push_channel.fcm, apns=apns_provider, ios="apns")
    # the first token is signed as if 50 minutes ago (APNs takes tokens up to an hour old)
    apns_provider.wall_clock = lambda: time.time() - TOKEN_LIFETIME - 1
    user = make_patient()
    phones = [device(session, user, "ios", hex_token()) for _ in range(2)]
    notification = queue(session, user, email=False)
    send(session, NOW + timedelta(minutes=1), push=router)

    assert apns_log.refused == []
    assert {r["device"] for r in apns_log.requests} == {p.token for p in phones}
    for request in apns_log.requests:
        headers = request["headers"]
        assert headers["apns-push-type"] == "alert"
        assert headers["apns-topic"] == apns_log.topic
        assert headers["apns-collapse-id"] == str(notification.id)
        assert headers["apns-expiration"] == str(int((NOW + timedelta(seconds=TTL)).timestamp()))
        assert request["payload"]["notification_id"] == str(notification.id)
    assert len(set(apns_log.provider_tokens)) == 1  # signed once, reused

    # after its lifetime a new provider token is made
    apns_provider.wall_clock = time.time
    target = PushTarget("ios", hex_token())
    result = apns_provider.send(target, message(), None)
    assert result == SENT, (result, apns_log.refused)
    assert len(set(apns_log.provider_tokens)) == 2


def test_an_expired_provider_token_is_made_again_once(
    apns_log: ApnsLog, apns_provider: ApnsProvider
) -> None:
    apns_provider.wall_clock = lambda: time.time() - 100
    assert apns_provider.send(PushTarget("ios", hex_token()), message(), None).outcome == "sent"
    apns_log.tokens_expired_before = time.time() - 50  # APNs now refuses the cached token
    apns_provider.wall_clock = time.time  # to our cache it is still fresh
    result = apns_provider.send(PushTarget("ios", hex_token()), message(), None)
    assert result.outcome == "sent"
    assert len(apns_log.provider_tokens) == 3 and len(set(apns_log.provider_tokens)) == 2


@pytest.mark.parametrize(
    ("prefix", "outcome", "error", "wait"),
    [
        ("dead", "invalid_token", "apns_Unregistered", None),
        ("bad0", "invalid_token", "apns_BadDeviceToken", None),
        ("1290", "retry", "apns_TooManyRequests", 45.0),
        ("5030", "retry", "apns_ServiceUnavailable", None),
    ],
)
def test_apns_answers(
    apns_log: ApnsLog,
    apns_provider: ApnsProvider,
    prefix: str,
    outcome: str,
    error: str,
    wait: float | None,
) -> None:
    result = apns_provider.send(PushTarget("ios", hex_token(prefix)), message(), None)
    assert (result.outcome, result.error, result.retry_after) == (outcome, error, wait)


def test_apns_never_sends_what_is_not_a_device_token(
    apns_log: ApnsLog, apns_provider: ApnsProvider
) -> None:
    result = apns_provider.send(PushTarget("ios", "../../3/device/x?y"), message(), None)
    assert (result.outcome, result.error) == ("invalid_token", "apns_BadDeviceToken")
    assert apns_log.requests == [] and apns_log.provider_tokens == []


def test_apns_disables_the_device_through_the_sender(
    session: Session,
    make_patient: Callable[..., User],
    send: Callable[..., Any],
    apns_log: ApnsLog,
    apns_provider: ApnsProvider,
) -> None:
    user = make_patient()
    phone = device(session, user, "ios", hex_token("dead"))
    queue(session, user, email=False)
    send(session, NOW, push=PushRouter(apns=apns_provider, ios="apns"))
    session.refresh(phone)
    assert phone.disabled_reason == "invalid_token"


# ---------------------------------------------------------------------------------- isolation


def test_a_slow_provider_holds_up_neither_email_nor_another_provider(
    session: Session,
    make_patient: Callable[..., User],
    send: Callable[..., Any],
    push_log: FcmLog,
    webpush_log: WebPushLog,
    mailbox: Any,
) -> None:
    user = make_patient()
    # three FCM rows that each wait out the 0.5 s timeout, queued before the others
    for n in range(3):
        device(session, user, "android", f"slow-{n}-{uuid.uuid4().hex}")
    web_device(session, user, webpush_log.subscribe("ok"))
    queue(session, user)
    started = time.monotonic()
    arrived: dict[str, float] = {}

    import threading

    def watch() -> None:
        while time.monotonic() - started < 5 and len(arrived) < 2:
            if webpush_log.messages and "web" not in arrived:
                arrived["web"] = time.monotonic() - started
            if mailbox.messages and "email" not in arrived:
                arrived["email"] = time.monotonic() - started
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    outcomes = send(session, NOW)
    elapsed = time.monotonic() - started
    watcher.join()
    assert outcomes["sent"] == 2 and outcomes["queued"] == 3
    assert elapsed >= 1.4  # the FCM lane took its three timeouts...
    assert arrived["web"] < 0.45 and arrived["email"] < 0.45  # ...and nobody waited for it


# ------------------------------------------------------------------------------------ settings


def test_providers_come_from_the_settings(
    tmp_path: Path, push_log: FcmLog, vapid_key: Any, app: Any
) -> None:
    assert push_log.account is not None
    path = tmp_path / "service-account.json"
    path.write_text(json.dumps(push_log.account.info))
    p8 = tmp_path / "AuthKey_ABC123DEFG.p8"
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    p8.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    base = {
        **app.config,
        "FCM_SERVICE_ACCOUNT": str(path),
        "VAPID_PRIVATE_KEY": vapid_key.private_pem().decode(),
        "VAPID_SUBJECT": "mailto:ops@waymark.test",
    }
    router = PushRouter.from_config(base)
    try:
        assert router.fcm is not None and router.fcm.project_id == "waymark-test"
        assert router.lane("android") == router.lane("ios") == "push:fcm"
        assert router.lane("web") == "push:webpush"
    finally:
        router.close()
    # the JSON itself works as well as its path, and APNs takes iOS when its key is given
    router = PushRouter.from_config(
        {
            **base,
            "FCM_SERVICE_ACCOUNT": json.dumps(push_log.account.info),
            "APNS_KEY": str(p8),
            "APNS_KEY_ID": "ABC123DEFG",
            "APNS_TEAM_ID": "TEAM123456",
            "APNS_TOPIC": "org.waymark.app",
        }
    )
    try:
        assert router.lane("ios") == "push:apns" and router.lane("android") == "push:fcm"
    finally:
        router.close()
    secret = push_log.account.info["private_key"]
    for broken, named in [
        ({"FCM_SERVICE_ACCOUNT": '{"project_id": "p"}'}, "client_email"),
        ({"FCM_SERVICE_ACCOUNT": str(tmp_path / "missing.json")}, "FCM_SERVICE_ACCOUNT"),
        ({"VAPID_SUBJECT": None}, "VAPID_SUBJECT"),
        ({"VAPID_PRIVATE_KEY": "not-a-key"}, "VAPID_PRIVATE_KEY"),
        ({"APNS_KEY": str(p8)}, "APNS_KEY_ID"),
        ({"APNS_KEY": secret, "APNS_KEY_ID": "k", "APNS_TEAM_ID": "t", "APNS_TOPIC": "x"}, "P-256"),
        ({"PUSH_IOS_PROVIDER": "apns"}, "APNS_KEY"),
    ]:
        with pytest.raises(ValueError, match=named) as caught:
            PushRouter.from_config({**base, **broken})
        assert "PRIVATE KEY" not in str(caught.value)
    # nothing configured: no provider, and push rows fail as not configured
    empty = PushRouter.from_config(app.config)
    assert empty.send(target=PushTarget("android", "t"), message=message(), commit=None).error == (
        "push_not_configured"
    )


def test_no_token_endpoint_or_key_reaches_the_logs(
    session: Session,
    make_patient: Callable[..., User],
    send: Callable[..., Any],
    push_log: FcmLog,
    webpush_log: WebPushLog,
    capsys: pytest.CaptureFixture[str],
) -> None:
    user = make_patient()
    tokens = [f"ok-secret-{uuid.uuid4().hex}", f"dead-secret-{uuid.uuid4().hex}"]
    for token in tokens:
        device(session, user, "android", token)
    subscriber = webpush_log.subscribe("gone")
    web_device(session, user, subscriber)
    queue(session, user, email=False)
    send(session, NOW)
    out = capsys.readouterr()
    logged = out.out + out.err
    assert "device.disabled" in logged  # the logs were captured
    secrets = [*tokens, subscriber.endpoint, subscriber.p256dh, *push_log.issued]
    for secret in secrets:
        assert secret not in logged


def test_an_apns_push_whose_claim_was_lost_never_ends_its_stream(
    apns_log: ApnsLog, apns_provider: ApnsProvider
) -> None:
    # HTTP/2: the body goes, then the commit point, then the end of the stream; a lost claim
    # leaves a stream APNs never acts on, and the next push goes on a fresh connection.
    lost = apns_provider.send(PushTarget("ios", hex_token()), message(), lambda: False)
    assert lost.outcome == "lost"
    time.sleep(0.2)
    assert apns_log.requests == []
    assert apns_provider.send(PushTarget("ios", hex_token()), message(), lambda: True) == SENT
    assert len(apns_log.requests) == 1


def test_a_provider_failing_again_and_again_is_paused_without_spending_attempts(
    push_log: FcmLog, fcm_provider: FcmProvider
) -> None:
    for n in range(3):  # 503 without Retry-After: retried by the outbox backoff...
        result = fcm_provider.send(PushTarget("android", f"busy-{n}"), message(), None)
        assert (result.outcome, result.error) == ("retry", "fcm_http_503")
    # ...and after the third in a row FCM is left alone for a moment
    paused = fcm_provider.send(PushTarget("android", "ok-1"), message(), None)
    assert (paused.outcome, paused.error) == ("deferred", "fcm_paused")
    assert 0 < (paused.retry_after or 0) <= 1.0
    assert len(push_log.requests) == 3
    time.sleep(paused.retry_after or 0)
    assert fcm_provider.send(PushTarget("android", "ok-2"), message(), None) == SENT


def test_a_delivery_whose_adapter_raises_is_counted_and_retried_and_the_rest_go_out(
    session: Session,
    make_patient: Callable[..., User],
    send: Callable[..., Any],
    push_log: FcmLog,
    mailbox: Any,
    fcm_provider: FcmProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user = make_patient()
    broken = device(session, user, "android", "ok-broken-1")
    fine = device(session, user, "ios", "ok-fine-1")
    notification = queue(session, user)
    real = fcm_provider.deliver

    def deliver(target: PushTarget, msg: PushMessage, commit: Any) -> Any:
        if target.token == "ok-broken-1":
            raise RuntimeError("a bug, not a provider answer")
        return real(target, msg, commit)

    monkeypatch.setattr(fcm_provider, "deliver", deliver)
    failures = metric("waymark_job_item_failures_total", job="reminder_send")
    send(session, NOW)
    rows = deliveries(session, notification)
    assert (rows[f"push:{broken.id}"].status, rows[f"push:{broken.id}"].last_error) == (
        "queued",
        "internal_error",
    )
    assert rows[f"push:{fine.id}"].status == "sent" and rows["email"].status == "sent"
    assert metric("waymark_job_item_failures_total", job="reminder_send") == failures + 1
