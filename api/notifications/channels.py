"""Channel adapters: email through SMTP, push through a provider's HTTP API (FCM HTTP v1 shape).

Each `send` answers a Result whose outcome is "sent", "retry" (transient: timeout, refused
connection, 4xx SMTP, 5xx/429 HTTP, an answer that is not what the provider documents), "failed"
(permanent for this delivery), "invalid_token" (the provider says the device token is dead: the
device is disabled) or "lost" (the claim was taken over: nothing was sent). An adapter never
raises for a delivery problem and never logs a token or an address.

The commit point: when `commit()` records the delivery as sent (and checks that the claim is
still ours) depends on when the provider takes responsibility for the message.
- SMTP: a server may queue the message as soon as it reads the end-of-data mark (".") and
  before it answers 250 (RFC 5321 6.1 allows it; many do), so a commit after the 250 doubles the
  mail whenever the sender dies or loses its database between the two. So, as for push: all of
  the message but the end mark is sent, then the commit, then the end mark. A crash or database
  error before the commit leaves a transaction the server discards (the row is retried); after
  it, nothing is sent again. A refusal after the end mark sets the row back (retry or failed); a
  reply that never comes keeps it sent (at most once from the commit on). What remains is the
  instant between the commit and one socket write (docs/reminders.md).
- HTTP push: a server acts on a request once it has the whole body, whether or not the client is
  still there to read the answer. So every byte but the last is sent, then the commit, then the
  last byte: a crash before the commit leaves half a request the server discards (the row is
  retried), a crash after it cannot send again; what remains is the instant between the commit
  and one socket write, where a crash loses that one push rather than doubling it.
"""

from __future__ import annotations

import http.client
import json
import re
import smtplib
from collections.abc import Callable
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Any
from urllib.parse import urlsplit

_MAX_ANSWER = 64 * 1024

Commit = Callable[[], bool]


@dataclass(frozen=True)
class Result:
    outcome: str  # sent | retry | failed | invalid_token | lost
    error: str | None = None


