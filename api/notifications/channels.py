"""Channel adapters: email through SMTP, push through its provider (api/notifications/push/).

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
- HTTP push (FCM, Web Push, APNs): a server acts on a request once it has the whole body,
  whether or not the client is still there to read the answer. So every byte but the last is
  sent, then the commit, then the last byte (over HTTP/2, APNs: the end of the stream): a crash
  before the commit leaves half a request the server discards (the row is retried), a crash
  after it cannot send again; what remains is the instant between the commit and one socket
  write, where a crash loses that one push rather than doubling it.
- "deferred" (push): the provider is paused (its Retry-After, or repeated failures); nothing was
  attempted, and the row waits without spending an attempt.
"""

from __future__ import annotations

import re
import smtplib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Any

from api.auth.email_tokens import derive_token
from api.notifications.push import PushMessage, PushRouter, PushTarget
from api.notifications.results import LOST, SENT, Commit, Result

__all__ = ["LOST", "SENT", "Commit", "EmailChannel", "LinkSettings", "PushRouter", "Result"]


@dataclass(frozen=True)
class EmailSettings:
    host: str
    port: int
    mail_from: str
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout: float = 10.0


def email_settings(cfg: Mapping[str, Any]) -> EmailSettings:
    """The one SMTP configuration, the outbox sender's (every email goes through the outbox)."""
    return EmailSettings(
        host=cfg["SMTP_HOST"],
        port=cfg["SMTP_PORT"],
        mail_from=cfg["MAIL_FROM"],
        username=cfg["SMTP_USERNAME"],
        password=cfg["SMTP_PASSWORD"],
        starttls=cfg["SMTP_STARTTLS"],
        timeout=cfg["SMTP_TIMEOUT"],
    )


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
class LinkSettings:
    base_url: str  # PUBLIC_BASE_URL: emails link to {base_url}/inbox/{notification id}
    message_domain: str  # right-hand side of Message-IDs
    # SECRET_KEY: derives the token a password-reset or verification email carries
    # (api.auth.email_tokens); without it such an email fails rather than carry no token.
    token_key: bytes = b""


# The app's pages that take a token from an email. The token rides in the fragment, which
# browsers never send to a server: it stays out of access logs and Referer headers.
TOKEN_PAGES = {"password_reset": "reset-password", "verify_email": "verify-email"}


def deliver(
    claimed: Any,
    *,
    email: EmailChannel,
    push: PushRouter,
    links: LinkSettings,
    now: datetime,
    commit: Commit | None = None,
) -> Result:
    """Send one claimed delivery (api.notifications.services.Claimed) through its channel;
    `commit` runs at the commit point (see the module docstring). `now` (the jobs' clock)
    dates a push's time to live."""
    from api.notifications.texts import NOT_IN_INBOX, email_text, visible_text

    if claimed.channel == "email":
        base = links.base_url.rstrip("/")
        token = ""
        if claimed.kind in TOKEN_PAGES:
            if not links.token_key:
                return Result("failed", "no_token_key")
            token = derive_token(
                links.token_key, purpose=claimed.kind, notification_id=claimed.notification_id
            )
            link = f"{base}/{TOKEN_PAGES[claimed.kind]}#token={token}"
        elif claimed.kind in NOT_IN_INBOX:
            # An account notice or a clinician's weekly notice is not in the inbox: it links to
            # the app itself (or the pages its payload names).
            link = base
        else:
            link = f"{base}/inbox/{claimed.notification_id}"
        text = email_text(
            discreet=claimed.discreet,
            link=link,
            kind=claimed.kind,
            payload=claimed.payload,
            token=token,
        )
        return email.send(
            to=claimed.email,
            subject=text.title,
            body=text.body,
            message_id=f"<{claimed.delivery_id}@{links.message_domain}>",
            commit=commit,
        )
    if claimed.channel == "push":
        text = visible_text(claimed.kind, discreet=claimed.discreet)
        expires_at = claimed.due_at + timedelta(seconds=push.ttl)
        return push.send(
            target=PushTarget(
                platform=claimed.platform,
                token=claimed.device_token,
                p256dh=claimed.push_p256dh,
                auth=claimed.push_auth,
            ),
            message=PushMessage(
                title=text.title,
                body=text.body,
                collapse_id=str(claimed.notification_id),
                expires_at=expires_at,
                ttl=int((expires_at - now).total_seconds()),
            ),
            commit=commit,
        )
    return Result("failed", "unknown_channel")
