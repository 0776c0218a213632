"""Token rotation under concurrency: one refresh token, two workers at once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from api.auth import services
from api.auth.models import AuthSession
from api.ratelimit import DatabaseCounter
from api.security import password_hasher

TOKENS = services.TokenSettings(access_ttl=900, refresh_ttl=3600)
THROTTLE = services.ThrottleSettings(max_per_account=5, max_per_address=20, window=900)


def _in_app(app: Flask, func: Callable[[], Any]) -> Any:
    with app.app_context():
        return func()


def test_a_refresh_token_is_spent_once_even_when_raced(
    app: Flask, committed_db: Engine, backend: str
) -> None:
    factory = sessionmaker(bind=committed_db, expire_on_commit=False)
    now = datetime.now(UTC)
    with app.app_context(), factory() as session:
        services.create_user(
            session,
            email="race@example.test",
            password="correct horse battery",
            display_name="Race",
            timezone="UTC",
            hasher=password_hasher(),
        )
        pair = services.login(
            session,
            email="race@example.test",
            password="correct horse battery",
            address="127.0.0.1",
            now=now,
            hasher=password_hasher(),
            counter=DatabaseCounter(),
            throttle=THROTTLE,
            tokens=TOKENS,
        )
        session.commit()

    barrier = threading.Barrier(2)
    outcomes: list[str] = []
    lock = threading.Lock()

    def refresh() -> None:
        def run() -> str:
            with factory() as session:
                barrier.wait(timeout=10)
                try:
                    services.refresh(
                        session, refresh_token=pair.refresh_token, now=now, tokens=TOKENS
                    )
                    session.commit()
                    return "rotated"
                except services.PersistingUnauthorized:
                    session.commit()  # the family revocation is kept, as the route does
                    return "refused"

        result = _in_app(app, run)
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=refresh) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # Never two new pairs from one token.
    assert sorted(outcomes) == ["refused", "rotated"], backend
    with factory() as session:
        login = session.scalar(select(AuthSession))
        assert login is not None
        assert login.revoked_at is not None  # the second use revoked the whole login
        assert login.revoked_reason == "refresh_reuse"
