"""Idle pooled connections are pinged before use; recently used ones are not (no round trip)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from api import db


@pytest.mark.postgres_only
def test_a_connection_that_died_while_idle_is_replaced(
    database_url: str, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend != "postgresql":
        pytest.skip("a PostgreSQL backend is what dies")
    engine = db.make_engine(database_url, pool_size=1)
    pings: list[object] = []
    real_ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda c: pings.append(c) or real_ping(c))
    try:
        with engine.connect() as conn:
            first_pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()
        assert len(pings) == 1  # a new connection is checked once
        with engine.connect() as conn:  # used a moment ago: no ping
            assert conn.execute(sa.text("SELECT pg_backend_pid()")).scalar() == first_pid
        assert len(pings) == 1

        admin = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": first_pid})
        admin.dispose()

        later = db._monotonic() + db.PING_AFTER_IDLE + 1
        monkeypatch.setattr(db, "_monotonic", lambda: later)
        with engine.connect() as conn:  # idle long enough: pinged, found dead, replaced
            assert conn.execute(sa.text("SELECT pg_backend_pid()")).scalar() != first_pid
        assert len(pings) >= 2
    finally:
        engine.dispose()
