"""Local push providers speaking the real protocols, for the push tests (all on 127.0.0.1).

- Google's OAuth token endpoint (JWT bearer grant, RFC 7523) checking the assertion's RS256
  signature with the service account's public key, and FCM HTTP v1 `messages:send` checking the
  bearer token it issued and the message's shape;
- a Web Push service (RFC 8030) that checks the VAPID JWT (RFC 8292) against the public key in
  the header and decrypts the aes128gcm payload (RFC 8291) with the subscription's private keys;
- APNs over HTTP/2 with TLS (hypercorn, a self-signed certificate made here) checking the ES256
  provider token against the .p8 key's public half and the apns-* headers.

Each answers by token (or subscription) prefix so a test picks the provider's behaviour.
Ports come from 9400-9449, probed until one binds.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
import json
import re
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import http_ece
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

PORTS = range(9400, 9450)
FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
PROJECT = "waymark-test"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _serve_http(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, int]:
    for port in PORTS:
        try:
            server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        except OSError:
            continue
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, port
    raise RuntimeError("no free port in 9400-9449")


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        return None

    def _body(self) -> bytes | None:
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length)
        return body if len(body) == length else None  # the client went away mid-body

    def _answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout tests)


# ------------------------------------------------------------------------------ OAuth + FCM v1


def _fcm_error(status: str, code: str | None = None, **extra: Any) -> dict[str, Any]:
    details: list[dict[str, Any]] = []
    if code:
        details.append(
            {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}
        )
    if "field" in extra:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": extra["field"], "description": "Invalid token"}],
            }
        )
    return {"error": {"code": 400, "message": "", "status": status, "details": details}}


_MESSAGE_KEYS = {
    "name", "data", "notification", "android", "webpush", "apns", "fcm_options", "token",
    "topic", "condition",
}  # fmt: skip
_ANDROID_KEYS = {
    "collapse_key", "priority", "ttl", "restricted_package_name", "data", "notification",
    "fcm_options", "direct_boot_ok",
}  # fmt: skip


def fcm_shape_errors(message: Any) -> list[str]:
    """What FCM v1 would refuse with INVALID_ARGUMENT in our message (the fields we use)."""
    if not isinstance(message, dict):
        return ["message"]
    errors = [f"message.{k}" for k in message if k not in _MESSAGE_KEYS]
    if sum(k in message for k in ("token", "topic", "condition")) != 1:
        errors.append("message.target")
    notification = message.get("notification", {})
    if not all(isinstance(notification.get(k), str) for k in ("title", "body")):
        errors.append("message.notification")
    data = message.get("data", {})
    if not all(isinstance(v, str) for v in data.values()):
        errors.append("message.data")  # FCM data values are strings only
    android = message.get("android", {})
    errors += [f"message.android.{k}" for k in android if k not in _ANDROID_KEYS]
    if android.get("priority") not in (None, "NORMAL", "HIGH"):
        errors.append("message.android.priority")
    if "ttl" in android and not re.fullmatch(r"\d+(\.\d{1,9})?s", str(android["ttl"])):
        errors.append("message.android.ttl")
    headers = message.get("apns", {}).get("headers", {})
    if not all(isinstance(v, str) for v in headers.values()):
        errors.append("message.apns.headers")
    if "apns-expiration" in headers and not headers["apns-expiration"].isdigit():
        errors.append("message.apns.headers.apns-expiration")
    return errors


@dataclass
class ServiceAccount:
    info: dict[str, Any]
    public_key: Any


def make_service_account(token_uri: str) -> ServiceAccount:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    info = {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": uuid.uuid4().hex,
        "private_key": pem,
        "client_email": f"push@{PROJECT}.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": token_uri,
    }
    return ServiceAccount(info=info, public_key=key.public_key())


@dataclass
class FcmLog:
    """What the fake OAuth + FCM server saw; FCM answers by token prefix:
    ok-* 200 with a name; slow-* sleeps past the client's timeout; garbage-* 200 HTML;
    dead-* 404 UNREGISTERED; badtoken-* 400 INVALID_ARGUMENT on message.token; bad-* 400
    INVALID_ARGUMENT (the payload); busy-* 503; down-* 500 with Retry-After 120; quota-* 429
    QUOTA_EXCEEDED with Retry-After 90."""

    account: ServiceAccount | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    shape_errors: list[list[str]] = field(default_factory=list)
    grants: list[dict[str, Any]] = field(default_factory=list)  # verified JWT grant claims
    issued: dict[str, float] = field(default_factory=dict)  # access token -> expiry (epoch)
    refused: int = 0  # FCM calls refused with 401
    expires_in: int = 3600
    token_endpoint_fails: bool = False
    slow_seconds: float = 1.5
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.headers.clear()
            self.shape_errors.clear()
            self.grants.clear()
            self.issued.clear()
            self.refused = 0
            self.expires_in = 3600
            self.token_endpoint_fails = False

    def revoke_all(self) -> None:
        with self.lock:
            self.issued.clear()


def _fcm_handler(log: FcmLog) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        def do_POST(self) -> None:
            body = self._body()
            if body is None:
                return  # half a request: nothing to act on
            if self.path == "/token":
                self._token(body)
            elif self.path == f"/v1/projects/{PROJECT}/messages:send":
                self._send(body)
            else:
                self._answer(404, _fcm_error("NOT_FOUND"))

        def _token(self, body: bytes) -> None:
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            account = log.account
            assert account is not None
            if log.token_endpoint_fails:
                self._answer(500, {"error": "internal_failure"})
                return
            if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
                self._answer(400, {"error": "unsupported_grant_type"})
                return
            assertion = form.get("assertion", "")
            try:
                header = jwt.get_unverified_header(assertion)
                claims = jwt.decode(
                    assertion,
                    account.public_key,
                    algorithms=["RS256"],
                    # Google's token endpoint is the audience, wherever token_uri points
                    audience=GOOGLE_TOKEN_AUDIENCE,
                    issuer=account.info["client_email"],
                    options={"require": ["iat", "exp", "iss", "aud", "scope"]},
                )
            except jwt.PyJWTError as exc:
                self._answer(400, {"error": "invalid_grant", "error_description": str(exc)})
                return
            if (
                header.get("kid") != account.info["private_key_id"]
                or claims["scope"] != FCM_SCOPE
                or claims["exp"] - claims["iat"] > 3600
            ):
                self._answer(400, {"error": "invalid_grant"})
                return
            token = f"ya29.{uuid.uuid4().hex}"
            with log.lock:
                log.grants.append(claims)
                log.issued[token] = time.time() + log.expires_in
            answer = {"access_token": token, "expires_in": log.expires_in, "token_type": "Bearer"}
            self._answer(200, answer)

        def _send(self, body: bytes) -> None:
            auth = self.headers.get("Authorization", "")
            token = auth.removeprefix("Bearer ")
            with log.lock:
                valid = auth.startswith("Bearer ") and log.issued.get(token, 0) > time.time()
                if not valid:
                    log.refused += 1
            if not valid:
                error = _fcm_error("UNAUTHENTICATED")
                error["error"]["code"] = 401
                self._answer(401, error)
                return
            payload = json.loads(body)
            message = payload.get("message")
            errors = fcm_shape_errors(message)
            with log.lock:
                log.requests.append(payload)
                log.headers.append({k.lower(): v for k, v in self.headers.items()})
                log.shape_errors.append(errors)
            if errors:
                self._answer(400, _fcm_error("INVALID_ARGUMENT", "INVALID_ARGUMENT"))
                return
            device = message["token"]
            if device.startswith("slow-"):
                time.sleep(log.slow_seconds)
                self._answer(200, {"name": f"projects/{PROJECT}/messages/late"})
            elif device.startswith("garbage-"):
                self._answer(200, b"<html>gateway says hi</html>")
            elif device.startswith("dead-"):
                self._answer(404, _fcm_error("NOT_FOUND", "UNREGISTERED"))
            elif device.startswith("badtoken-"):
                error = _fcm_error("INVALID_ARGUMENT", "INVALID_ARGUMENT", field="message.token")
                self._answer(400, error)
            elif device.startswith("bad-"):
                self._answer(400, _fcm_error("INVALID_ARGUMENT", "INVALID_ARGUMENT"))
            elif device.startswith("busy-"):
                self._answer(503, _fcm_error("UNAVAILABLE", "UNAVAILABLE"))
            elif device.startswith("down-"):
                error = _fcm_error("INTERNAL", "INTERNAL")
                self._answer(500, error, {"Retry-After": "120"})
            elif device.startswith("quota-"):
                error = _fcm_error("RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED")
                self._answer(429, error, {"Retry-After": "90"})
            else:
                name = f"projects/{PROJECT}/messages/{len(log.requests)}"
                self._answer(200, {"name": name})

    return Handler


def start_fcm(log: FcmLog) -> tuple[ThreadingHTTPServer, int]:
    server, port = _serve_http(_fcm_handler(log))
    log.account = make_service_account(f"http://127.0.0.1:{port}/token")
    return server, port


# ------------------------------------------------------------------------------ Web Push


@dataclass
class Subscriber:
    """A browser's side of a subscription: its keys, as the app would send them."""

    endpoint: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes

    @property
    def p256dh(self) -> str:
        raw = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return _b64url(raw)

    def json(self) -> dict[str, Any]:
        keys = {"p256dh": self.p256dh, "auth": _b64url(self.auth)}
        return {"endpoint": self.endpoint, "expirationTime": None, "keys": keys}


