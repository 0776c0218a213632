"""Regimens, dose logs, missed doses and adherence, through the service functions."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.auth.models import User
from api.errors import Conflict, NotFound, ValidationError
from api.fields import at_instant
from api.medications import queries, services
from api.medications.models import Dose, Medication, missed_dose_id
from api.sync.models import Change
from api.sync.services import LOADERS
from tests.medications.conftest import NOW
from tests.support.queries import TEST_TRANSACTION, count_queries


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# New York in June is UTC-4: 08:00 local = 12:00Z, 20:00 local = 00:00Z next day.
DAY_START = utc(2026, 6, 8, 4, 0)  # 2026-06-08 00:00 local
PERIOD_END = utc(2026, 6, 11, 4, 0)  # 2026-06-11 00:00 local


def scenario(make_medication: Callable[..., Medication], log: Callable[..., Any], user: User):
    """Twice daily from 2026-06-08; now is 2026-06-10 12:00 local, so five doses are due."""
    medication = make_medication(user)
    log(
        medication,
        status="taken",
        scheduled_for=utc(2026, 6, 8, 12),
        taken_at=utc(2026, 6, 8, 12, 10),
    )
    log(medication, status="skipped", scheduled_for=utc(2026, 6, 9, 0))
    log(
        medication,
        status="taken",
        scheduled_for=utc(2026, 6, 9, 12),
        taken_at=utc(2026, 6, 9, 14, 30),
    )
    # 2026-06-09 20:00 local (06-10 00:00Z) and 2026-06-10 08:00 local (12:00Z): no log, missed.
    return medication


def report(session: Session, user: User, **kw: Any) -> dict[str, Any]:
    kw.setdefault("start", DAY_START)
    kw.setdefault("end", PERIOD_END)
    return queries.adherence_report(session, user_id=user.id, now=kw.pop("now", NOW), **kw)


def test_adherence_counts_ratios_and_pdc(session, patient, make_medication, log) -> None:
    medication = scenario(make_medication, log, patient)
    result = report(session, patient)
    assert result["on_time_window_minutes"] == 60
    (item,) = result["medications"]
    assert item["medication_id"] == medication.id
    assert item["as_needed"] is False
    expected = {
        "scheduled": 5,
        "taken": 2,
        "taken_on_time": 1,
        "skipped": 1,
        "missed": 2,
        "dose_adherence": 0.4,
        "days_scheduled": 3,  # 06-08 (both doses), 06-09 (both), 06-10 (the 08:00 one so far)
        "days_covered": 2,
        # PDC: 2 days covered of 3 (06-08 to 06-10, the last settled day), per medication.
        "pdc_days": 3,
        "pdc": 0.6667,
    }
    assert {k: item[k] for k in expected} == expected
    # PDC is never pooled across medications: `overall` keeps the dose counts only.
    pooled = {k: v for k, v in expected.items() if k not in ("pdc", "pdc_days")}
    assert {k: result["overall"][k] for k in pooled} == pooled
    assert result["overall"]["pdc"] is None


def test_on_time_window_is_a_setting(session, patient, make_medication, log) -> None:
    scenario(make_medication, log, patient)
    result = report(session, patient, window_minutes=180)
    assert result["on_time_window_minutes"] == 180
    # The 06-09 dose taken 150 minutes late is on time now; the 06-10 08:00 dose (window until
    # 11:00Z+3h = 15:00Z, before 16:00Z) is still missed.
    assert result["overall"]["taken_on_time"] == 2
    assert result["overall"]["missed"] == 2


def test_a_dose_is_not_missed_before_its_window_closes(
    session, patient, make_medication, log
) -> None:
    scenario(make_medication, log, patient)
    early = report(session, patient, now=utc(2026, 6, 10, 12, 30))
    assert early["overall"]["scheduled"] == 4
    assert early["overall"]["missed"] == 1


def test_as_needed_is_listed_not_scored(session, patient, make_medication, log) -> None:
    scenario(make_medication, log, patient)
    kratom = make_medication(patient, name="kratom", dose=2, unit="g", times=[], as_needed=True)
    log(kratom, status="taken", taken_at=utc(2026, 6, 9, 18))
    log(kratom, status="taken", taken_at=utc(2026, 6, 10, 1))
    result = report(session, patient)
    item = next(i for i in result["medications"] if i["medication_id"] == kratom.id)
    assert item["as_needed"] is True
    assert item["taken"] == 2 and item["scheduled"] == 0
    assert item["dose_adherence"] is None and item["pdc"] is None
    assert result["overall"]["taken"] == 2  # the scheduled regimen only
    assert result["overall"]["scheduled"] == 5


def test_nothing_scheduled_gives_null_ratios(session, patient, make_medication) -> None:
    make_medication(patient, start_date=date(2026, 7, 1))
    result = report(session, patient)
    assert result["medications"] == []
    assert result["overall"]["scheduled"] == 0
    assert result["overall"]["dose_adherence"] is None and result["overall"]["pdc"] is None


def test_days_of_week_only_count_scheduled_days(session, patient, make_medication, log) -> None:
    # Mondays and Wednesdays only; 2026-06-08 is a Monday.
    medication = make_medication(patient, times=["09:00"], days_of_week=[3, 1])
    assert medication.days_of_week == [1, 3]
    log(medication, status="taken", scheduled_for=utc(2026, 6, 8, 13), taken_at=utc(2026, 6, 8, 13))
    result = report(session, patient)
    (item,) = result["medications"]
    assert (item["scheduled"], item["taken"], item["missed"]) == (2, 1, 1)
    # Monday's dose covers Monday and Tuesday (its supply lasts until the next dose day);
    # Wednesday's was missed: 2 of the 3 days from Monday to Wednesday.
    assert (item["days_scheduled"], item["days_covered"], item["pdc_days"]) == (2, 2, 3)
    assert item["pdc"] == 0.6667


def test_reads_are_the_same_whether_or_not_the_job_ran(
    session, patient, make_medication, log
) -> None:
    scenario(make_medication, log, patient)
    before_report = report(session, patient)
    before_list, _ = queries.list_doses(session, user_id=patient.id, now=NOW)
    before = [(d.id, d.status, d.scheduled_for, d.created_at) for d in before_list]

    assert services.mark_missed_doses(session, now=NOW) == 2
    session.commit()
    assert services.mark_missed_doses(session, now=NOW) == 0
    stored = session.scalar(select(func.count()).select_from(Dose).where(Dose.status == "missed"))
    assert stored == 2

    after_list, _ = queries.list_doses(session, user_id=patient.id, now=NOW)
    assert [(d.id, d.status, d.scheduled_for, d.created_at) for d in after_list] == before
    assert report(session, patient) == before_report


def test_user_log_replaces_the_stored_missed_row(session, patient, make_medication, log) -> None:
    medication = scenario(make_medication, log, patient)
    services.mark_missed_doses(session, now=NOW)
    session.commit()
    slot = utc(2026, 6, 10, 12)
    dose = log(medication, status="taken", scheduled_for=slot, taken_at=utc(2026, 6, 10, 15, 30))
    rows = session.scalars(select(Dose).where(Dose.scheduled_for == slot)).all()
    assert [(r.id, r.status, r.source) for r in rows] == [(dose.id, "taken", "user")]
    tombstone = session.scalar(
        select(Change)
        .where(Change.entity_id == missed_dose_id(medication.id, slot))
        .order_by(Change.seq.desc())
    )
    assert tombstone is not None and tombstone.op == "delete"
    overall = report(session, patient)["overall"]
    assert (overall["scheduled"], overall["taken"], overall["missed"]) == (5, 3, 1)


def test_second_user_log_for_a_dose_is_409(session, patient, make_medication, log) -> None:
    medication = scenario(make_medication, log, patient)
    first = session.scalar(select(Dose).where(Dose.scheduled_for == utc(2026, 6, 8, 12)))
    with pytest.raises(Conflict) as caught:
        log(medication, status="skipped", scheduled_for=utc(2026, 6, 8, 12))
    assert caught.value.extra == {"dose_id": str(first.id)}


def test_scheduled_for_must_be_a_dose_time_of_the_regimen(
    session, patient, make_medication, log
) -> None:
    medication = make_medication(patient)
    for wrong in (
        utc(2026, 6, 8, 12, 30),  # not a dose time
        utc(2026, 6, 7, 12),  # before start_date
        utc(2026, 6, 8, 12, 0, 1),  # a second off
    ):
        with pytest.raises(ValidationError) as caught:
            log(medication, status="skipped", scheduled_for=wrong)
        assert set(caught.value.errors) == {"scheduled_for"}
    with pytest.raises(ValidationError) as caught:
        log(medication, status="skipped")
    assert set(caught.value.errors) == {"scheduled_for"}
    # The same instant written with its local offset is the same dose.
    est = datetime.fromisoformat("2026-06-08T08:00:00-04:00")
    assert log(medication, status="skipped", scheduled_for=est).scheduled_for == utc(2026, 6, 8, 12)


def test_dst_dose_times_are_the_ones_the_user_expects(
    session, patient, make_medication, log
) -> None:
    # 02:30 does not exist in New York on 2026-03-08: that dose is at 03:00 EDT (07:00Z).
    medication = make_medication(patient, times=["02:30"], start_date=date(2026, 3, 7))
    now = utc(2026, 3, 9, 12)
    with pytest.raises(ValidationError):
        log(medication, now=now, status="skipped", scheduled_for=utc(2026, 3, 8, 7, 30))
    dose = log(medication, now=now, status="skipped", scheduled_for=utc(2026, 3, 8, 7))
    assert dose.scheduled_for == utc(2026, 3, 8, 7)
    result = report(session, patient, start=utc(2026, 3, 7, 5), end=utc(2026, 3, 10, 4), now=now)
    # 03-07 02:30 EST, 03-08 03:00 EDT, 03-09 02:30 EDT: one dose a day, three days.
    assert (result["overall"]["scheduled"], result["overall"]["days_scheduled"]) == (3, 3)


def test_taken_at_rules(session, patient, make_medication, log) -> None:
    medication = make_medication(patient)
    with pytest.raises(ValidationError) as caught:
        log(
            medication,
            status="taken",
            scheduled_for=utc(2026, 6, 10, 12),
            taken_at=NOW + timedelta(minutes=11),
        )
    assert set(caught.value.errors) == {"taken_at"}
    ok = log(
        medication,
        status="taken",
        scheduled_for=utc(2026, 6, 10, 12),
        taken_at=NOW + timedelta(minutes=9),
    )
    assert ok.taken_at == NOW + timedelta(minutes=9)


def test_as_needed_dose_rules(session, patient, make_medication, log) -> None:
    medication = make_medication(patient, name="lofexidine", times=[], as_needed=True)
    with pytest.raises(ValidationError) as caught:
        log(medication, status="skipped", scheduled_for=utc(2026, 6, 9, 12))
    assert set(caught.value.errors) == {"status", "scheduled_for"}
    dose = log(medication, status="taken", taken_at=utc(2026, 6, 9, 12))
    assert (dose.scheduled_for, dose.dose_at) == (None, utc(2026, 6, 9, 12))
    # As many as-needed doses as the user takes: no uniqueness on a missing scheduled_for.
    log(medication, status="taken", taken_at=utc(2026, 6, 9, 12))


def test_client_id_replay_and_mismatch(session, patient, make_medication, log) -> None:
    medication = make_medication(patient)
    dose_id = uuid.uuid4()
    body = {"id": dose_id, "status": "skipped", "scheduled_for": utc(2026, 6, 8, 12)}
    first = log(medication, **body)
    again, created = services.log_dose(
        session,
        user_id=patient.id,
        medication_id=medication.id,
        body={**body, "taken_at": None, "note": None},
        now=NOW,
    )
    assert (again.id, created) == (first.id, False)
    with pytest.raises(Conflict):
        log(medication, **{**body, "note": "changed"})
    assert session.scalar(select(func.count()).select_from(Dose)) == 1


def test_another_users_medication_is_not_found(
    session, patient, make_patient, make_medication, log
) -> None:
    other = make_patient()
    medication = make_medication(other)
    with pytest.raises(NotFound):
        services.log_dose(
            session,
            user_id=patient.id,
            medication_id=medication.id,
            body={"status": "skipped", "scheduled_for": utc(2026, 6, 8, 12)},
            now=NOW,
        )
    with pytest.raises(NotFound):
        queries.list_doses(session, user_id=patient.id, now=NOW, medication_id=medication.id)


def test_update_and_delete_dose(session, patient, make_medication, log) -> None:
    medication = scenario(make_medication, log, patient)
    services.mark_missed_doses(session, now=NOW)
    missed = session.get(Dose, missed_dose_id(medication.id, utc(2026, 6, 10, 12)))
    with pytest.raises(ValidationError) as caught:
        services.update_dose(
            session, user_id=patient.id, dose_id=missed.id, changes={"note": "x"}, now=NOW
        )
    assert set(caught.value.errors) == {"status"}
    with pytest.raises(ValidationError) as caught:
        services.update_dose(
            session, user_id=patient.id, dose_id=missed.id, changes={"status": "taken"}, now=NOW
        )
    assert set(caught.value.errors) == {"taken_at"}
    updated = services.update_dose(
        session,
        user_id=patient.id,
        dose_id=missed.id,
        changes={"status": "taken", "taken_at": utc(2026, 6, 10, 12, 20)},
        now=NOW,
    )
    assert (updated.status, updated.source) == ("taken", "user")
    assert report(session, patient)["overall"]["taken_on_time"] == 2

    services.delete_dose(session, user_id=patient.id, dose_id=missed.id, now=NOW)
    listed, _ = queries.list_doses(session, user_id=patient.id, now=NOW)
    again = next(d for d in listed if d.scheduled_for == utc(2026, 6, 10, 12))
    assert (again.id, again.status) == (missed.id, "missed")


def test_schedule_change_applies_from_now_and_keeps_history(
    session, patient, make_medication, log
) -> None:
    medication = scenario(make_medication, log, patient)
    changed = services.update_medication(
        session,
        user_id=patient.id,
        medication_id=medication.id,
        timezone=patient.timezone,
        changes={"times": ["09:00"]},
        now=NOW,
    )
    assert changed.times == ["09:00"] and changed.schedule_from == NOW
    # The two unlogged doses of the old schedule were stored as missed.
    stored = session.scalars(select(Dose.scheduled_for).where(Dose.source == "system")).all()
    assert sorted(stored) == [utc(2026, 6, 10, 0), utc(2026, 6, 10, 12)]
    later = utc(2026, 6, 12, 16)
    result = report(session, patient, end=utc(2026, 6, 13, 4), now=later)["overall"]
    # Old schedule: 5 doses up to now; new schedule: 06-11 and 06-12 at 09:00 local. The old
    # 20:00 doses after the change and the 08:00 ones are not counted, nor doubled.
    assert (result["scheduled"], result["taken"], result["skipped"], result["missed"]) == (
        7,
        2,
        1,
        4,
    )
    assert result["days_scheduled"] == 5


def test_zone_change_keeps_past_doses_at_their_instants(
    session, patient, make_medication, log
) -> None:
    scenario(make_medication, log, patient)
    patient.timezone = "America/Los_Angeles"
    session.commit()
    later = utc(2026, 6, 12, 20)
    stored = services.mark_missed_doses(session, now=later)
    session.commit()
    # Up to the change (noticed by the job at `later`), the New York doses without a log are
    # stored: 06-10 00:00Z and 12:00Z, 06-11 00:00Z and 12:00Z, 06-12 00:00Z and 12:00Z.
    assert stored == 6
    medication = session.scalars(select(Medication)).one()
    assert (medication.schedule_timezone, medication.schedule_from) == (
        "America/Los_Angeles",
        later,
    )
    result = report(session, patient, end=utc(2026, 6, 14, 7), now=utc(2026, 6, 14, 7))["overall"]
    # From `later` on, Los Angeles times: 06-12 20:00 PDT (06-13 03:00Z), 06-13 08:00 PDT
    # (15:00Z), 06-13 20:00 PDT (06-14 03:00Z). 3 logged + 6 stored + 3 new, nothing twice.
    assert (result["scheduled"], result["taken"], result["skipped"], result["missed"]) == (
        12,
        2,
        1,
        9,
    )


def test_date_correction_drops_system_rows_outside(session, patient, make_medication, log) -> None:
    medication = scenario(make_medication, log, patient)
    services.mark_missed_doses(session, now=NOW)
    services.update_medication(
        session,
        user_id=patient.id,
        medication_id=medication.id,
        timezone=patient.timezone,
        changes={"end_date": date(2026, 6, 9)},
        now=NOW,
    )
    remaining = session.scalars(select(Dose.scheduled_for).where(Dose.source == "system")).all()
    assert remaining == [utc(2026, 6, 10, 0)]  # 06-09 20:00 local is within the dates
    overall = report(session, patient)["overall"]
    assert (overall["scheduled"], overall["missed"]) == (4, 1)
    with pytest.raises(ValidationError) as caught:
        services.update_medication(
            session,
            user_id=patient.id,
            medication_id=medication.id,
            timezone=patient.timezone,
            changes={"end_date": date(2026, 6, 1)},
            now=NOW,
        )
    assert set(caught.value.errors) == {"end_date"}


def test_archive_stops_the_schedule_and_keeps_history(
    session, patient, make_medication, log
) -> None:
    medication = scenario(make_medication, log, patient)
    services.archive_medication(session, user_id=patient.id, medication_id=medication.id, now=NOW)
    services.archive_medication(
        session, user_id=patient.id, medication_id=medication.id, now=NOW + timedelta(days=1)
    )
    assert medication.archived_at == NOW and not medication.is_active(NOW)
    result = report(session, patient, end=utc(2026, 6, 20, 4), now=utc(2026, 6, 20, 4))["overall"]
    assert result["scheduled"] == 5
    with pytest.raises(Conflict):
        services.update_medication(
            session,
            user_id=patient.id,
            medication_id=medication.id,
            timezone=patient.timezone,
            changes={"dose": 4},
            now=NOW,
        )
    page, _ = services.list_medications(session, user_id=patient.id)
    assert page == []
    page, _ = services.list_medications(session, user_id=patient.id, include_archived=True)
    assert [m.id for m in page] == [medication.id]


def test_active_is_derived_from_dates_in_the_users_zone(session, patient, make_medication) -> None:
    medication = make_medication(patient, start_date=date(2026, 6, 11), end_date=date(2026, 6, 12))
    assert not medication.is_active(utc(2026, 6, 11, 3, 59))  # 06-10 23:59 in New York
    assert medication.is_active(utc(2026, 6, 11, 4, 0))
    assert medication.is_active(utc(2026, 6, 13, 3, 59))
    assert not medication.is_active(utc(2026, 6, 13, 4, 0))


def test_adherence_query_count_does_not_grow_with_the_period(
    session, patient, make_medication, log
) -> None:
    scenario(make_medication, log, patient)
    make_medication(
        patient, name="methadone", dose=60, unit="mg", times=["07:00"], start_date=date(2025, 6, 1)
    )
    now = utc(2026, 6, 10, 16)
    with count_queries(session, skip=TEST_TRANSACTION) as month:
        report(session, patient, start=now - timedelta(days=30), end=now)
    with count_queries(session, skip=TEST_TRANSACTION) as year:
        report(session, patient, start=now - timedelta(days=365), end=now)
    assert len(month) == len(year) == 2


def test_changes_are_recorded_and_loaders_dump_the_entities(
    session, patient, make_patient, make_medication, log
) -> None:
    medication = scenario(make_medication, log, patient)
    services.update_medication(
        session,
        user_id=patient.id,
        medication_id=medication.id,
        timezone=patient.timezone,
        changes={"dose": 12},
        now=NOW,
    )
    kinds = session.execute(
        select(Change.entity_type, Change.op)
        .where(Change.user_id == patient.id)
        .order_by(Change.seq)
    ).all()
    assert kinds[0] == ("medication", "upsert")
    assert kinds.count(("dose", "upsert")) == 3
    assert kinds[-1] == ("medication", "upsert")

    other_medication = make_medication(make_patient())
    dose_ids = list(session.scalars(select(Dose.id)))
    with count_queries(session, skip=TEST_TRANSACTION) as statements, at_instant(NOW):
        medications = LOADERS["medication"](
            session, patient.id, [medication.id, other_medication.id]
        )
        doses = LOADERS["dose"](session, patient.id, dose_ids)
    assert len(statements) == 2
    assert list(medications) == [medication.id]
    assert medications[medication.id]["dose"] == 12
    assert medications[medication.id]["times"] == ["08:00", "20:00"]
    assert set(doses) == set(dose_ids)
    assert {d["status"] for d in doses.values()} == {"taken", "skipped"}


def test_logging_after_a_zone_change_follows_the_new_zone_at_once(
    session, patient, make_medication, log
) -> None:
    medication = scenario(make_medication, log, patient)
    moved = utc(2026, 6, 10, 18)  # 11:00 in Los Angeles

    def log_in_la(**body: Any) -> Dose:
        dose, _ = services.log_dose(
            session,
            user_id=patient.id,
            medication_id=medication.id,
            body={"id": None, "taken_at": None, "note": None, **body},
            now=moved,
            timezone="America/Los_Angeles",
        )
        return dose

    # Tonight's 20:00 in Los Angeles (03:00Z): a dose time at once, no job run needed.
    log_in_la(status="skipped", scheduled_for=utc(2026, 6, 11, 3))
    # This morning's 08:00 New York dose, logged late: it replaces the row stored at the change.
    late = log_in_la(status="taken", scheduled_for=utc(2026, 6, 10, 12), taken_at=moved)
    assert late.source == "user"
    overall = report(session, patient, end=utc(2026, 6, 11, 7), now=utc(2026, 6, 11, 7))["overall"]
    assert (overall["scheduled"], overall["taken"], overall["skipped"], overall["missed"]) == (
        6,
        3,
        2,
        1,
    )
