"""Token rotation under concurrency: one refresh token, two workers at once."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.fernet import Fernet
from flask import Flask, current_app
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from api.auth import mfa, services
from api.auth.models import AuthSession
from api.db import OwnTransaction
from api.errors import Unauthorized
from api.ratelimit import DatabaseCounter
from api.security import password_hasher
from tests.support.transactions import own_transactions

TOKENS = services.TokenSettings(access_ttl=900, refresh_ttl=3600)
THROTTLE = services.ThrottleSettings(max_per_account=5, max_per_address=20, window=900)

# Nobody here enrolled a second factor; login still takes the keys.
BOX = mfa.SecretBox(keys=(Fernet.generate_key().decode(),))


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
        session.commit()  # as registration's route does, before any sign-in
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
            box=BOX,
            own_transaction=own_transactions(factory, request_session=session),
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
                        session,
                        refresh_token=pair.refresh_token,
                        now=now,
                        tokens=TOKENS,
                        own_transaction=own_transactions(factory, request_session=session),
                    )
                    session.commit()
                    return "rotated"
                except Unauthorized:
                    # Nothing is committed here: the revocation was, in its own transaction.
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


GRACE = services.TokenSettings(
    access_ttl=900, refresh_ttl=3600, reuse_grace=30, successor_key=b"k" * 32
)


def _signed_in(
    session: Any, now: datetime, tokens: services.TokenSettings, own: OwnTransaction
) -> Any:
    services.create_user(
        session,
        email="grace@example.test",
        password="correct horse battery",
        display_name="Grace",
        timezone="UTC",
        hasher=password_hasher(),
    )
    session.commit()  # as registration's route does, before any sign-in
    return services.login(
        session,
        email="grace@example.test",
        password="correct horse battery",
        address="127.0.0.1",
        now=now,
        hasher=password_hasher(),
        counter=DatabaseCounter(),
        throttle=THROTTLE,
        tokens=tokens,
        box=BOX,
        own_transaction=own,
    )


@pytest.mark.parametrize(
    ("tokens", "after", "replayed"),
    [
        (GRACE, 0, True),
        (GRACE, 30, True),
        (GRACE, 31, False),  # past the window: theft
        (dataclasses.replace(GRACE, reuse_grace=0), 0, False),  # the grace turned off
    ],
)
def test_reuse_within_the_grace_window_replays_the_successor(
    app: Flask, session: Any, tokens: services.TokenSettings, after: int, replayed: bool
) -> None:
    now = datetime.now(UTC)
    with app.app_context():
        _check_reuse(session, now, tokens, after, replayed)


def _check_reuse(
    session: Any, now: datetime, tokens: services.TokenSettings, after: int, replayed: bool
) -> None:
    # The short transactions are savepoints of the test's connection, as the routes' are.
    own = own_transactions(current_app.extensions["db"].sessionmaker)
    pair = _signed_in(session, now, tokens, own)
    rotated = services.refresh(
        session, refresh_token=pair.refresh_token, now=now, tokens=tokens, own_transaction=own
    )

    later = now + timedelta(seconds=after)
    if replayed:
        again = services.refresh(
            session, refresh_token=pair.refresh_token, now=later, tokens=tokens, own_transaction=own
        )
        assert again.refresh_token == rotated.refresh_token
        assert session.scalar(select(AuthSession.revoked_at)) is None
    else:
        with pytest.raises(Unauthorized):
            services.refresh(
                session,
                refresh_token=pair.refresh_token,
                now=later,
                tokens=tokens,
                own_transaction=own,
            )
        assert session.scalar(select(AuthSession.revoked_reason)) == "refresh_reuse"


def test_raced_refreshes_within_the_grace_window_share_one_successor(
    app: Flask, committed_db: Engine, backend: str
) -> None:
    factory = sessionmaker(bind=committed_db, expire_on_commit=False)
    now = datetime.now(UTC)
    with app.app_context(), factory() as session:
        pair = _signed_in(session, now, GRACE, own_transactions(factory, request_session=session))
        session.commit()
    barrier = threading.Barrier(2)
    successors: list[str] = []
    lock = threading.Lock()

    def refresh() -> None:
        def run() -> str:
            with factory() as session:
                barrier.wait(timeout=10)
                new = services.refresh(
                    session,
                    refresh_token=pair.refresh_token,
                    now=now,
                    tokens=GRACE,
                    own_transaction=own_transactions(factory, request_session=session),
                )
                session.commit()
                return new.refresh_token

        result = _in_app(app, run)
        with lock:
            successors.append(result)

    threads = [threading.Thread(target=refresh) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(successors) == 2 and successors[0] == successors[1], backend
    with factory() as session:
        assert session.scalar(select(AuthSession.revoked_at)) is None
