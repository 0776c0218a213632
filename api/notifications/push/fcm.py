"""FCM HTTP v1 (Android, and iOS through Firebase): POST /v1/projects/{project}/messages:send.

Authorised by a short-lived OAuth 2.0 access token that google-auth mints from the service
account (a JWT grant to the account's `token_uri`, signed with its private key). The token is
cached by the provider, shared by every delivery of the process, and refreshed REFRESH_MARGIN
before it expires; a 401 refreshes it once and tries again.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from google.auth import exceptions as google_exceptions
from google.auth import transport as google_transport
from google.oauth2 import service_account

from api.notifications.push.base import (
    Answer,
    HttpProvider,
    PushMessage,
    PushTarget,
    retry_after,
)
from api.notifications.results import SENT, Commit, Result

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
# Refresh this long before the access token's expiry (Google's tokens live an hour), so a token
# never runs out between minting and FCM reading it.
REFRESH_MARGIN = timedelta(minutes=5)


def load_service_account(value: str) -> dict[str, Any]:
    """The service-account JSON from a setting: the JSON itself, or the path of a file holding
    it. Raises ValueError naming what is missing (never quoting the key)."""
    try:
        text = value if value.lstrip().startswith("{") else Path(value).read_text()
    except OSError:
        raise ValueError("FCM_SERVICE_ACCOUNT names a file that cannot be read") from None
    try:
        info = json.loads(text)
    except ValueError:
        raise ValueError("FCM_SERVICE_ACCOUNT is not valid JSON") from None
    if not isinstance(info, dict):
        raise ValueError("FCM_SERVICE_ACCOUNT is not a JSON object")
    missing = [
        k for k in ("project_id", "client_email", "private_key", "token_uri") if not info.get(k)
    ]
    if missing:
        raise ValueError(f"FCM_SERVICE_ACCOUNT lacks {', '.join(missing)}")
    return info


class _Response(google_transport.Response):
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> Any:
        return self._response.headers

    @property
    def data(self) -> bytes:
        return self._response.content


class HttpxRequest(google_transport.Request):
    """google-auth's transport interface over the provider's own httpx client (its timeout)."""

    def __init__(self, client: Callable[[], httpx.Client]) -> None:
        self._client = client

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Any = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> _Response:
        try:
            response = self._client().request(method, url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise google_exceptions.TransportError(type(exc).__name__) from None
        return _Response(response)


class FcmProvider(HttpProvider):
    name = "fcm"

    def __init__(
        self,
        *,
        service_account_info: dict[str, Any],
        base_url: str = "https://fcm.googleapis.com",
        timeout: float = 5.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(timeout=timeout)
        # Real time: the access token's expiry is Google's, whatever clock the jobs run on.
        self.clock = clock or (lambda: datetime.now(UTC))
        self.project_id = service_account_info["project_id"]
        self.url = f"{base_url.rstrip('/')}/v1/projects/{self.project_id}/messages:send"
        self.credentials = service_account.Credentials.from_service_account_info(
            service_account_info, scopes=[SCOPE]
        )
        self._token_lock = threading.Lock()
        self._auth = HttpxRequest(lambda: self.client)

    def access_token(self, *, force: bool = False) -> str:
        """The cached access token, minted again when it is within REFRESH_MARGIN of expiry (or
        `force`). Raises google.auth.exceptions.GoogleAuthError when minting fails."""
        with self._token_lock:
            credentials = self.credentials
            expiry = credentials.expiry
            if expiry is not None and expiry.tzinfo is None:
                expiry = expiry.replace(tzinfo=UTC)  # google-auth keeps naive UTC
            stale = expiry is None or expiry - REFRESH_MARGIN <= self.clock()
            if force or not credentials.token or stale:
                credentials.refresh(self._auth)
            return str(credentials.token)

    def payload(self, target: PushTarget, message: PushMessage) -> dict[str, Any]:
        ttl = max(message.ttl, 1)
        cid = message.collapse_id
        return {
            "message": {
                "token": target.token,
                "notification": {"title": message.title, "body": message.body},
                # The id only: the app fetches the notification itself; nothing about health.
                "data": {"notification_id": cid},
                "android": {
                    # A resend after a failure replaces the first one on the device.
                    "collapse_key": cid,
                    "priority": "HIGH",  # a reminder is due now
                    "ttl": f"{ttl}s",  # after this FCM drops it: no stale reminder
                    "notification": {"tag": cid},
                },
                "apns": {
                    "headers": {
                        "apns-collapse-id": cid,
                        "apns-priority": "10",
                        "apns-push-type": "alert",
                        "apns-expiration": str(int(message.expires_at.timestamp())),
                    },
                    "payload": {"aps": {"sound": "default"}},
                },
            }
        }

    def deliver(self, target: PushTarget, message: PushMessage, commit: Commit) -> Result:
        data = json.dumps(self.payload(target, message)).encode()
        for attempt in (1, 2):
            try:
                token = self.access_token(force=attempt == 2)
            except google_exceptions.GoogleAuthError:
                # The service account or its token endpoint: an operator's problem, not the
                # device's. Retried with backoff.
                return Result("retry", "fcm_auth_failed")
            answer = self.post(
                self.url,
                headers={
                    "authorization": f"Bearer {token}",
                    "content-type": "application/json; charset=utf-8",
                },
                data=data,
                commit=commit,
            )
            if isinstance(answer, Result):
                return answer
            if (
                answer.status == 401
                and attempt == 1
                and "THIRD_PARTY_AUTH_ERROR" not in (_error_codes(answer))
            ):
                continue  # the access token was refused: mint a new one, once
            return classify(answer)
        return Result("retry", "fcm_unauthenticated")  # pragma: no cover - the loop returns


def _error_codes(answer: Answer) -> set[str]:
    """{"error": {"status": "...", "details": [{"errorCode": "..."}, {"fieldViolations": ...}]}}"""
    codes: set[str] = set()
    try:
        parsed = json.loads(answer.body) if answer.body else None
    except (ValueError, UnicodeDecodeError):
        return codes
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if not isinstance(error, dict):
        return codes
    if isinstance(error.get("status"), str):
        codes.add(error["status"])
    for detail in error.get("details") or []:
        if not isinstance(detail, dict):
            continue
        if isinstance(detail.get("errorCode"), str):
            codes.add(detail["errorCode"])
        for violation in detail.get("fieldViolations") or []:
            if isinstance(violation, dict) and violation.get("field") == "message.token":
                codes.add("TOKEN_FIELD")
    return codes


def classify(answer: Answer) -> Result:  # noqa: PLR0911 - one line per documented answer
    """FCM's answer as a delivery outcome (FCM v1 reference: ErrorCode)."""
    status = answer.status
    codes = _error_codes(answer)
    wait = retry_after(answer.headers.get("retry-after"))
    if status == 200:
        try:
            parsed = json.loads(answer.body)
        except (ValueError, UnicodeDecodeError):
            parsed = None
        # Success names the message ("projects/.../messages/..."); anything else is garbage.
        if isinstance(parsed, dict) and isinstance(parsed.get("name"), str):
            return SENT
        return Result("retry", "fcm_bad_answer")
    if "UNREGISTERED" in codes or status in (404, 410):
        return Result("invalid_token", "fcm_unregistered")
    if "SENDER_ID_MISMATCH" in codes:
        return Result("invalid_token", "fcm_sender_id_mismatch")
    if status == 400 and "TOKEN_FIELD" in codes:
        return Result("invalid_token", "fcm_invalid_token")
    if status == 429 or "QUOTA_EXCEEDED" in codes:
        return Result("retry", "fcm_quota_exceeded", retry_after=wait)
    if status >= 500:
        return Result("retry", f"fcm_http_{status}", retry_after=wait)
    if status in (401, 403):
        # Our credentials (or, THIRD_PARTY_AUTH_ERROR, the APNs key in the Firebase console):
        # nothing wrong with the device, and maybe fixed by the next attempt.
        return Result("retry", f"fcm_http_{status}")
    return Result("failed", f"fcm_http_{status}")
