"""Channel adapters: email through SMTP, push through a provider's HTTP API (FCM HTTP v1 shape).

Each `send` answers a Result whose outcome is "sent", "retry" (transient: timeout, refused
connection, 5xx, 429, an answer that is not what the provider documents), "failed" (permanent
for this delivery) or "invalid_token" (the provider says the device token is dead: the device is
disabled). An adapter never raises for a delivery problem and never logs a token or an address.
"""

from __future__ import annotations

import http.client
import json
import smtplib
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

_MAX_ANSWER = 64 * 1024


@dataclass(frozen=True)
class Result:
    outcome: str  # sent | retry | failed | invalid_token
    error: str | None = None


SENT = Result("sent")


@dataclass(frozen=True)
class EmailSettings:
    host: str
    port: int
    mail_from: str
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout: float = 10.0


class EmailChannel:
    """One SMTP connection, opened on first use and reused for a batch; reopened after errors."""

    def __init__(self, settings: EmailSettings) -> None:
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is None:
            s = self.settings
            smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            try:
                if s.starttls:
                    smtp.starttls()
                if s.username and s.password:
                    smtp.login(s.username, s.password)
            except BaseException:
                smtp.close()
                raise
            self._smtp = smtp
        return self._smtp

    def send(self, *, to: str, subject: str, body: str, message_id: str) -> Result:
        message = EmailMessage()
        message["From"] = self.settings.mail_from
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = formatdate(usegmt=True)
        # Stable per delivery: a resend after a crash carries the same id, so mail systems and
        # clients that deduplicate by Message-ID show it once.
        message["Message-ID"] = message_id
        message.set_content(body)
        try:
            self._connection().send_message(message)
        except smtplib.SMTPRecipientsRefused:
            return Result("failed", "recipient_refused")
        except smtplib.SMTPResponseException as exc:
            self.close()
            return Result("failed" if 500 <= exc.smtp_code < 600 else "retry", "smtp_rejected")
        except (smtplib.SMTPException, OSError):
            self.close()
            return Result("retry", "smtp_unavailable")
        return SENT

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                self._smtp.close()
            self._smtp = None


@dataclass(frozen=True)
class PushSettings:
    endpoint: str | None
    timeout: float = 5.0
    auth_token: str | None = None  # sent as a Bearer token (FCM: an OAuth2 access token)


class PushChannel:
    """FCM HTTP v1-style: POST {"message": {"token", "notification", "data", ...}} as JSON."""

    def __init__(self, settings: PushSettings) -> None:
        self.settings = settings
        # No proxies from the environment: the provider is reached directly.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def payload(
        self, *, token: str, platform: str, title: str, body: str, collapse_id: str
    ) -> dict[str, Any]:
        return {
            "message": {
                "token": token,
                "notification": {"title": title, "body": body},
                "data": {"notification_id": collapse_id, "platform": platform},
                # A resend after a crash replaces the first one on the device instead of adding.
                "android": {"collapse_key": collapse_id},
                "apns": {"headers": {"apns-collapse-id": collapse_id}},
                "webpush": {"headers": {"Topic": collapse_id.replace("-", "")[:32]}},
            }
        }

    def send(self, *, token: str, platform: str, title: str, body: str, collapse_id: str) -> Result:
        if not self.settings.endpoint:
            return Result("failed", "push_not_configured")
        data = json.dumps(
            self.payload(
                token=token, platform=platform, title=title, body=body, collapse_id=collapse_id
            )
        ).encode()
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if self.settings.auth_token:
            headers["Authorization"] = f"Bearer {self.settings.auth_token}"
        request = urllib.request.Request(  # noqa: S310 - the endpoint is operator configuration
            self.settings.endpoint, data=data, headers=headers, method="POST"
        )
        try:
            with self._opener.open(request, timeout=self.settings.timeout) as response:
                status, raw = response.status, response.read(_MAX_ANSWER)
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, _read_quietly(exc)
        except TimeoutError:
            return Result("retry", "push_timeout")
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError):
            return Result("retry", "push_unreachable")
        return classify_push_answer(status, raw)


def _read_quietly(exc: urllib.error.HTTPError) -> bytes:
    try:
        return exc.read(_MAX_ANSWER)
    except (OSError, http.client.HTTPException):
        return b""


def _error_codes(answer: Any) -> set[str]:
    """FCM v1 error bodies: {"error": {"status": "...", "details": [{"errorCode": "..."}]}}."""
    codes: set[str] = set()
    error = answer.get("error") if isinstance(answer, dict) else None
    if isinstance(error, dict):
        if isinstance(error.get("status"), str):
            codes.add(error["status"])
        for detail in error.get("details") or []:
            if isinstance(detail, dict) and isinstance(detail.get("errorCode"), str):
                codes.add(detail["errorCode"])
    return codes


def classify_push_answer(status: int, raw: bytes) -> Result:
    try:
        answer = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        answer = None
    codes = _error_codes(answer)
    if status in (404, 410) or "UNREGISTERED" in codes:
        return Result("invalid_token", "push_unregistered")
    if status == 200:
        # Success names the message ("projects/.../messages/..."); anything else is garbage.
        if isinstance(answer, dict) and isinstance(answer.get("name"), str):
            return SENT
        return Result("retry", "push_bad_answer")
    if status == 429 or status >= 500:
        return Result("retry", f"push_http_{status}")
    return Result("failed", f"push_http_{status}")


@dataclass(frozen=True)
class LinkSettings:
    base_url: str  # PUBLIC_BASE_URL: emails link to {base_url}/inbox/{notification id}
    message_domain: str  # right-hand side of Message-IDs


def deliver(claimed: Any, *, email: EmailChannel, push: PushChannel, links: LinkSettings) -> Result:
    """Send one claimed delivery (api.notifications.services.Claimed) through its channel."""
    from api.notifications.texts import email_text, visible_text

    if claimed.channel == "email":
        link = f"{links.base_url.rstrip('/')}/inbox/{claimed.notification_id}"
        text = email_text(discreet=claimed.discreet, link=link)
        return email.send(
            to=claimed.email,
            subject=text.title,
            body=text.body,
            message_id=f"<{claimed.delivery_id}@{links.message_domain}>",
        )
    if claimed.channel == "push":
        text = visible_text(claimed.kind, discreet=claimed.discreet)
        return push.send(
            token=claimed.device_token,
            platform=claimed.platform,
            title=text.title,
            body=text.body,
            collapse_id=str(claimed.notification_id),
        )
    return Result("failed", "unknown_channel")