@dataclass
class WebPushLog:
    """The push service: decrypted messages by subscription id, and what it refused.
    Subscription ids answer by prefix: gone-* 410, missing-* 404, busy-* 429 (Retry-After 60),
    down-* 503, big-* 413; others 201."""

    port: int = 0
    vapid_public_key: str = ""  # the `k` the server must see (the deployment's VAPID key)
    subscribers: dict[str, Subscriber] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def subscribe(self, name: str) -> Subscriber:
        sub_id = f"{name}-{uuid.uuid4().hex[:8]}"
        subscriber = Subscriber(
            endpoint=f"http://127.0.0.1:{self.port}/push/{sub_id}",
            private_key=ec.generate_private_key(ec.SECP256R1()),
            auth=uuid.uuid4().bytes,
        )
        with self.lock:
            self.subscribers[sub_id] = subscriber
        return subscriber

    def reset(self) -> None:
        with self.lock:
            self.messages.clear()
            self.headers.clear()
            self.refused.clear()


def _check_vapid(log: WebPushLog, header: str, audience: str) -> str | None:
    """None if the Authorization header is a valid VAPID one for this service, else why not."""
    found = re.fullmatch(r"vapid t=([^,\s]+),\s*k=([A-Za-z0-9_-]+)", header)
    if not found:
        return "scheme"
    token, k = found.groups()
    if k != log.vapid_public_key:
        return "unknown key"
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _unb64url(k))
    try:
        claims = jwt.decode(
            token,
            public,
            algorithms=["ES256"],
            audience=audience,
            options={"require": ["exp", "aud", "sub"]},
        )
    except jwt.PyJWTError as exc:
        return str(exc)
    if claims["exp"] > time.time() + 24 * 3600:
        return "exp more than 24 h ahead"
    if not str(claims["sub"]).startswith(("mailto:", "https:")):
        return "sub"
    return None


