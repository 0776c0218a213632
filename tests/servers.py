"""Real local servers for channel tests: an aiosmtpd SMTP server and a fake push provider.

Ports come from this helper's range (8300-8399), probed until one binds, so runs in parallel
(SQLite and PostgreSQL suites at once) do not collide.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


@dataclass
class PushLog:
    """What the fake provider received; it answers by token prefix:
    ok-* 200 with a message name; slow-* sleeps past the client's timeout; garbage-* 200 HTML;
    dead-* 404 UNREGISTERED; busy-* 503; bad-* 400 INVALID_ARGUMENT."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    slow_seconds: float = 1.5
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(log: PushLog) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return None

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            if len(body) < length:
                return  # the client went away mid-body: nothing to act on
            payload = json.loads(body)
            with log.lock:
                log.requests.append(payload)
                log.headers.append(dict(self.headers))
            token = payload["message"]["token"]
            if token.startswith("slow-"):
                time.sleep(log.slow_seconds)
                self._answer(200, {"name": "projects/p/messages/late"})
            elif token.startswith("garbage-"):
                self._answer(200, b"<html>gateway says hi</html>")
            elif token.startswith("dead-"):
                error = {"status": "NOT_FOUND", "details": [{"errorCode": "UNREGISTERED"}]}
                self._answer(404, {"error": error})
            elif token.startswith("busy-"):
                self._answer(503, {"error": {"status": "UNAVAILABLE"}})
            elif token.startswith("bad-"):
                self._answer(400, {"error": {"status": "INVALID_ARGUMENT"}})
            else:
                self._answer(200, {"name": f"projects/p/messages/{len(log.requests)}"})

        def _answer(self, status: int, body: Any) -> None:
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)

    return Handler


def start_push(log: PushLog) -> tuple[ThreadingHTTPServer, int]:
    for port in PORTS:
        try:
            server = ThreadingHTTPServer(("127.0.0.1", port), _handler(log))
        except OSError:
            continue
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, port
    raise RuntimeError("no free port for the push provider")
