"""Check-in services: scoring on create and edit, time rules, offline resends, tombstones."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.checkins import services
from api.checkins.models import CONTENT_COLUMNS, Checkin
from api.errors import Conflict, NotFound, ValidationError
from api.instruments.definitions import SOWS, SOWS_GOSSOP
from api.sync.models import Change
from tests.support.queries import count_queries

NOW = datetime(2026, 3, 8, 15, 0, tzinfo=UTC)
EST = timezone(timedelta(hours=-5))


def sows(value: int = 1, **overrides: int) -> dict[str, int]:
    return {**{item.key: value for item in SOWS.items}, **overrides}


def gossop(value: int = 1) -> dict[str, int]:
    return {item.key: value for item in SOWS_GOSSOP.items}


def body(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "recorded_at": datetime(2026, 3, 8, 8, 0, tzinfo=EST),
        "instrument": "sows",
        "answers": sows(2, anxious=4),
    }
    data.update(overrides)
    return data


def create(session: Session, user: Any, **overrides: Any) -> Checkin:
    checkin, created = services.create_checkin(
        session, user_id=user.id, body=body(**overrides), now=NOW
    )
    assert created
    return checkin


def changes(session: Session, user: Any) -> list[tuple[uuid.UUID, str]]:
    rows = session.execute(
        select(Change.entity_id, Change.op).where(Change.user_id == user.id).order_by(Change.seq)
    )
    return [(r.entity_id, r.op) for r in rows]


def test_create_scores_and_keeps_the_offset(session: Session, patient: Any) -> None:
    checkin = create(session, patient, symptoms={"nausea": 3}, craving=6, sleep_hours=5.5)
    assert (checkin.total, checkin.severity) == (34, None)
    assert (checkin.instrument, checkin.instrument_version) == ("sows", SOWS.version)
    assert checkin.recorded_at == datetime(2026, 3, 8, 13, 0, tzinfo=UTC)
    assert checkin.recorded_offset_minutes == -300
    assert checkin.recorded_at_local.isoformat() == "2026-03-08T08:00:00-05:00"
    assert (checkin.craving, checkin.craving_scale) == (6, "0-10")
    assert changes(session, patient) == [(checkin.id, "upsert")]
    session.expire_all()
    stored = session.get(Checkin, checkin.id)
    assert stored is not None and stored.answers == sows(2, anxious=4)
    assert stored.recorded_at_local.utcoffset() == timedelta(hours=-5)


def test_gossop_and_instrumentless_checkins(session: Session, patient: Any) -> None:
    scored = create(session, patient, instrument="sows-gossop", answers=gossop(3))
    assert (scored.total, scored.severity) == (30, None)
    plain = create(session, patient, instrument=None, answers=None, note="slept badly")
    assert (plain.instrument, plain.total, plain.answers) == (None, None, None)


@pytest.mark.parametrize(
    ("when", "ok"),
    [
        (NOW + timedelta(minutes=10), True),
        (NOW + timedelta(minutes=10, seconds=1), False),
        (NOW - timedelta(days=400), True),
    ],
)
def test_recorded_at_at_most_ten_minutes_ahead(
    session: Session, patient: Any, when: datetime, ok: bool
) -> None:
    local = when.astimezone(timezone(timedelta(hours=9)))
    if ok:
        assert create(session, patient, recorded_at=local).recorded_at == when
        return
    with pytest.raises(ValidationError) as caught:
        create(session, patient, recorded_at=local)
    assert set(caught.value.errors or {}) == {"recorded_at"}


def test_an_offset_with_seconds_is_refused(session: Session, patient: Any) -> None:
    odd = datetime(2026, 3, 8, 8, 0, tzinfo=timezone(timedelta(hours=1, seconds=30)))
    with pytest.raises(ValidationError) as caught:
        create(session, patient, recorded_at=odd)
    assert set(caught.value.errors or {}) == {"recorded_at"}


def test_bad_answers_name_the_item_and_store_nothing(session: Session, patient: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        create(session, patient, answers=sows(1, yawning=9))
    assert set(caught.value.errors or {}) == {"answers.yawning"}
    assert session.scalar(select(func.count()).select_from(Checkin)) == 0


def test_an_empty_checkin_is_refused(session: Session, patient: Any) -> None:
    with pytest.raises(ValidationError):
        create(session, patient, instrument=None, answers=None, symptoms={}, note="")


def test_resend_with_the_same_id(session: Session, patient: Any, make_patient: Any) -> None:
    checkin_id = uuid.uuid4()
    first = create(session, patient, id=checkin_id)
    again, created = services.create_checkin(
        session, user_id=patient.id, body=body(id=checkin_id), now=NOW + timedelta(hours=2)
    )
    assert (again.id, created) == (first.id, False)
    assert changes(session, patient) == [(checkin_id, "upsert")]
    with pytest.raises(Conflict):
        services.create_checkin(
            session, user_id=patient.id, body=body(id=checkin_id, note="other"), now=NOW
        )
    with pytest.raises(Conflict):  # someone else's id: the same answer, nothing revealed
        services.create_checkin(
            session, user_id=make_patient().id, body=body(id=checkin_id), now=NOW
        )


def test_edit_rescored_and_consistent(session: Session, patient: Any) -> None:
    checkin = create(session, patient)
    later = NOW + timedelta(hours=1)

    def edit(**changes_: Any) -> Checkin:
        return services.update_checkin(
            session, user_id=patient.id, checkin_id=checkin.id, changes=changes_, now=later
        )

    assert edit(note="better").total == 34  # untouched answers keep their score
    assert edit(answers=sows(0)).total == 0
    assert edit(instrument="sows-gossop", answers=gossop(2)).total == 20
    with pytest.raises(ValidationError) as caught:
        edit(instrument="sows")  # other instrument, old answers: refused
    assert set(caught.value.errors or {}) == {"answers"}
    with pytest.raises(ValidationError) as caught:
        edit(answers=sows(1))  # SOWS answers for the stored SOWS-Gossop
    assert "answers.anxious" in (caught.value.errors or {})
    with pytest.raises(ValidationError):
        edit(answers=None)
    with pytest.raises(ValidationError):
        edit(instrument=None, answers=gossop(1))
    cleared = edit(instrument=None)
    assert (cleared.instrument, cleared.answers, cleared.total, cleared.severity) == (
        None, None, None, None,
    )  # fmt: skip
    with pytest.raises(ValidationError) as caught:
        edit(recorded_at=later + timedelta(minutes=11))
    assert set(caught.value.errors or {}) == {"recorded_at"}
    assert checkin.updated_at == later
    assert [op for _, op in changes(session, patient)] == ["upsert"] * 5


def test_delete_leaves_a_tombstone_without_health_values(session: Session, patient: Any) -> None:
    checkin = create(session, patient, id=uuid.uuid4(), note="private", symptoms={"anxiety": 7})
    services.delete_checkin(session, user_id=patient.id, checkin_id=checkin.id, now=NOW)
    session.commit()
    session.expire_all()
    stored = session.get(Checkin, checkin.id)
    assert stored is not None and stored.deleted_at == NOW
    assert all(getattr(stored, name) is None for name in CONTENT_COLUMNS)
    assert changes(session, patient) == [(checkin.id, "upsert"), (checkin.id, "delete")]
    # Deleting again is a no-op; reading, editing or resending the create is refused.
    services.delete_checkin(session, user_id=patient.id, checkin_id=checkin.id, now=NOW)
    assert len(changes(session, patient)) == 2
    with pytest.raises(NotFound):
        services.get_checkin(session, user_id=patient.id, checkin_id=checkin.id)
    with pytest.raises(NotFound):
        services.update_checkin(
            session, user_id=patient.id, checkin_id=checkin.id, changes={"note": "x"}, now=NOW
        )
    with pytest.raises(Conflict):
        services.create_checkin(
            session,
            user_id=patient.id,
            body=body(id=checkin.id, note="private", symptoms={"anxiety": 7}),
            now=NOW,
        )


def test_other_users_checkins_are_not_found(
    session: Session, patient: Any, make_patient: Any
) -> None:
    checkin = create(session, patient)
    other = make_patient()
    for call in (
        lambda: services.get_checkin(session, user_id=other.id, checkin_id=checkin.id),
        lambda: services.update_checkin(
            session, user_id=other.id, checkin_id=checkin.id, changes={"note": "x"}, now=NOW
        ),
        lambda: services.delete_checkin(session, user_id=other.id, checkin_id=checkin.id, now=NOW),
    ):
        with pytest.raises(NotFound):
            call()
    assert services.get_checkin(session, user_id=patient.id, checkin_id=checkin.id).note is None


def test_list_range_and_pages_newest_first(session: Session, patient: Any) -> None:
    base = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    made = [create(session, patient, recorded_at=base + timedelta(hours=6 * i)) for i in range(9)]
    made.append(create(session, patient, recorded_at=base + timedelta(hours=6 * 8)))  # a tie
    services.delete_checkin(session, user_id=patient.id, checkin_id=made[3].id, now=NOW)
    seen, cursor = [], None
    while True:
        page, cursor = services.list_checkins(
            session, user_id=patient.id, from_=None, to=None, limit=4, cursor=cursor
        )
        seen.extend(page)
        if cursor is None:
            break
    assert len(seen) == 9 and made[3] not in seen
    keys = [(c.recorded_at, c.id) for c in seen]
    assert keys == sorted(keys, reverse=True)
    window, _ = services.list_checkins(
        session,
        user_id=patient.id,
        from_=base + timedelta(hours=6),
        to=base + timedelta(hours=18),
        limit=50,
        cursor=None,
    )
    assert [c.id for c in window] == [made[2].id, made[1].id]  # from inclusive, to exclusive
    with pytest.raises(ValidationError):
        services.list_checkins(
            session, user_id=patient.id, from_=NOW, to=base, limit=50, cursor=None
        )


def test_the_sync_loader_is_one_query(session: Session, patient: Any, make_patient: Any) -> None:
    mine = [create(session, patient, note=f"n{i}") for i in range(12)]
    theirs = create(session, make_patient())
    services.delete_checkin(session, user_id=patient.id, checkin_id=mine[0].id, now=NOW)
    session.flush()
    with count_queries(session) as statements:
        loaded = services.load_checkins(session, patient.id, [c.id for c in mine] + [theirs.id])
    assert len(statements) == 1
    assert set(loaded) == {c.id for c in mine[1:]}
    assert loaded[mine[5].id]["note"] == "n5"
    assert loaded[mine[5].id]["recorded_at"] == "2026-03-08T08:00:00-05:00"


def test_a_new_check_in_and_its_feed_row_are_one_statement_on_postgresql(
    session: Session, patient: Any, backend: str
) -> None:
    """The hot write path: the feed row rides in the check-in's INSERT (SQLite: two)."""
    session.flush()
    # Not the test's own transaction (SAVEPOINT, RELEASE).
    with count_queries(session, skip=("SAVEPOINT", "RELEASE")) as statements:
        checkin = create(session, patient, note="x")
        again, created = services.create_checkin(
            session, user_id=patient.id, body=body(id=checkin.id, note="x"), now=NOW
        )
    expected_writes = 1 if backend == "postgresql" else 2
    # The resend: the insert that finds the id taken, then the read of the stored row.
    assert len(statements) == expected_writes + 2
    assert not created and again.id == checkin.id
    assert changes(session, patient) == [(checkin.id, "upsert")]  # one change, none for the resend