def _webpush_handler(log: WebPushLog) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        def do_POST(self) -> None:
            body = self._body()
            if body is None:
                return
            sub_id = self.path.removeprefix("/push/")
            subscriber = log.subscribers.get(sub_id)
            if subscriber is None:
                self._answer(404, {})
                return
            why = _check_vapid(
                log, self.headers.get("Authorization", ""), f"http://127.0.0.1:{log.port}"
            )
            if why is None and self.headers.get("Content-Encoding") != "aes128gcm":
                why = "content-encoding"
            if why is None and not (self.headers.get("TTL") or "").isdigit():
                why = "ttl"
            if why is not None:
                with log.lock:
                    log.refused.append(why)
                self._answer(403 if why != "ttl" else 400, {"reason": why})
                return
            try:
                plain = http_ece.decrypt(
                    body,
                    private_key=subscriber.private_key,
                    auth_secret=subscriber.auth,
                    version="aes128gcm",
                )
            except Exception as exc:
                with log.lock:
                    log.refused.append(f"decrypt: {type(exc).__name__}")
                self._answer(400, {"reason": "decrypt"})
                return
            with log.lock:
                log.messages.append({"subscription": sub_id, **json.loads(plain)})
                log.headers.append({k.lower(): v for k, v in self.headers.items()})
            for prefix, status, extra in (
                ("gone-", 410, {}),
                ("missing-", 404, {}),
                ("busy-", 429, {"Retry-After": "60"}),
                ("down-", 503, {}),
                ("big-", 413, {}),
            ):
                if sub_id.startswith(prefix):
                    self._answer(status, {}, extra)
                    return
            self._answer(201, b"", {"Location": f"/message/{uuid.uuid4().hex}"})

    return Handler


