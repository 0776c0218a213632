"""`Idempotency-Key` on every POST (contract: Conventions; policy in docs/offline-sync.md).

A POST that carries the header claims (principal, key) before the view runs, in its own short
transaction. The first request owns the claim; a repeat with the same key and request gets the
stored answer back, a repeat while the first is still running gets 409, and the same key with a
different request gets 422. Only final answers (2xx, and 4xx that the same request would get
again) are stored; anything else releases the claim so a retry runs afresh. Never a 5xx.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, TypeVar, cast

import structlog
from apispec import BasePlugin
from flask import Flask, Response, current_app, g, request
from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
    bindparam,
    delete,
    select,
    text,
    update,
)
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from api.db import Base, in_own_transaction, utcnow
from api.dml import insert_ignoring_conflicts
from api.errors import (
    DATABASE_UNAVAILABLE,
    PROBLEM_MIME,
    Conflict,
    Unauthorized,
    ValidationError,
    database_unavailable,
)
from api.parsing import JsonBodyError, load_json

log = structlog.get_logger("waymark.idempotency")

F = TypeVar("F", bound=Callable[..., Any])

HEADER = "Idempotency-Key"
MIN_TTL = timedelta(hours=24)
# Claims follow their owner: the process running the request renews its claims every
# RENEW_EVERY while the request runs (_Renewer), so a claim not renewed for IN_FLIGHT_LEASE
# belongs to a request that is gone (a killed worker, an answer whose release the database
# refused) and the next repeat takes it over, seconds later rather than a minute.
IN_FLIGHT_LEASE = timedelta(seconds=10)
RENEW_EVERY = 3.0  # seconds
_KEY_FORMAT = re.compile(r"^[\x21-\x7e]{1,255}$")
# 4xx answers that the same request could get differently later (signed in again, the resource
# it refers to synced, the role changed, the rate window passed) are not final, so not stored.
_NOT_FINAL_4XX = frozenset({401, 403, 404, 405, 408, 423, 425, 429})
_REPLAYED_HEADERS = ("Content-Type", "Location", "Content-Location", "ETag", "Link", "Allow")


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("principal", "key"),
        Index("ix_idempotency_keys_expires_at", "expires_at"),
        Index("ix_idempotency_keys_user_resource", "user_id", "resource_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # "user:<id>" for a signed-in caller, "anon:<keyed hash of the client address>" otherwise.
    principal: Mapped[str] = mapped_column(String(80))
    key: Mapped[str] = mapped_column(String(255))
    # Erasing an account erases the answers stored for it (they can hold health data).
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # HMAC-SHA256 under SECRET_KEY of method, path and body: a plain hash of a sign-in body would
    # let anyone with the table guess passwords offline.
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[int | None]  # None while the first request is in flight
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    response_headers: Mapped[dict[str, str] | None] = mapped_column(JSON(none_as_null=True))
    # The `id` of the stored JSON answer: deleting that resource forgets the answer.
    resource_id: Mapped[uuid.UUID | None]
    locked_at: Mapped[datetime]
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class KeyInFlight(Conflict):
    slug = "idempotency-in-flight"
    title = "Request already in progress"


class KeyReused(ValidationError):
    slug = "idempotency-key-reused"
    title = "Idempotency-Key reused"


@dataclass
class Claim:
    """What the claim decided: `owned` (run the view) or `replay` (answer the stored response)."""

    owned: bool
    row_id: uuid.UUID
    replay: IdempotencyKey | None = None


# ---------------------------------------------------------------------------------------------
# Services: plain functions on a session; the caller commits.


def claim(
    session: Session,
    *,
    principal: str,
    user_id: uuid.UUID | None,
    key: str,
    request_hash: str,
    now: datetime,
    ttl: timedelta,
    lease: timedelta = IN_FLIGHT_LEASE,
    previous_hashes: tuple[str, ...] = (),
) -> Claim:
    """Claim (principal, key) for one request.

    Raises KeyReused (422) if the key was used with another request, KeyInFlight (409) while the
    first request is still running. Safe under concurrent claims: the unique key decides.
    """
    new_id = uuid.uuid4()
    fresh = {
        "request_hash": request_hash,
        "status": None,
        "response_body": None,
        "response_headers": None,
        "resource_id": None,
        "locked_at": now,
        "created_at": now,
        "expires_at": now + max(ttl, MIN_TTL),
    }
    stmt = _claim_statement(session.get_bind().dialect.name)
    params = {"id": new_id, "principal": principal, "key": key, "user_id": user_id, **fresh}
    for _attempt in range(3):
        if session.connection().execute(stmt, params).first() is not None:
            return Claim(owned=True, row_id=new_id)
        row = session.scalar(
            select(IdempotencyKey)
            .where(IdempotencyKey.principal == principal, IdempotencyKey.key == key)
            .execution_options(populate_existing=True)
        )
        if row is None:  # purged between the insert and the read: insert again
            continue
        if row.expires_at <= now:
            if _take_over(session, row, IdempotencyKey.expires_at <= now, fresh):
                return Claim(owned=True, row_id=row.id)
            continue
        # previous_hashes: the same request under the keys SECRET_KEY replaced (rotation).
        if not any(
            hmac.compare_digest(row.request_hash, h) for h in (request_hash, *previous_hashes)
        ):
            raise KeyReused(
                {HEADER: ["This key was already used with a different request."]},
                detail="This Idempotency-Key was already used with a different request.",
            )
        if row.status is None:
            stale = IdempotencyKey.locked_at == row.locked_at
            if row.locked_at <= now - lease and _take_over(session, row, stale, fresh):
                return Claim(owned=True, row_id=row.id)
            raise KeyInFlight(
                "A request with this Idempotency-Key is still in progress; retry shortly.",
                headers={"Retry-After": "1"},
            )
        return Claim(owned=False, row_id=row.id, replay=row)
    raise KeyInFlight("Retry shortly.", headers={"Retry-After": "1"})


_table = cast(Table, IdempotencyKey.__table__)


@lru_cache(maxsize=4)
def _claim_statement(dialect: str) -> Any:
    table = _table
    return insert_ignoring_conflicts(dialect, table, index_elements=["principal", "key"]).returning(
        table.c.id  # a row back means inserted (rowcount is not reliable here)
    )


# Prebuilt Core statements: these run on every keyed POST.
_COMPLETE = (
    update(_table)
    .where(_table.c.id == bindparam("row_id"), _table.c.status.is_(None))
    .values(
        status=bindparam("status"),
        response_body=bindparam("body"),
        response_headers=bindparam("headers"),
        resource_id=bindparam("resource_id"),
    )
)
_RELEASE = delete(_table).where(_table.c.id == bindparam("row_id"), _table.c.status.is_(None))


def _take_over(
    session: Session, row: IdempotencyKey, condition: Any, fresh: dict[str, Any]
) -> bool:
    won = _affected(
        session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.id == row.id, condition)
            .values(**fresh)
            .execution_options(synchronize_session=False)
        )
    )
    return won == 1


def _affected(result: Any) -> int:
    return cast(CursorResult[Any], result).rowcount


def complete(
    session: Session,
    *,
    row_id: uuid.UUID,
    status: int,
    body: bytes,
    headers: dict[str, str],
    resource_id: uuid.UUID | None,
) -> None:
    """Store the final answer of the request that owns the claim."""
    session.connection().execute(
        _COMPLETE,
        {
            "row_id": row_id,
            "status": status,
            "body": body,
            "headers": headers,
            "resource_id": resource_id,
        },
    )


def release(session: Session, *, row_id: uuid.UUID) -> None:
    """Drop an unfinished claim, so a retry with the same key runs afresh."""
    session.connection().execute(_RELEASE, {"row_id": row_id})


def forget_resource(session: Session, *, user_id: uuid.UUID, resource_id: uuid.UUID) -> int:
    """Forget stored answers about a resource being deleted: its content must not outlive it, and
    a replayed create must not bring it back to the phone."""
    return _affected(
        session.execute(
            delete(IdempotencyKey)
            .where(IdempotencyKey.user_id == user_id, IdempotencyKey.resource_id == resource_id)
            .execution_options(synchronize_session=False)
        )
    )


def purge_expired(session: Session, *, now: datetime) -> int:
    """Delete keys past their expiry (the scheduler runs this; see jobs/purge_idempotency.py)."""
    return _affected(
        session.execute(
            delete(IdempotencyKey)
            .where(IdempotencyKey.expires_at <= now)
            .execution_options(synchronize_session=False)
        )
    )


# ---------------------------------------------------------------------------------------------
# The HTTP layer: before/after_request hooks, registered once in create_app.


def not_replayable(func: F) -> F:
    """Mark a POST view whose answer holds credentials: it is never stored. Its key still guards
    against a concurrent repeat (409) and reuse with another body (422) while in flight."""
    func._idempotency_store = False  # type: ignore[attr-defined]
    return func


@dataclass
class _State:
    row_id: uuid.UUID
    store: bool


def _keyed_hash(*parts: bytes, secret: str | None = None) -> str:
    key = (secret or current_app.config["SECRET_KEY"]).encode()
    return hmac.new(key, b"\n".join(parts), hashlib.sha256).hexdigest()


def _request_hash(secret: str | None = None) -> str:
    raw = request.get_data(cache=True)
    try:
        # Same JSON, other whitespace or key order: the same request.
        body = json.dumps(load_json(raw), sort_keys=True, separators=(",", ":")).encode()
    except JsonBodyError:
        body = raw  # the view refuses it (400), which is final and stored for this key
    return _keyed_hash(request.method.encode(), request.full_path.encode(), body, secret=secret)


def _principal() -> tuple[str, uuid.UUID | None]:
    from api.security import authenticate, client_address

    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        try:
            # A live login, not just a well-signed token: a signed-out token must not replay
            # the answer stored for its account (the view answers it 401, which is not stored).
            user_id, _role = authenticate()
        except Unauthorized:
            pass
        else:
            return f"user:{user_id}", user_id
    return "anon:" + _keyed_hash(client_address().encode())[:40], None


def _ttl() -> timedelta:
    return timedelta(seconds=current_app.config["IDEMPOTENCY_TTL"])


def _is_final(status: int) -> bool:
    return 200 <= status < 300 or (400 <= status < 500 and status not in _NOT_FINAL_4XX)


def _replay(row: IdempotencyKey) -> Response:
    body = row.response_body or b""
    headers = dict(row.response_headers or {})
    if headers.get("Content-Type") == PROBLEM_MIME and body:
        # The problem names this request's id, as every error does (X-Request-ID).
        problem = json.loads(body)
        problem["request_id"] = g.get("request_id")
        body = json.dumps(problem).encode()
    response = Response(body, status=row.status)
    for name, value in headers.items():
        response.headers[name] = value
    response.headers[REPLAYED_HEADER] = "true"
    return response


def _resource_id(response: Response) -> uuid.UUID | None:
    if not response.is_json:
        return None
    data = response.get_json(silent=True)
    if isinstance(data, dict) and isinstance(data.get("id"), str):
        try:
            return uuid.UUID(data["id"])
        except ValueError:
            return None
    return None


def _before() -> Response | None:
    req = request._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup
    if req.method != "POST":
        return None
    key = req.headers.get(HEADER)
    if key is None or req.url_rule is None:
        return None
    if not _KEY_FORMAT.match(key):
        raise ValidationError({HEADER: ["Use 1 to 255 visible ASCII characters."]})
    principal, user_id = _principal()
    request_hash = _request_hash()
    previous = tuple(_request_hash(k) for k in current_app.config.get("SECRET_KEY_PREVIOUS", []))
    now = utcnow()

    def work(session: Session) -> Claim:
        if session.get_bind().dialect.name == "postgresql":
            # A claim lost in a crash only means a retry runs again (as after the lease): it is
            # not worth a disk flush. The stored answer below keeps the normal durability.
            session.connection().execute(text("SET LOCAL synchronous_commit TO OFF"))
        return claim(
            session,
            principal=principal,
            user_id=user_id,
            key=key,
            request_hash=request_hash,
            now=now,
            ttl=_ttl(),
            previous_hashes=previous,
        )

    try:
        result: Claim = in_own_transaction("idempotency.claim", work)
    except IntegrityError:
        return None  # the token's account no longer exists: the view answers 401
    if result.replay is not None:
        log.info("idempotency.replayed", status=result.replay.status)
        return _replay(result.replay)
    view = current_app.view_functions.get(request.endpoint or "")
    g.idempotency = _State(result.row_id, store=getattr(view, "_idempotency_store", True))
    _renewer.hold(current_app._get_current_object(), result.row_id)  # type: ignore[attr-defined]
    return None


class _Renewer:
    """Keeps the claims of this process's running requests fresh (one thread per process, started
    on first use and again after a fork; it writes only for requests older than RENEW_EVERY)."""

    def __init__(self) -> None:
        self._held: dict[uuid.UUID, float] = {}
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._app: Flask | None = None

    def hold(self, app: Flask, row_id: uuid.UUID) -> None:
        with self._lock:
            self._held[row_id] = time.monotonic()
            if self._pid != os.getpid():
                self._pid, self._app = os.getpid(), app
                self._held = {row_id: self._held[row_id]}
                threading.Thread(target=self._run, name="idempotency-renewer", daemon=True).start()

    def drop(self, row_id: uuid.UUID) -> None:
        with self._lock:
            self._held.pop(row_id, None)

    def _run(self) -> None:
        pid = os.getpid()
        while self._pid == pid:
            time.sleep(RENEW_EVERY)
            cutoff = time.monotonic() - RENEW_EVERY
            with self._lock:
                due = [row_id for row_id, since in self._held.items() if since <= cutoff]
            if due and self._app is not None:
                self.renew(self._app, due)

    @staticmethod
    def renew(app: Flask, row_ids: list[uuid.UUID]) -> None:
        try:
            with app.extensions["db"].engine.begin() as conn:
                conn.execute(
                    update(_table)
                    .where(_table.c.id.in_(row_ids), _table.c.status.is_(None))
                    .values(locked_at=utcnow())
                )
        except Exception as exc:  # the database is away: the lease decides, as for a dead owner
            log.warning("idempotency.renew_failed", error_type=type(exc).__name__)


_renewer = _Renewer()


def _finish_claim(
    name: str, work: Callable[[Session], Any], row_id: uuid.UUID
) -> BaseException | None:
    """Complete or release a claim; the error if the database refused (the lease frees it)."""
    try:
        in_own_transaction(name, work)
    except DATABASE_UNAVAILABLE as exc:
        return exc
    finally:
        _renewer.drop(row_id)
    return None


def _after(response: Response) -> Response:
    state: _State | None = g.pop("idempotency", None)
    if state is None:
        return response
    storable = (
        state.store
        and _is_final(response.status_code)
        and not response.direct_passthrough
        and not response.is_streamed
    )
    if storable:
        headers = {h: response.headers[h] for h in _REPLAYED_HEADERS if h in response.headers}
        body = response.get_data()
        resource_id = _resource_id(response)
        failed = _finish_claim(
            "idempotency.store_answer",
            lambda s: complete(
                s,
                row_id=state.row_id,
                status=response.status_code,
                body=body,
                headers=headers,
                resource_id=resource_id,
            ),
            state.row_id,
        )
    else:
        failed = _finish_claim(
            "idempotency.release", lambda s: release(s, row_id=state.row_id), state.row_id
        )
    if failed is not None:
        # The answer cannot be stored or the claim let go: the client must resend, and the
        # resend (same key) runs afresh once the lease ends, a few seconds from now.
        return database_unavailable(failed, where="idempotency")
    return response


def _teardown(_exc: BaseException | None) -> None:
    # Normally _after has finished the claim; if something broke before it ran, let go of it.
    state: _State | None = g.pop("idempotency", None)
    if state is not None:
        failed = _finish_claim(
            "idempotency.release", lambda s: release(s, row_id=state.row_id), state.row_id
        )
        if failed is not None:
            log.error("idempotency.release_failed", error_type=type(failed).__name__)


REPLAYED_HEADER = "Idempotent-Replayed"


class OpenAPIPlugin(BasePlugin):
    """Documents the header, and its 409 and 422 answers, on every POST operation."""

    def operation_helper(
        self, path: str | None = None, operations: dict[str, Any] | None = None, **_kw: Any
    ) -> None:
        post = (operations or {}).get("post")
        if post is None:
            return
        post.setdefault("parameters", []).append(
            {
                "in": "header",
                "name": HEADER,
                "required": False,
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                "description": (
                    "Makes a resend safe: the same key and body replay the first answer "
                    "(header Idempotent-Replayed: true); the same key with another body answers "
                    "422; a resend while the first is in progress answers 409. Kept at least "
                    "24 hours."
                ),
            }
        )
        responses = post.setdefault("responses", {})
        for code, response in responses.items():
            if str(code).startswith("2") and isinstance(response, dict):
                response.setdefault("headers", {})[REPLAYED_HEADER] = {
                    "description": "`true` when this answer is the replay of an earlier request "
                    "with the same Idempotency-Key (absent otherwise).",
                    "schema": {"type": "string", "enum": ["true"]},
                }
        responses.setdefault("409", "CONFLICT")
        responses.setdefault("422", "UNPROCESSABLE_ENTITY")


def document(spec: Any) -> None:
    """Add the header to the OpenAPI document; call before the blueprints are registered."""
    plugin = OpenAPIPlugin()
    plugin.init_spec(spec)
    spec.plugins.append(plugin)


def init_app(app: Flask) -> None:
    """Register the hooks last: they need the request id, and a body refused as not JSON
    must not claim a key."""
    app.before_request(_before)
    app.after_request(_after)
    app.teardown_request(_teardown)
