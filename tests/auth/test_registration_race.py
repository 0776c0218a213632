"""Simultaneous registrations of one new address (a double tap, or two people racing): every
answer is the 202 a single registration gets, never a 409 that would tell the second caller the
address was just taken (issue 11 item 10). PostgreSQL: SQLite serializes writers up front."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from api.auth import services
from api.auth.models import EmailRequest, User
from api.notifications.models import Notification

RACERS = 4


@pytest.mark.postgres_only
@pytest.mark.parametrize("attempt", range(3))
def test_simultaneous_registrations_of_one_address_all_answer_202(
    app: Flask,
    committed_db: Engine,
    backend: str,
    attempt: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if backend != "postgresql":
        pytest.skip("real concurrent transactions are PostgreSQL's")
    # Each racer waits for the others after hashing the password, so all look the address up
    # before any of them has inserted it: the race a slow production hash leaves open anyway.
    hashed = threading.Barrier(RACERS)
    real_hash = services.hash_password

    def hash_then_wait(*args: Any, **kwargs: Any) -> str:
        digest = real_hash(*args, **kwargs)
        hashed.wait(timeout=30)
        return digest

    monkeypatch.setattr(services, "hash_password", hash_then_wait)
    email = f"racer{attempt}@example.test"
    body = {
        "email": email,
        "password": "correct horse battery",
        "display_name": "Racer",
        "timezone": "UTC",
    }
    barrier = threading.Barrier(RACERS)
    results: list[Any] = []

    def register(n: int) -> None:
        barrier.wait()
        # Each from its own address: one address's registrations queue on its throttle row.
        answer = app.test_client().post(
            "/v1/auth/register", json=body, environ_base={"REMOTE_ADDR": f"192.0.2.{n + 1}"}
        )
        results.append((answer.status_code, answer.json))

    threads = [threading.Thread(target=register, args=(n,)) for n in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [status for status, _ in results] == [202] * RACERS, results
    assert len({str(answer) for _, answer in results}) == 1  # the same body for all
    with committed_db.connect() as conn:
        (user_id,) = conn.execute(select(User.id).where(User.email == email)).one()
        # One verification link for the new account; the others told its owner by email.
        verify = conn.scalar(select(func.count()).select_from(EmailRequest))
        notices = conn.scalar(
            select(func.count()).select_from(Notification).where(Notification.user_id == user_id)
        )
    assert verify == 1
    assert notices == RACERS - 1