def start_webpush(log: WebPushLog) -> tuple[ThreadingHTTPServer, int]:
    server, port = _serve_http(_webpush_handler(log))
    log.port = port
    return server, port


# ------------------------------------------------------------------------------ APNs (HTTP/2)


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files in `directory`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "apns.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "apns-cert.pem", directory / "apns-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class ApnsLog:
    """What the APNs server saw. Device tokens (hex) answer by prefix: dead* 410 Unregistered,
    bad0* 400 BadDeviceToken, 1290* 429 TooManyRequests (Retry-After 45), 5030* 503; others 200.
    Tokens issued before `tokens_expired_before` (iat, epoch) answer 403 ExpiredProviderToken,
    as do tokens older than an hour."""

    key_id: str = "ABC123DEFG"
    team_id: str = "TEAM123456"
    topic: str = "org.waymark.app"
    public_key: Any = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    provider_tokens: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    tokens_expired_before: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.provider_tokens.clear()
            self.refused.clear()
            self.tokens_expired_before = 0.0


def _apns_app(log: ApnsLog) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            event = await receive()
            if event["type"] == "http.disconnect":
                return  # the stream ended without its end: nothing to act on
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        status, answer, extra = _apns_answer(log, scope, headers, body)
        raw = json.dumps(answer).encode() if answer is not None else b""
        response_headers = [(b"apns-id", str(uuid.uuid4()).encode())]
        response_headers += [(k.encode(), v.encode()) for k, v in extra.items()]
        if raw:
            response_headers.append((b"content-type", b"application/json"))
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": raw})

    return app


