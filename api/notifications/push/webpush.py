"""Web Push (RFC 8030) for `platform: web`: the payload encrypted to the subscription's keys
(RFC 8291, aes128gcm, by pywebpush/http_ece) and the request signed with VAPID (RFC 8292).

The endpoint is a URL the browser chose: it is POSTed to only when it belongs to a push service
named in WEBPUSH_ENDPOINT_ORIGINS (api/devices/origins.py).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterable
from urllib.parse import urlsplit

from py_vapid import Vapid02
from pywebpush import WebPusher, WebPushException

from api.config import DEFAULT_WEBPUSH_ORIGINS as DEFAULT_ORIGINS
from api.devices.origins import origin_allowed
from api.notifications.push.base import Answer, HttpProvider, PushMessage, PushTarget, retry_after
from api.notifications.results import SENT, Commit, Result

VAPID_LIFETIME = 12 * 3600  # seconds a VAPID JWT claims to be valid (RFC 8292: at most 24 h)


def load_vapid(private_key: str) -> Vapid02:
    """VAPID key from a setting: PEM, or the raw/DER key in base64url. Raises ValueError."""
    try:
        if "BEGIN" in private_key:
            return Vapid02.from_pem(private_key.encode())
        return Vapid02.from_string(private_key.strip())
    except Exception:  # py_vapid raises assorted types; none may quote the key
        raise ValueError(
            "VAPID_PRIVATE_KEY is not a P-256 private key (PEM or base64url)"
        ) from None


def b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


class WebPushProvider(HttpProvider):
    name = "webpush"

    def __init__(
        self,
        *,
        vapid_private_key: str,
        subject: str,
        origins: Iterable[str] = DEFAULT_ORIGINS,
        timeout: float = 5.0,
    ) -> None:
        super().__init__(timeout=timeout)
        self.vapid = load_vapid(vapid_private_key)
        self.subject = subject
        self.origins = tuple(origins)
        self._signed: dict[str, tuple[float, str]] = {}  # audience -> (expires, Authorization)
        self._sign_lock = threading.Lock()

    def authorization(self, endpoint: str) -> str:
        """`vapid t=<JWT>,k=<public key>` for the endpoint's push service, reused until an hour
        before its JWT expires (one signature per push service, not per message)."""
        parts = urlsplit(endpoint)
        audience = f"{parts.scheme}://{parts.netloc}"
        now = time.time()
        with self._sign_lock:
            cached = self._signed.get(audience)
            if cached is None or cached[0] - 3600 <= now:
                expires = int(now) + VAPID_LIFETIME
                claims = {"aud": audience, "exp": expires, "sub": self.subject}
                cached = (expires, self.vapid.sign(claims)["Authorization"])
                self._signed[audience] = cached
            return cached[1]

    def payload(self, message: PushMessage) -> bytes:
        """What the service worker decrypts and shows (no health data: texts.visible_text)."""
        return json.dumps(
            {
                "title": message.title,
                "body": message.body,
                "notification_id": message.collapse_id,
                "tag": message.collapse_id,
            }
        ).encode()

    def deliver(self, target: PushTarget, message: PushMessage, commit: Commit) -> Result:
        if not origin_allowed(target.token, self.origins):
            return Result("invalid_token", "webpush_origin_refused")
        if not target.p256dh or not target.auth:
            return Result("invalid_token", "webpush_no_keys")
        subscription = {
            "endpoint": target.token,
            "keys": {"p256dh": target.p256dh, "auth": target.auth},
        }
        try:
            body = WebPusher(subscription).encode(self.payload(message), "aes128gcm")["body"]
        except (WebPushException, ValueError, TypeError):
            # keys that are not a P-256 point and a 16-byte secret can never be encrypted to
            return Result("invalid_token", "webpush_bad_keys")
        answer = self.post(
            target.token,
            headers={
                "authorization": self.authorization(target.token),
                "ttl": str(max(message.ttl, 1)),
                "content-encoding": "aes128gcm",
                "content-type": "application/octet-stream",
                "urgency": "high",
                # A newer message with the same topic replaces a queued one (RFC 8030 5.4).
                "topic": message.collapse_id.replace("-", "")[:32],
            },
            data=bytes(body),
            commit=commit,
        )
        if isinstance(answer, Result):
            return answer
        return classify(answer)


def classify(answer: Answer) -> Result:
    status = answer.status
    if status in (200, 201, 202):
        return SENT
    if status in (404, 410):
        return Result("invalid_token", f"webpush_http_{status}")
    if status == 429 or status >= 500:
        return Result(
            "retry",
            f"webpush_http_{status}",
            retry_after=retry_after(answer.headers.get("retry-after")),
        )
    if status in (401, 403):
        return Result(
            "retry", f"webpush_http_{status}"
        )  # our VAPID key: not the subscription's fault
    return Result("failed", f"webpush_http_{status}")  # 400, 413: this message, not the device
