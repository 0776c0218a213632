"""A real local SMTP server (aiosmtpd) for channel tests (push providers: tests/push_servers.py).

Ports come from this helper's range (8300-8399), probed until one binds, so runs in parallel
(SQLite and PostgreSQL suites at once) do not collide.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller

PORTS = range(8301, 8399)


@dataclass
class Mailbox:
    """What the SMTP server received."""

    messages: list[Message] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if any(rcpt.startswith("reject") for rcpt in envelope.rcpt_tos):
            return "554 5.7.1 Message refused"
        with self.lock:
            self.messages.append(message_from_bytes(envelope.content))
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_smtp(mailbox: Mailbox) -> tuple[Controller, int]:
    last: Exception | None = None
    for port in PORTS:
        if not _free(port):  # other suites run beside this one
            continue
        controller = Controller(mailbox, hostname="127.0.0.1", port=port)
        try:
            controller.start()
        except (OSError, RuntimeError) as exc:  # taken meanwhile: try the next
            last = exc
            controller.loop.close()
            continue
        return controller, port
    raise RuntimeError(f"no free port for SMTP: {last}")