def _apns_answer(  # noqa: PLR0911, PLR0912 - one return per refusal, as APNs answers
    log: ApnsLog, scope: dict[str, Any], headers: dict[str, str], body: bytes
) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
    if scope["http_version"] != "2":
        return 400, {"reason": "BadHttpVersion"}, {}
    found = re.fullmatch(r"/3/device/([0-9a-f]+)", scope["path"])
    if scope["method"] != "POST" or not found:
        return 405 if found else 404, {"reason": "BadPath"}, {}
    token = headers.get("authorization", "").removeprefix("bearer ")
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(
            token, log.public_key, algorithms=["ES256"], options={"require": ["iat", "iss"]}
        )
    except jwt.PyJWTError as exc:
        log.refused.append(f"jwt: {exc}")
        return 403, {"reason": "InvalidProviderToken"}, {}
    with log.lock:
        log.provider_tokens.append(token)
    if header.get("kid") != log.key_id or claims["iss"] != log.team_id:
        return 403, {"reason": "InvalidProviderToken"}, {}
    if claims["iat"] < log.tokens_expired_before or claims["iat"] < time.time() - 3600:
        return 403, {"reason": "ExpiredProviderToken"}, {}
    if headers.get("apns-topic") != log.topic:
        return 400, {"reason": "BadTopic" if "apns-topic" in headers else "MissingTopic"}, {}
    problems = []
    if headers.get("apns-push-type") != "alert":
        problems.append("apns-push-type")
    if not headers.get("apns-expiration", "").isdigit():
        problems.append("apns-expiration")
    if not 0 < len(headers.get("apns-collapse-id", "").encode()) <= 64:
        problems.append("apns-collapse-id")
    if headers.get("apns-priority") not in ("10", "5"):
        problems.append("apns-priority")
    try:
        payload = json.loads(body)
        alert = payload["aps"]["alert"]
        assert isinstance(alert["title"], str) and isinstance(alert["body"], str)
    except (ValueError, KeyError, TypeError, AssertionError):
        problems.append("payload")
        payload = None
    if problems:
        log.refused.extend(problems)
        return 400, {"reason": "BadRequest"}, {}
    device = found.group(1)
    with log.lock:
        log.requests.append({"device": device, "headers": headers, "payload": payload})
    for prefix, status, reason, extra in (
        ("dead", 410, "Unregistered", {}),
        ("bad0", 400, "BadDeviceToken", {}),
        ("1290", 429, "TooManyRequests", {"retry-after": "45"}),
        ("5030", 503, "ServiceUnavailable", {}),
    ):
        if device.startswith(prefix):
            answer: dict[str, Any] = {"reason": reason}
            if status == 410:
                answer["timestamp"] = int(time.time() * 1000)
            return status, answer, extra
    return 200, None, {}


@dataclass
class ApnsServer:
    port: int
    ca: ssl.SSLContext  # trusts the server's self-signed certificate
    p8: str  # the provider's .p8 key (PEM)
    shutdown: Any
    thread: threading.Thread
    close_loop: Any

    def stop(self) -> None:
        self.shutdown()
        self.thread.join(10)
        if not self.thread.is_alive():
            self.close_loop()


def _bound_socket() -> socket.socket:
    for port in reversed(PORTS):
        sock = socket.socket()
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        return sock
    raise RuntimeError("no free port in 9400-9449")


def start_apns(log: ApnsLog, directory: Path) -> ApnsServer:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    key = ec.generate_private_key(ec.SECP256R1())
    log.public_key = key.public_key()
    p8 = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    cert_path, key_path = self_signed_cert(directory)
    # Bound here and handed over as a descriptor: a port probed free could be taken (by another
    # suite running beside this one) before hypercorn binds it.
    listener = _bound_socket()
    port = listener.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{listener.detach()}"]
    config.certfile, config.keyfile = str(cert_path), str(key_path)
    config.alpn_protocols = ["h2"]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 1.0
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    started = threading.Event()

    async def main() -> None:
        started.set()
        await serve(_apns_app(log), config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    started.wait(5)
    for _ in range(100):  # until it accepts connections
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    ca = ssl.create_default_context(cafile=str(cert_path))

    def shutdown() -> None:
        loop.call_soon_threadsafe(stop.set)

    return ApnsServer(
        port=port, ca=ca, p8=p8, shutdown=shutdown, thread=thread, close_loop=loop.close
    )


def hex_token(prefix: str = "0000") -> str:
    return prefix + uuid.uuid4().hex + uuid.uuid4().hex[: 64 - 32 - len(prefix)]


def tokens(log_requests: list[dict[str, Any]]) -> Iterator[str]:
    return (r["message"]["token"] for r in log_requests)
