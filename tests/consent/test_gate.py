"""The consent gate's policy (api/consent/gate.py), in one file: who, which categories, which
window, revocation and expiry, and that its SQL and Python forms are one rule."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.checkins.models import Checkin
from api.consent import services
from api.consent.gate import CategoryNotConsented, Gate, Grant, JobGate, in_force, is_in_force
from api.consent.models import Consent, ConsentCategory
from api.errors import NotFound
from tests.consenting import sign

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pair(make_patient: Any, make_clinician: Any) -> tuple[Any, Any]:
    return make_patient(display_name="Pat"), make_clinician(display_name="Dr Lee")


def _grant(session: Session, clinician: Any, patient: Any, category: str, now: datetime) -> Grant:
    gate = Gate.open(session, clinician_id=clinician.id, now=now, patient_id=patient.id)
    return gate.grant(patient.id, category)


def test_gate_without_consent_the_patient_is_invisible(
    session: Session, pair: Any, make_clinician: Any
) -> None:
    patient, clinician = pair
    sign(session, patient=patient, clinician=make_clinician(), categories=["symptoms"])
    with pytest.raises(NotFound):
        _grant(session, clinician, patient, "symptoms", datetime.now(UTC))


def test_gate_names_the_missing_category(session: Session, pair: Any) -> None:
    patient, clinician = pair
    sign(session, patient=patient, clinician=clinician, categories=["symptoms"])
    with pytest.raises(CategoryNotConsented) as err:
        _grant(session, clinician, patient, "medications", datetime.now(UTC))
    assert err.value.status == 403
    assert err.value.extra == {"missing_category": "medications"}
    assert "medications" in err.value.detail


def test_gate_honours_expiry_to_the_second(session: Session, pair: Any) -> None:
    patient, clinician = pair
    consent = sign(session, patient=patient, clinician=clinician, now=T0, days=30)
    expires = consent.expires_at
    assert expires is not None
    grant = _grant(session, clinician, patient, "symptoms", expires - timedelta(seconds=1))
    assert grant.consent_id == consent.id
    assert (grant.window_from, grant.window_to) == (T0, expires - timedelta(seconds=1))
    with pytest.raises(NotFound):
        _grant(session, clinician, patient, "symptoms", expires)
    with pytest.raises(NotFound):  # nor before it was signed
        _grant(session, clinician, patient, "symptoms", T0 - timedelta(seconds=1))


def test_gate_window_starts_at_the_period_the_consent_names(session: Session, pair: Any) -> None:
    patient, clinician = pair
    since = T0 - timedelta(days=14)
    sign(session, patient=patient, clinician=clinician, now=T0, data_from=since)
    grant = _grant(session, clinician, patient, "symptoms", T0 + timedelta(days=1))
    assert grant.window_from == since
    assert grant.clip(since - timedelta(days=99), None) == (since, T0 + timedelta(days=1))


def test_gate_refuses_a_revoked_consent_at_once(session: Session, pair: Any) -> None:
    patient, clinician = pair
    consent = sign(session, patient=patient, clinician=clinician, now=T0)
    at = T0 + timedelta(hours=1)
    services.revoke_consent(session, patient_id=patient.id, consent_id=consent.id, now=at)
    with pytest.raises(NotFound):
        _grant(session, clinician, patient, "symptoms", at)


def test_covering_cites_the_newest_consent_in_force(
    session: Session, pair: Any, make_patient: Any
) -> None:
    patient, clinician = pair
    consent = sign(session, patient=patient, clinician=clinician, now=T0)
    gate = Gate.open(session, clinician_id=clinician.id, now=T0 + timedelta(hours=1))
    assert gate.covering(patient.id, {"symptoms"}).id == consent.id
    with pytest.raises(NotFound):
        gate.covering(patient.id, {"counseling"})
    with pytest.raises(NotFound):
        gate.covering(make_patient().id, {"symptoms"})


def test_a_row_without_a_time_is_refused(session: Session, pair: Any) -> None:
    """Derived rows and export rows the gate cannot place in time are never waved through."""
    patient, clinician = pair
    sign(session, patient=patient, clinician=clinician, now=T0)
    gate = Gate.open(session, clinician_id=clinician.id, now=T0 + timedelta(hours=1))
    assert gate.allows(patient.id, "symptoms", T0 + timedelta(minutes=1))
    assert not gate.allows(patient.id, "symptoms", None)
    assert not gate.allows(patient.id, None, T0 + timedelta(minutes=1))
    assert not gate.allows(patient.id, "counseling", T0 + timedelta(minutes=1))
    # A period is judged whole: one that began before the window is outside it.
    assert not gate.allows(
        patient.id, "symptoms", T0 - timedelta(minutes=1), T0 + timedelta(minutes=1)
    )


_times = st.integers(min_value=-5, max_value=5).map(lambda n: T0 + timedelta(seconds=n))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    expires=st.one_of(st.none(), st.integers(min_value=1, max_value=6)),
    revoked=st.one_of(st.none(), st.integers(min_value=0, max_value=6)),
    data_from=st.one_of(st.none(), st.integers(min_value=-6, max_value=0)),
    at=_times,
    row_at=_times,
)
def test_every_form_of_the_gate_is_one_rule(
    session: Session,
    pair: Any,
    expires: int | None,
    revoked: int | None,
    data_from: int | None,
    at: datetime,
    row_at: datetime,
) -> None:
    """grant, visible (SQL), allows (Python), the roster statement, in_force (SQL) and
    is_in_force (Python) agree on every consent, instant and row time."""
    patient, clinician = pair
    with session.begin_nested() as nested:
        consent = Consent(
            patient_id=patient.id,
            discloser="x",
            recipient_id=clinician.id,
            recipient_name="x",
            purpose="treatment",
            revocation_statement="x",
            signature="x",
            consent_text_version="x",
            signed_at=T0,
            data_from=T0 + timedelta(seconds=data_from) if data_from is not None else None,
            expires_at=T0 + timedelta(seconds=expires) if expires is not None else None,
            revoked_at=T0 + timedelta(seconds=revoked) if revoked is not None else None,
            category_rows=[ConsentCategory(category="symptoms")],
        )
        session.add(consent)
        checkin = Checkin(
            user_id=patient.id,
            recorded_at=row_at,
            recorded_offset_minutes=0,
            created_at=row_at,
            updated_at=row_at,
        )
        session.add(checkin)
        session.flush()
        gate = Gate.open(session, clinician_id=clinician.id, now=at)
        try:
            gate.grant(patient.id, "symptoms")
            allowed = True
        except NotFound:
            allowed = False
        assert allowed == is_in_force(consent, at)
        sql = session.scalar(select(Consent.id).where(Consent.id == consent.id, in_force(at)))
        assert (sql is not None) == allowed
        listed = session.scalar(gate.consents_stmt().where(Consent.id == consent.id))
        assert (listed is not None) == allowed
        visible = session.scalar(
            select(Checkin.id).where(
                Checkin.id == checkin.id,
                gate.visible(
                    patient_col=Checkin.user_id,
                    category_col="symptoms",
                    time_col=Checkin.recorded_at,
                ),
            )
        )
        assert (visible is not None) == gate.allows(patient.id, "symptoms", row_at)
        start = consent.data_from or consent.signed_at
        assert gate.allows(patient.id, "symptoms", row_at) == (allowed and start <= row_at <= at)
        assert (consent.id in JobGate.open(session, now=at).still_in_force([consent.id])) == allowed
        nested.rollback()


@given(
    start=st.one_of(st.none(), _times),
    end=st.one_of(st.none(), _times),
)
def test_clip_stays_inside_the_window(start: datetime | None, end: datetime | None) -> None:
    grant = Grant(
        patient_id=uuid.uuid4(),
        clinician_id=uuid.uuid4(),
        consent_id=uuid.uuid4(),
        category="symptoms",
        window_from=T0 - timedelta(seconds=2),
        window_to=T0 + timedelta(seconds=2),
    )
    lo, hi = grant.clip(start, end)
    assert grant.window_from <= lo <= hi <= grant.window_to
    if start is not None and grant.window_from <= start <= grant.window_to:
        assert lo == start


def test_job_gate_lists_patients_and_weekly_consents_in_force(
    session: Session, pair: Any, make_patient: Any
) -> None:
    patient, clinician = pair
    other = make_patient()
    sign(session, patient=patient, clinician=clinician, categories=["symptoms"], now=T0)
    weekly = sign(
        session,
        patient=other,
        clinician=clinician,
        categories=["counseling", "medications"],
        now=T0,
        share_weekly_summary=True,
    )
    gate = JobGate.open(session, now=T0 + timedelta(days=1))
    found = gate.patient_categories(after=None, limit=10)
    assert found == {patient.id: {"symptoms"}, other.id: {"counseling", "medications"}}
    assert list(found) == sorted(found)
    assert [c.id for c in gate.weekly_consents(after=None, limit=10)] == [weekly.id]
    assert gate.weekly_consents(after=None, limit=10)[0].categories == [
        "counseling",
        "medications",
    ]
    assert (
        JobGate.open(session, now=T0 + timedelta(days=31)).patient_categories(after=None, limit=10)
        == {}
    )


OLD_ENTRY_POINTS = (
    "require_active",
    "grants_in_force",
    "visible_clause",
    "hold_active",
    "active_for_clinician_stmt",
    "in_force_clause",
    "consents_in_force",
    "categories_in_force",
    "grants_for",
    "_ConsentRow",
)


def test_the_gate_is_the_only_way_in() -> None:
    """Nothing outside api/consent/gate.py decides who may see what: the old entry points and
    the copies of the grant choice are gone from the code base."""
    pattern = re.compile(r"\b(" + "|".join(OLD_ENTRY_POINTS) + r")\b")
    found = []
    for folder in ("api", "jobs", "bench", "scripts", "tests"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == Path(__file__).resolve():
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)
