"""The FHIR R4 mapping: every resource, from any record the contract allows, validates."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.export import fhir
from tests.export.fhir_check import bundle_errors, fhir_errors

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
CTX = fhir.FhirContext(base_url="https://waymark.test/fhir", now=NOW)
DISCLOSED = fhir.FhirContext(base_url="https://waymark.test/fhir", now=NOW, disclosed=True)
SOWS_KEYS = [
    "anxious",
    "yawning",
    "perspiring",
    "tearing",
    "runny_nose",
    "goose_flesh",
    "shaking",
    "hot_flashes",
    "cold_flashes",
    "aches",
    "restless",
    "nauseous",
    "vomiting",
    "twitching",
    "stomach_cramps",
    "craving_use",
]
GOSSOP_KEYS = [f"item_{i}" for i in range(1, 11)]

aware = st.datetimes(
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive by design
    max_value=datetime(2090, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
).map(lambda d: d.replace(microsecond=0))
text = st.text(min_size=1, max_size=200).filter(lambda s: s.strip() == s and s)
ids = st.uuids().map(str)


@st.composite
def checkins(draw: Any) -> dict[str, Any]:
    instrument = draw(st.sampled_from([None, "sows", "sows-gossop"]))
    answers = None
    total = None
    if instrument == "sows":
        answers = {k: draw(st.integers(0, 4)) for k in SOWS_KEYS}
    elif instrument == "sows-gossop":
        answers = {k: draw(st.integers(0, 3)) for k in GOSSOP_KEYS}
    if answers:
        total = sum(answers.values())
    recorded = draw(aware)
    return {
        "id": draw(ids),
        "recorded_at": recorded.isoformat(),
        "instrument": instrument,
        "instrument_version": draw(st.sampled_from([None, "1"])) if instrument else None,
        "answers": answers,
        "total": total,
        "severity": draw(st.sampled_from([None, "mild", "moderate", "severe"])),
        "symptoms": draw(
            st.none() | st.dictionaries(st.sampled_from(fhir.SYMPTOM_NAMES), st.integers(0, 10))
        ),
        "craving": draw(st.none() | st.integers(0, 10)),
        "sleep_hours": draw(
            st.none() | st.floats(0, 24, allow_nan=False).map(lambda f: round(f, 1))
        ),
        "note": draw(st.none() | text),
        "created_at": recorded.isoformat(),
        "updated_at": recorded.isoformat(),
    }


@st.composite
def medications(draw: Any) -> dict[str, Any]:
    start = draw(st.dates(date(2020, 1, 1), date(2030, 1, 1)))
    end = draw(st.none() | st.dates(start, date(2031, 1, 1)))
    as_needed = draw(st.booleans())
    times = (
        []
        if as_needed
        else sorted(set(draw(st.lists(st.times().map(lambda t: t.strftime("%H:%M")), max_size=4))))
    )
    archived = draw(st.none() | aware)
    active = archived is None and start <= NOW.date() and (end is None or end >= NOW.date())
    return {
        "id": draw(ids),
        "name": draw(st.sampled_from(["buprenorphine/naloxone", "methadone", "kratom"]) | text),
        "dose": draw(st.integers(1, 200) | st.floats(0.1, 200).map(lambda f: round(f, 2))),
        "unit": draw(st.sampled_from(["mg", "mcg", "ml", "tablet", "film", "g"])),
        "times": times,
        "days_of_week": draw(st.none() | st.lists(st.integers(1, 7), unique=True, min_size=1)),
        "start_date": start.isoformat(),
        "end_date": end.isoformat() if end else None,
        "as_needed": as_needed,
        "rxnorm_code": draw(st.none() | st.sampled_from(["1010600", "6813"])),
        "active": active,
        "archived_at": archived.isoformat() if archived else None,
        "created_at": NOW.isoformat(),
    }


@st.composite
def doses(draw: Any) -> dict[str, Any]:
    status = draw(st.sampled_from(["taken", "skipped"]))
    scheduled = draw(st.none() | aware)
    return {
        "id": draw(ids),
        "status": status,
        "scheduled_for": scheduled.isoformat() if scheduled else None,
        "taken_at": draw(aware).isoformat() if status == "taken" else None,
        "note": draw(st.none() | text),
        "created_at": draw(aware).isoformat(),
    }


@st.composite
def sessions(draw: Any) -> dict[str, Any]:
    return {
        "id": draw(ids),
        "kind": draw(st.sampled_from(["individual", "group", "peer_support", "family", "other"])),
        "title": draw(text),
        "starts_at": draw(aware).isoformat(),
        "duration_minutes": draw(st.integers(5, 480)),
        "provider_name": draw(st.none() | text),
        "location": draw(st.none() | text),
        "attendance": draw(st.sampled_from(list(fhir.APPOINTMENT_STATUS))),
        "created_at": NOW.isoformat(),
    }


@st.composite
def consents(draw: Any) -> dict[str, Any]:
    status = draw(st.sampled_from(["active", "expired", "revoked"]))
    signed = draw(aware)
    purpose = draw(st.sampled_from(list(fhir.PURPOSE_CODES)))
    expires = draw(st.none() | st.just(signed + timedelta(days=90)))
    if purpose != "treatment" and expires is None:
        expires = signed + timedelta(days=30)
    return {
        "id": draw(ids),
        "recipient_id": draw(ids),
        "recipient": {"display_name": draw(text)},
        "categories": draw(
            st.lists(
                st.sampled_from(["symptoms", "medications", "counseling"]), min_size=1, unique=True
            )
        ),
        "purpose": purpose,
        "share_weekly_summary": draw(st.booleans()),
        "expires_at": expires.isoformat() if expires else None,
        "signature": draw(text),
        "consent_text_version": "2026-01",
        "status": status,
        "signed_at": signed.isoformat(),
        "revoked_at": (signed + timedelta(days=1)).isoformat() if status == "revoked" else None,
    }


@st.composite
def disclosures(draw: Any) -> dict[str, Any]:
    start = draw(aware)
    return {
        "id": draw(ids),
        "at": draw(aware).isoformat(),
        "recipient": draw(st.sampled_from([{"display_name": "Dr. Ada"}, "Dr. Ada", {}])),
        "recipient_id": draw(st.none() | ids),
        "consent_id": draw(st.none() | ids),
        "kind": draw(st.sampled_from(["read", "summary", "export"])),
        "categories": draw(
            st.lists(
                st.sampled_from(["symptoms", "medications", "counseling"]), min_size=1, unique=True
            )
        ),
        "data_from": draw(st.none() | aware.map(datetime.isoformat)),
        "data_to": start.isoformat(),
    }


def _assert_valid(resources: list[dict[str, Any]]) -> None:
    for resource in resources:
        assert fhir_errors(resource) == [], resource


PATIENT = str(uuid.uuid4())


@settings(max_examples=60, deadline=None)
@given(checkin=checkins(), ctx=st.sampled_from([CTX, DISCLOSED]))
def test_checkin_resources_validate(checkin: dict[str, Any], ctx: fhir.FhirContext) -> None:
    resources = fhir.checkin_resources(checkin, ctx, patient_id=PATIENT)
    _assert_valid(resources)
    types = [r["resourceType"] for r in resources]
    if checkin["instrument"]:
        qr, score = resources[0], resources[1]
        assert types[:2] == ["QuestionnaireResponse", "Observation"]
        assert qr["status"] == "completed"
        assert score["valueInteger"] == checkin["total"]
        assert len(score["component"]) == len(checkin["answers"])
        assert score["category"][0]["coding"][0]["code"] == "survey"
        assert score["derivedFrom"] == [{"reference": f"QuestionnaireResponse/{checkin['id']}"}]
    else:
        assert "QuestionnaireResponse" not in types
    rated = checkin["symptoms"] or checkin["craving"] is not None
    rated = rated or checkin["sleep_hours"] is not None or checkin["note"]
    assert types.count("Observation") == bool(checkin["instrument"]) + bool(rated)
    if ctx.disclosed:
        assert all("42CFRPart2" in {s["code"] for s in r["meta"]["security"]} for r in resources)


@settings(max_examples=60, deadline=None)
@given(medication=medications(), dose_list=st.lists(doses(), max_size=3))
def test_medication_resources_validate(
    medication: dict[str, Any], dose_list: list[dict[str, Any]]
) -> None:
    statement = fhir.medication_statement(medication, CTX, patient_id=PATIENT)
    administrations = [
        fhir.medication_administration(d, medication, CTX, patient_id=PATIENT) for d in dose_list
    ]
    _assert_valid([statement, *administrations])
    for dose, admin in zip(dose_list, administrations, strict=True):
        assert admin["status"] == ("completed" if dose["status"] == "taken" else "not-done")
        assert admin["medicationCodeableConcept"]["text"] == medication["name"]


def test_medication_status_rules() -> None:
    base = {"id": "x", "name": "m", "dose": 8, "unit": "mg", "start_date": "2026-01-01"}
    assert fhir.medication_status({**base, "active": True}, NOW) == "active"
    ended = {**base, "active": False, "end_date": "2026-06-01"}
    assert fhir.medication_status(ended, NOW) == "completed"
    archived = {**base, "active": False, "archived_at": "2026-03-01T00:00:00+00:00"}
    assert fhir.medication_status(archived, NOW) == "stopped"
    late_archive = {**ended, "archived_at": "2026-07-01T00:00:00+00:00"}
    assert fhir.medication_status(late_archive, NOW) == "completed"
    future = {**base, "active": False, "start_date": "2027-01-01"}
    assert fhir.medication_status(future, NOW) == "intended"


def test_units_without_ucum_are_text_only() -> None:
    med = {"id": "x", "name": "m", "dose": 1, "unit": "film", "start_date": "2026-01-01"}
    dosage = fhir.medication_statement(med, CTX, patient_id=PATIENT)["dosage"][0]
    assert dosage["doseAndRate"][0]["doseQuantity"] == {"value": 1, "unit": "film"}
    mcg = fhir.medication_statement({**med, "unit": "mcg"}, CTX, patient_id=PATIENT)
    quantity = mcg["dosage"][0]["doseAndRate"][0]["doseQuantity"]
    assert quantity["system"] == fhir.UCUM and quantity["code"] == "ug"


@settings(max_examples=60, deadline=None)
@given(session=sessions())
def test_session_resources_validate(session: dict[str, Any]) -> None:
    resources = fhir.session_resources(session, CTX, patient_id=PATIENT)
    _assert_valid(resources)
    appointment = resources[0]
    assert appointment["status"] == fhir.APPOINTMENT_STATUS[session["attendance"]]
    if session["attendance"] == "attended":
        assert [r["resourceType"] for r in resources] == ["Appointment", "Encounter"]
        assert resources[1]["appointment"] == [{"reference": f"Appointment/{session['id']}"}]
    else:
        assert len(resources) == 1


@settings(max_examples=60, deadline=None)
@given(record=consents())
def test_consent_validates(record: dict[str, Any]) -> None:
    resource = fhir.consent(record, CTX, patient_id=PATIENT)
    _assert_valid([resource])
    assert resource["scope"]["coding"][0]["code"] == "patient-privacy"
    provision = resource["provision"]
    assert (
        provision["actor"][0]["reference"]["reference"] == f"Practitioner/{record['recipient_id']}"
    )
    assert provision["purpose"][0]["code"] == fhir.PURPOSE_CODES[record["purpose"]][0]
    expected = {t for c in record["categories"] for t in fhir.CATEGORY_TYPES[c]}
    assert {c["code"] for c in provision["class"]} == expected
    assert resource["status"] == ("active" if record["status"] == "active" else "inactive")


@settings(max_examples=40, deadline=None)
@given(disclosure=disclosures())
def test_audit_event_validates(disclosure: dict[str, Any]) -> None:
    resource = fhir.audit_event(disclosure, CTX, patient_id=PATIENT)
    _assert_valid([resource])
    assert resource["entity"][0]["what"] == {"reference": f"Patient/{PATIENT}"}


@settings(max_examples=20, deadline=None)
@given(
    checkin_list=st.lists(checkins(), max_size=4, unique_by=lambda c: c["id"]),
    session_list=st.lists(sessions(), max_size=3, unique_by=lambda s: s["id"]),
)
def test_bundle_validates(
    checkin_list: list[dict[str, Any]], session_list: list[dict[str, Any]]
) -> None:
    user = {"id": PATIENT, "display_name": "Ana", "email": "ana@example.test"}
    resources = [fhir.patient(user, CTX)]
    for checkin in checkin_list:
        resources += fhir.checkin_resources(checkin, CTX, patient_id=PATIENT)
    for session in session_list:
        resources += fhir.session_resources(session, CTX, patient_id=PATIENT)
    bundle = {**fhir.bundle_header("b1", CTX), "entry": list(fhir.bundle_entries(resources))}
    assert bundle_errors(bundle) == []


def test_patient_disclosed_copy_has_no_contact() -> None:
    user = {"id": PATIENT, "display_name": "Ana", "email": "ana@example.test"}
    assert "telecom" in fhir.patient(user, CTX)
    assert "telecom" not in fhir.patient(user, DISCLOSED, include_contact=False)


@pytest.mark.parametrize(
    "resource",
    [
        {"resourceType": "Observation", "id": "x", "status": "final"},  # no code
        {"resourceType": "Appointment", "id": "x", "status": "booked", "participant": []},
        {"resourceType": "Consent", "id": "x", "status": "done"},
    ],
)
def test_the_checker_catches_invalid_resources(resource: dict[str, Any]) -> None:
    assert fhir_errors(resource) != []


def test_no_invented_loinc_codes() -> None:
    """The only LOINC code we use is Patient Consent (59284-0); instruments use our CodeSystem."""
    checkin = {
        "id": str(uuid.uuid4()),
        "recorded_at": NOW.isoformat(),
        "instrument": "sows",
        "answers": dict.fromkeys(SOWS_KEYS, 1),
        "total": 16,
        "craving": 3,
    }
    codes = _codings(fhir.checkin_resources(checkin, CTX, patient_id=PATIENT))
    assert all(c["system"] != fhir.LOINC for c in codes)
    assert any(c["system"] == CTX.system("instruments") for c in codes)


def _codings(node: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if "system" in node and "code" in node:
            out.append(node)
        for value in node.values():
            out.extend(_codings(value))
    elif isinstance(node, list):
        for item in node:
            out.extend(_codings(item))
    return out


@given(
    source=st.uuids() | st.text(st.characters(blacklist_categories=("Cs",))),
    role=st.sampled_from(["score", "ratings", "encounter", "deleted"]),
)
def test_derived_ids_are_uuid5(source: Any, role: str) -> None:
    """The hand-spelled derived_id is exactly uuid.uuid5 (ids must not change between exports)."""
    assert fhir.derived_id(source, role) == str(uuid.uuid5(fhir.ID_NAMESPACE, f"{source}/{role}"))
