"""The change feed: bulk loading, latest change per entity, per-user ordering of writers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from api.checkins import services as checkins
from api.instruments.definitions import SOWS
from api.sync import services as sync
from tests.support.queries import count_queries

NOW = datetime(2026, 3, 8, 12, 0, tzinfo=UTC)


def make_checkins(session: Session, user: Any, n: int) -> list[Any]:
    body = {"instrument": "sows", "answers": {i.key: 2 for i in SOWS.items}}
    return [
        checkins.create_checkin(
            session,
            user_id=user.id,
            body={**body, "recorded_at": NOW - timedelta(minutes=i)},
            now=NOW,
        )[0]
        for i in range(n)
    ]


def test_a_page_costs_the_same_queries_for_5_or_60_entities(
    session: Session, make_patient: Any
) -> None:
    small, large = make_patient(), make_patient()
    make_checkins(session, small, 5)
    made = make_checkins(session, large, 60)
    for checkin in made[:20]:
        checkins.update_checkin(
            session, user_id=large.id, checkin_id=checkin.id, changes={"note": "x"}, now=NOW
        )
    session.flush()
    with count_queries(session.connection()) as small_statements:
        page_small = sync.changes_since(session, user_id=small.id, since=None, limit=500)
    with count_queries(session.connection()) as large_statements:
        page_large = sync.changes_since(session, user_id=large.id, since=None, limit=500)
    q_small, q_large = len(small_statements), len(large_statements)
    assert (len(page_small.changes), len(page_large.changes)) == (5, 60)
    assert q_small == q_large == 2  # the feed page, then one load per entity type


def test_only_the_latest_change_per_entity_is_kept(session: Session, patient: Any) -> None:
    first, second = make_checkins(session, patient, 2)
    checkins.update_checkin(
        session, user_id=patient.id, checkin_id=first.id, changes={"note": "v2"}, now=NOW
    )
    checkins.delete_checkin(session, user_id=patient.id, checkin_id=second.id, now=NOW)
    page = sync.changes_since(session, user_id=patient.id, since=None, limit=500)
    assert [(c.id, c.op) for c in page.changes] == [(first.id, "upsert"), (second.id, "delete")]
    assert page.changes[0].data is not None and page.changes[0].data["note"] == "v2"


def test_an_upsert_whose_entity_is_gone_waits_for_its_tombstone(
    session: Session, patient: Any
) -> None:
    (checkin,) = make_checkins(session, patient, 1)
    checkins.delete_checkin(session, user_id=patient.id, checkin_id=checkin.id, now=NOW)
    first = sync.changes_since(session, user_id=patient.id, since=None, limit=1)
    assert (first.changes, first.has_more) == ([], True)
    second = sync.changes_since(session, user_id=patient.id, since=first.cursor, limit=1)
    assert [(c.id, c.op) for c in second.changes] == [(checkin.id, "delete")]
    assert second.has_more is False


@pytest.mark.postgres_only
def test_writers_of_one_users_feed_take_turns(backend: str, committed_db: Engine, app: Any) -> None:
    """Seqs of one user must commit in order, or a reader could skip past an uncommitted one."""
    if backend != "postgresql":
        pytest.skip("SQLite serializes every writer already")
    user_id = uuid.uuid4()
    other_id = uuid.uuid4()
    with committed_db.begin() as conn:
        for uid in (user_id, other_id):
            conn.execute(
                sa.text(
                    "INSERT INTO users (id, email, password_hash, display_name, role, timezone,"
                    " discreet_notifications, created_at, updated_at) VALUES (:id, :email, 'x',"
                    " 'x', 'patient', 'UTC', false, now(), now())"
                ),
                {"id": uid, "email": f"{uid.hex[:8]}@example.test"},
            )
    first = Session(committed_db)
    second = Session(committed_db)
    try:
        sync.record_change(
            first, user_id=user_id, entity_type="checkin", entity_id=uuid.uuid4(),
            op="upsert", now=NOW,
        )  # fmt: skip
        first.flush()
        second.execute(sa.text("SET lock_timeout = '300ms'"))
        # Another user's feed is not held up...
        sync.record_change(
            second, user_id=other_id, entity_type="checkin", entity_id=uuid.uuid4(),
            op="upsert", now=NOW,
        )  # fmt: skip
        second.flush()
        # ...but the same user's next writer waits for the first to commit.
        with pytest.raises(OperationalError, match="lock timeout"):
            sync.record_change(
                second, user_id=user_id, entity_type="checkin", entity_id=uuid.uuid4(),
                op="upsert", now=NOW,
            )  # fmt: skip
    finally:
        second.rollback()
        second.close()
        first.rollback()
        first.close()


@pytest.mark.postgres_only
def test_a_create_that_writes_its_feed_row_in_the_insert_takes_the_feed_lock(
    backend: str, committed_db: Engine, app: Any
) -> None:
    """create_once(feed=...) writes the change in the INSERT itself: it must take the user's
    feed lock all the same, or its seq could commit before an earlier writer's."""
    if backend != "postgresql":
        pytest.skip("SQLite serializes every writer already")
    user_id = uuid.uuid4()
    with committed_db.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO users (id, email, password_hash, display_name, role, timezone,"
                " discreet_notifications, created_at, updated_at) VALUES (:id, :email, 'x',"
                " 'x', 'patient', 'UTC', false, now(), now())"
            ),
            {"id": user_id, "email": f"{user_id.hex[:8]}@example.test"},
        )
    first = Session(committed_db)
    second = Session(committed_db)
    try:
        sync.record_change(
            first, user_id=user_id, entity_type="checkin", entity_id=uuid.uuid4(),
            op="upsert", now=NOW,
        )  # fmt: skip
        first.flush()
        second.execute(sa.text("SET lock_timeout = '300ms'"))
        with pytest.raises(OperationalError, match="lock timeout"):
            make_checkins(second, SimpleNamespace(id=user_id), 1)
    finally:
        second.rollback()
        second.close()
        first.rollback()
        first.close()
