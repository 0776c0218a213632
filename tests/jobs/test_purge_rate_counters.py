"""The rate-counter purge: it deletes only windows that are over for every key, and is scheduled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.ratelimit import DatabaseCounter, RateCounter
from jobs.__main__ import build_scheduler
from jobs.purge_rate_counters import longest_window, purge

NOW = datetime(2026, 3, 8, 12, 0, tzinfo=UTC)


def test_purge_keeps_every_live_window(session: Session, app: Flask) -> None:
    config = app.config
    longest = longest_window(config)
    assert longest >= config["EXPORT_RATE_WINDOW"] >= 1
    counter = DatabaseCounter()
    ages = {"old": longest + 1, "edge": longest, "live": longest - 1, "new": 0}
    for key, age in ages.items():
        counter.hit(session, key, window=longest, now=NOW - timedelta(seconds=age))

    assert purge(session, now=NOW, config=config) == 2
    assert sorted(session.scalars(select(RateCounter.key))) == ["live", "new"]
    # The live window still counts on: the purge lost no hit.
    assert counter.peek(session, "live", window=longest, now=NOW).count == 1
    assert purge(session, now=NOW, config=config) == 0


def test_the_longest_window_follows_the_settings(app: Flask) -> None:
    config = dict(app.config) | {"EXPORT_RATE_WINDOW": 86_400}
    assert longest_window(config) == 86_400


def test_the_scheduler_runs_the_purge_hourly(app: Flask) -> None:
    job = build_scheduler(app).get_job("purge_rate_counters")
    assert job is not None
    assert job.args[1] is purge
    assert job.trigger.interval == timedelta(hours=1)
