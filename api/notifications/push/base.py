"""What every push provider shares: the message, the target, one HTTP client per provider with
its own timeout, the commit point inside the request body, Retry-After, the provider's pause and
its metrics.

The commit point (see api/notifications/channels.py): the body is streamed as everything but its
last byte, then `commit()` records the delivery as sent, then the last byte (HTTP/1.1) or the
end of the stream (HTTP/2) goes. A provider acts on a request only once it has all of it, so a
crash before the commit leaves a request it discards, and a lost claim sends nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

import httpx
import structlog

from api.notifications.push import metrics
from api.notifications.results import LOST, Commit, Result

log = structlog.get_logger("waymark.push")
# httpx logs every request's URL at INFO: a Web Push endpoint or an APNs device token is in it.
logging.getLogger("httpx").setLevel(logging.WARNING)

_MAX_ANSWER = 64 * 1024
# The longest pause a provider's Retry-After can impose: an answer is bounded like any input.
MAX_RETRY_AFTER = 3600.0
# Consecutive transient failures (timeouts, 5xx) before the provider itself pauses, so a provider
# that is down is not asked again for every queued row; the pause doubles up to the cap.
PAUSE_AFTER_FAILURES = 3
PAUSE_CAP = 60.0


@dataclass(frozen=True)
class PushMessage:
    """What a push shows: a title and a body from api.notifications.texts (never a health value),
    the notification id (collapse key: a resend replaces, not adds) and when it goes stale."""

    title: str
    body: str
    collapse_id: str
    expires_at: datetime  # after this the provider drops it rather than show a stale reminder
    ttl: int  # whole seconds from the send until expires_at (what TTL headers carry)


@dataclass(frozen=True)
class PushTarget:
    """A device as its provider knows it. `token` is an FCM registration token, an APNs device
    token or a Web Push endpoint (then with the subscription's p256dh and auth keys)."""

    platform: str
    token: str
    p256dh: str | None = None
    auth: str | None = None

    def __repr__(self) -> str:  # a token is a credential: never in a log line
        return f"<PushTarget {self.platform}>"


@dataclass(frozen=True)
class Answer:
    status: int
    headers: httpx.Headers
    body: bytes


class CommitLost(Exception):
    """The claim was taken over at the commit point: the request must not be completed."""


def commit_once(commit: Commit | None) -> Commit:
    """The commit point runs once per delivery, however many requests (a retry after a refreshed
    access token) the delivery takes: the row is marked sent once."""
    state: list[bool] = []

    def once() -> bool:
        if not state:
            state.append(commit() if commit is not None else True)
        return state[0]

    return once


def _with_commit_point(data: bytes, commit: Commit) -> Iterator[bytes]:
    yield data[:-1]
    if not commit():
        raise CommitLost
    yield data[-1:]


def retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP-date), bounded."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    wait = when.timestamp() - (time.time() if now is None else now)
    return min(max(wait, 0.0), MAX_RETRY_AFTER)


class HttpProvider:
    """One provider: its own httpx client (its own timeout and connections), its own pause."""

    name: ClassVar[str]

    def __init__(
        self,
        *,
        timeout: float,
        http2: bool = False,
        verify: Any = True,
    ) -> None:
        self._client_options: dict[str, Any] = {
            "timeout": httpx.Timeout(timeout),
            "http2": http2,
            "verify": verify,
            "follow_redirects": False,
        }
        self.client = httpx.Client(**self._client_options)
        self._state = threading.Lock()
        self._paused_until = 0.0
        self._failures = 0

    # -- what a provider implements

    def deliver(self, target: PushTarget, message: PushMessage, commit: Commit) -> Result:
        raise NotImplementedError

    # -- shared

    def send(self, target: PushTarget, message: PushMessage, commit: Commit | None) -> Result:
        """Deliver one push; never raises for a delivery problem and never logs the token."""
        wait = self.paused_for()
        if wait > 0:
            metrics.record(self.name, "deferred", None)
            return Result("deferred", f"{self.name}_paused", retry_after=wait)
        if message.ttl <= 0:
            return Result("failed", "push_stale")
        started = time.perf_counter()
        try:
            result = self.deliver(target, message, commit_once(commit))
        except CommitLost:
            # The request was left unfinished; this connection cannot carry another one.
            self._reset_client()
            result = LOST
        elapsed = time.perf_counter() - started
        metrics.record(self.name, result.outcome, elapsed)
        self._learn(result)
        return result

    def post(self, url: str, *, headers: dict[str, str], data: bytes, commit: Commit) -> Any:
        """POST with the commit point inside the body; an Answer, or a retry Result for a
        timeout or an unreachable provider. CommitLost propagates (see send)."""
        request = self.client.build_request(
            "POST",
            url,
            headers={**headers, "content-length": str(len(data))},
            content=_with_commit_point(data, commit),
        )
        try:
            response = self.client.send(request, stream=True)
            try:
                raw = b""
                for chunk in response.iter_bytes():
                    raw += chunk
                    if len(raw) >= _MAX_ANSWER:
                        break
            finally:
                response.close()
        except httpx.TimeoutException:
            return Result("retry", f"{self.name}_timeout")
        except (httpx.HTTPError, OSError, ValueError):
            return Result("retry", f"{self.name}_unreachable")
        return Answer(response.status_code, response.headers, raw[:_MAX_ANSWER])

    def paused_for(self) -> float:
        with self._state:
            return max(self._paused_until - time.monotonic(), 0.0)

    def _learn(self, result: Result) -> None:
        with self._state:
            if result.outcome == "retry":
                self._failures += 1
                pause = result.retry_after or 0.0
                if self._failures >= PAUSE_AFTER_FAILURES:
                    pause = max(
                        pause, min(2.0 ** (self._failures - PAUSE_AFTER_FAILURES), PAUSE_CAP)
                    )
                if pause:
                    self._paused_until = max(self._paused_until, time.monotonic() + pause)
                    log.warning("push.provider_paused", provider=self.name, seconds=round(pause, 1))
            elif result.outcome in ("sent", "failed", "invalid_token"):
                self._failures = 0

    def _reset_client(self) -> None:
        self.client.close()
        self.client = httpx.Client(**self._client_options)

    def close(self) -> None:
        self.client.close()