SENT = Result("sent")
LOST = Result("lost", "claim_lost")


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
                smtp.ehlo()
                if s.starttls:
                    smtp.starttls()
                    smtp.ehlo()
                if s.username and s.password:
                    smtp.login(s.username, s.password)
            except BaseException:
                smtp.close()
                raise
            self._smtp = smtp
        return self._smtp

    def message(self, *, to: str, subject: str, body: str, message_id: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.settings.mail_from
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = formatdate(usegmt=True)
        # Stable per delivery: a resend after a failure carries the same id, so mail systems and
        # clients that deduplicate by Message-ID show it once.
        message["Message-ID"] = message_id
        message.set_content(body)
        return message

    def send(
        self,
        *,
        to: str,
        subject: str,
        body: str,
        message_id: str,
        commit: Commit | None = None,
    ) -> Result:
        message = self.message(to=to, subject=subject, body=body, message_id=message_id)
        try:
            return self._transact(message, to, commit)
        except smtplib.SMTPServerDisconnected:
            self._drop()
            return Result("retry", "smtp_unavailable")
        except (smtplib.SMTPException, OSError):
            self._drop()
            return Result("retry", "smtp_unavailable")
        except BaseException:
            # The commit failed (the database went away): drop the connection without the end
            # mark, so the server discards the message and the retry is the only copy.
            self._drop()
            raise

    def _transact(self, message: EmailMessage, to: str, commit: Commit | None) -> Result:
        smtp = self._connection()
        code, _ = smtp.mail(parseaddr(self.settings.mail_from)[1])
        if code != 250:
            smtp.rset()
            return _smtp_refusal(code)
        code, _ = smtp.rcpt(to)
        if code not in (250, 251):
            smtp.rset()
            return Result("failed", "recipient_refused") if code >= 500 else _smtp_refusal(code)
        code, _ = smtp.docmd("DATA")
        if code != 354:
            smtp.rset()
            return _smtp_refusal(code)
        data = re.sub(rb"(?m)^\.", b"..", message.as_bytes(policy=policy.SMTP))
        if not data.endswith(b"\r\n"):
            data += b"\r\n"
        return self._finish(smtp, data, commit)

    def _finish(self, smtp: smtplib.SMTP, data: bytes, commit: Commit | None) -> Result:
        smtp.send(data)
        # The commit point: everything but the end-of-data mark is with the server.
        if commit is not None and not commit():
            self._drop()  # the claim was taken over: the server discards this transaction
            return LOST
        try:
            smtp.send(b".\r\n")
            code, _ = smtp.getreply()
        except (smtplib.SMTPException, OSError):
            # The server may have queued it on reading the end mark: recorded as sent, never
            # sent again (a second copy would be the worse failure for a reminder).
            self._drop()
            if commit is None:  # nothing recorded it: a retry is the only way it goes out
                return Result("retry", "smtp_unavailable")
            return Result("sent", "smtp_reply_lost")
        if code != 250:
            return _smtp_refusal(code)  # the caller sets the row back (retry or failed)
        return SENT

    def _drop(self) -> None:
        # Close the socket without QUIT: mid-DATA a QUIT would be read as message text.
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                self._smtp.close()
            self._smtp = None


def _smtp_refusal(code: int) -> Result:
    return Result("failed" if 500 <= code < 600 else "retry", f"smtp_{code}")


@dataclass(frozen=True)
class PushSettings:
    endpoint: str | None
    timeout: float = 5.0
    auth_token: str | None = None  # sent as a Bearer token (FCM: an OAuth2 access token)


class PushChannel:
    """FCM HTTP v1-style: POST {"message": {"token", "notification", "data", ...}} as JSON."""

    def __init__(self, settings: PushSettings) -> None:
        self.settings = settings

    def payload(
        self, *, token: str, platform: str, title: str, body: str, collapse_id: str
    ) -> dict[str, Any]:
        return {
            "message": {
                "token": token,
                "notification": {"title": title, "body": body},
                "data": {"notification_id": collapse_id, "platform": platform},
                # A resend after a failure replaces the first one on the device, not adds to it.
                "android": {"collapse_key": collapse_id},
                "apns": {"headers": {"apns-collapse-id": collapse_id}},
                "webpush": {"headers": {"Topic": collapse_id.replace("-", "")[:32]}},
            }
        }

    def send(
        self,
        *,
        token: str,
        platform: str,
        title: str,
        body: str,
        collapse_id: str,
        commit: Commit | None = None,
    ) -> Result:
        if not self.settings.endpoint:
            return Result("failed", "push_not_configured")
        data = json.dumps(
            self.payload(
                token=token, platform=platform, title=title, body=body, collapse_id=collapse_id
            )
        ).encode()
        url = urlsplit(self.settings.endpoint)
        kind = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        connection = kind(url.hostname or "", url.port, timeout=self.settings.timeout)
        try:
            connection.putrequest(
                "POST", (url.path or "/") + (f"?{url.query}" if url.query else "")
            )
            connection.putheader("Content-Type", "application/json; charset=utf-8")
            connection.putheader("Content-Length", str(len(data)))
            if self.settings.auth_token:
                connection.putheader("Authorization", f"Bearer {self.settings.auth_token}")
            connection.endheaders()
            connection.send(data[:-1])  # the provider waits for the rest before it acts
            if commit is not None and not commit():
                return LOST
            connection.send(data[-1:])
            response = connection.getresponse()
            status, raw = response.status, response.read(_MAX_ANSWER)
        except TimeoutError:
            return Result("retry", "push_timeout")
        except (http.client.HTTPException, OSError, ValueError):
            return Result("retry", "push_unreachable")
        finally:
            connection.close()
        return classify_push_answer(status, raw)


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


def deliver(
    claimed: Any,
    *,
    email: EmailChannel,
    push: PushChannel,
    links: LinkSettings,
    commit: Commit | None = None,
) -> Result:
    """Send one claimed delivery (api.notifications.services.Claimed) through its channel;
    `commit` runs at the commit point (see the module docstring)."""
    from api.notifications.texts import email_text, visible_text

    if claimed.channel == "email":
        link = f"{links.base_url.rstrip('/')}/inbox/{claimed.notification_id}"
        text = email_text(discreet=claimed.discreet, link=link)
        return email.send(
            to=claimed.email,
            subject=text.title,
            body=text.body,
            message_id=f"<{claimed.delivery_id}@{links.message_domain}>",
            commit=commit,
        )
    if claimed.channel == "push":
        text = visible_text(claimed.kind, discreet=claimed.discreet)
        return push.send(
            token=claimed.device_token,
            platform=claimed.platform,
            title=text.title,
            body=text.body,
            collapse_id=str(claimed.notification_id),
            commit=commit,
        )
    return Result("failed", "unknown_channel")
