"""APNs direct (for apps that do not use FCM on iOS): token-based auth over HTTP/2.

The provider token is an ES256 JWT ({"alg": "ES256", "kid": key id} / {"iss": team id, "iat"})
signed with the .p8 key from Apple. Apple refuses tokens older than an hour and throttles ones
made more often than every 20 minutes, so one token is reused for TOKEN_LIFETIME and made again
after that, or once when APNs answers ExpiredProviderToken.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from api.notifications.push.base import Answer, HttpProvider, PushMessage, PushTarget, retry_after
from api.notifications.results import SENT, Commit, Result

PRODUCTION = "https://api.push.apple.com"
SANDBOX = "https://api.sandbox.push.apple.com"
TOKEN_LIFETIME = 50 * 60  # seconds: inside Apple's 20-60 minute window
_DEVICE_TOKEN = re.compile(r"^[0-9a-fA-F]{32,200}$")
# Reasons that mean this device token will never work again for this app.
DEAD_TOKEN = frozenset({"BadDeviceToken", "Unregistered", "DeviceTokenNotForTopic"})


def load_key(value: str) -> ec.EllipticCurvePrivateKey:
    """The .p8 key from a setting: its PEM text, or the path of the file. Raises ValueError."""
    try:
        pem = value if "BEGIN" in value else Path(value).read_text()
        key = load_pem_private_key(pem.encode(), password=None)
    except (OSError, ValueError, TypeError):
        raise ValueError("APNS_KEY is neither a readable .p8 file nor its PEM text") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("APNS_KEY is not a P-256 (ES256) key")
    return key


class ApnsProvider(HttpProvider):
    name = "apns"

    def __init__(
        self,
        *,
        key: ec.EllipticCurvePrivateKey,
        key_id: str,
        team_id: str,
        topic: str,
        base_url: str = PRODUCTION,
        timeout: float = 5.0,
        verify: Any = True,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(timeout=timeout, http2=True, verify=verify)
        self.key, self.key_id, self.team_id, self.topic = key, key_id, team_id, topic
        self.base_url = base_url.rstrip("/")
        self.wall_clock = wall_clock  # the provider token's iat is real time, not the jobs' clock
        self._token: tuple[float, str] | None = None
        self._token_lock = threading.Lock()

    def provider_token(self, *, force: bool = False) -> str:
        with self._token_lock:
            now = self.wall_clock()
            if force or self._token is None or now - self._token[0] >= TOKEN_LIFETIME:
                token = jwt.encode(
                    {"iss": self.team_id, "iat": int(now)},
                    self.key,
                    algorithm="ES256",
                    headers={"kid": self.key_id},
                )
                self._token = (now, token)
            return self._token[1]

    def payload(self, message: PushMessage) -> bytes:
        return json.dumps(
            {
                "aps": {
                    "alert": {"title": message.title, "body": message.body},
                    "sound": "default",
                },
                "notification_id": message.collapse_id,
            }
        ).encode()

    def deliver(self, target: PushTarget, message: PushMessage, commit: Commit) -> Result:
        if not _DEVICE_TOKEN.match(target.token):
            # Not a device token (and it goes into the path): never sent, never valid.
            return Result("invalid_token", "apns_BadDeviceToken")
        data = self.payload(message)
        for attempt in (1, 2):
            answer = self.post(
                f"{self.base_url}/3/device/{target.token.lower()}",
                headers={
                    "authorization": f"bearer {self.provider_token(force=attempt == 2)}",
                    "apns-push-type": "alert",
                    "apns-expiration": str(int(message.expires_at.timestamp())),
                    "apns-collapse-id": message.collapse_id,
                    "apns-topic": self.topic,
                    "apns-priority": "10",
                    "content-type": "application/json",
                },
                data=data,
                commit=commit,
            )
            if isinstance(answer, Result):
                return answer
            if answer.status == 403 and attempt == 1 and _reason(answer) == "ExpiredProviderToken":
                continue  # make a new provider token, once
            return classify(answer)
        return Result("retry", "apns_auth")  # pragma: no cover - the loop returns


def _reason(answer: Answer) -> str:
    try:
        parsed = json.loads(answer.body) if answer.body else None
    except (ValueError, UnicodeDecodeError):
        return ""
    reason = parsed.get("reason") if isinstance(parsed, dict) else None
    # Apple's reasons are short CamelCase words; anything else is not echoed into last_error.
    return reason if isinstance(reason, str) and re.fullmatch(r"[A-Za-z]{1,34}", reason) else ""


def classify(answer: Answer) -> Result:
    """APNs' answer (developer.apple.com: Handling notification responses from APNs)."""
    status, reason = answer.status, _reason(answer)
    if status == 200:
        return SENT
    if status == 410 or reason in DEAD_TOKEN:
        return Result("invalid_token", f"apns_{reason or 'Unregistered'}")
    if status == 429 or status >= 500:
        wait = retry_after(answer.headers.get("retry-after"))
        return Result("retry", f"apns_{reason or status}", retry_after=wait)
    if status == 403:
        return Result("retry", f"apns_{reason or status}")  # our key or team: not the device
    return Result("failed", f"apns_{reason or status}")
