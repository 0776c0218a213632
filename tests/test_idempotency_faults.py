"""Database outages around an Idempotency-Key (issue 15): every one answers 503 problem+json with
Retry-After, never 500, and no claim blocks a correct resend for more than a few seconds.

PostgreSQL is cut through a TCP proxy (tests/support/proxy.py), never stopped. The hook-level
cases also run on SQLite by making the claim's own transaction fail.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from api import create_app, idempotency
from api.checkins.models import Checkin
from api.idempotency import IdempotencyKey
from tests.conftest import TestConfig
from tests.support.proxy import TcpProxy
from tests.test_idempotency import _committed_patient, checkin_body, keyed


@pytest.fixture
def proxy(database_url: str, backend: str) -> Iterator[TcpProxy]:
    if backend != "postgresql":
        pytest.skip("the outage is cut between the app and PostgreSQL")
    proxied = TcpProxy.for_url(database_url)
    yield proxied
    proxied.close()


def _cut_after_the_view(app: Flask, endpoint: str, proxy: TcpProxy) -> None:
    view = app.view_functions[endpoint]

    def then_cut(*args: Any, **kwargs: Any) -> Any:
        answer = view(*args, **kwargs)  # the view ran and committed
        proxy.cut()  # ... and PostgreSQL goes away before the answer is stored
        return answer

    app.view_functions[endpoint] = then_cut


@pytest.mark.postgres_only
def test_an_outage_before_the_answer_is_stored_is_503_and_a_resend_succeeds(
    app: Flask, committed_db: Engine, database_url: str, proxy: TcpProxy
) -> None:
    headers = keyed(_committed_patient(app), "outage-1")
    body = checkin_body(id=str(uuid.uuid4()))  # a client id, as the app sends
    flaky = create_app(TestConfig(proxy.url(database_url)))
    _cut_after_the_view(flaky, "checkins.create_checkin", proxy)
    try:
        first = flaky.test_client().post("/v1/checkins", json=body, headers=headers)
        assert first.status_code == 503
        assert first.headers["Content-Type"] == "application/problem+json"
        assert first.headers["Retry-After"] == "5"
        assert first.json["status"] == 503
        proxy.restore()
        flaky.view_functions.pop("checkins.create_checkin")
        # The claim of the request that could not finish is free once its lease (no renewal
        # since) has run out: seconds, not a minute.
        later = datetime.now(UTC) + idempotency.IN_FLIGHT_LEASE + timedelta(seconds=1)
        with time_machine.travel(later, tick=False):
            resend = app.test_client().post("/v1/checkins", json=body, headers=headers)
        assert resend.status_code in (200, 201), resend.json  # 200: the client id was stored
        assert resend.json["id"] == body["id"]
        replay = app.test_client().post("/v1/checkins", json=body, headers=headers)
        assert replay.headers["Idempotent-Replayed"] == "true"
        with committed_db.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(Checkin)) == 1
    finally:
        flaky.extensions["db"].engine.dispose()


def test_the_lease_is_seconds() -> None:
    assert timedelta(seconds=10) >= idempotency.IN_FLIGHT_LEASE
    assert idempotency.IN_FLIGHT_LEASE.total_seconds() >= idempotency.RENEW_EVERY * 3


@pytest.mark.parametrize("step", ["complete", "release"])
def test_a_database_error_in_the_after_request_hook_is_503(
    app: Flask, committed_db: Engine, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    headers = keyed(_committed_patient(app), f"hook-{step}")
    # complete: a 201 to store; release: a 404 (not final: the claim is let go).
    path, body = (
        ("/v1/checkins", checkin_body())
        if step == "complete"
        else (f"/v1/consents/{uuid.uuid4()}/revoke", {})
    )

    def refuse(*_a: Any, **_kw: Any) -> None:
        raise OperationalError("UPDATE idempotency_keys", {}, Exception("server closed"))

    monkeypatch.setattr(idempotency, step, refuse)
    answer = app.test_client().post(path, json=body, headers=headers)
    assert answer.status_code == 503, answer.data
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert answer.headers["Retry-After"] == "5"


def test_a_live_request_renews_its_claim(app: Flask, committed_db: Engine) -> None:
    headers = keyed(_committed_patient(app), "renew-1")
    with app.test_request_context("/v1/checkins", method="POST", json={}, headers=headers):
        app.preprocess_request()  # claims the key
        state = idempotency.g.idempotency
        with committed_db.begin() as conn:
            conn.execute(
                IdempotencyKey.__table__.update().values(  # type: ignore[attr-defined]
                    locked_at=datetime.now(UTC) - timedelta(minutes=5)
                )
            )
        idempotency._Renewer.renew(app, [state.row_id])
        with committed_db.connect() as conn:
            locked_at = conn.scalar(select(IdempotencyKey.locked_at))
        assert locked_at is not None
        assert datetime.now(UTC) - locked_at < timedelta(seconds=5)
        idempotency._renewer.drop(state.row_id)
        idempotency.g.pop("idempotency")
