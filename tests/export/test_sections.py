"""Every feature's data in every export format: shapes equal the API's, FHIR validates, no N+1."""

from __future__ import annotations

import csv
import io
import json
import uuid
import zipfile
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth.models import User
from api.checkins.models import Checkin
from api.checkins.schemas import CheckinSchema
from api.counseling.models import CounselingSession
from api.counseling.schemas import CounselingSessionSchema
from api.export.sections import Window, all_sections
from api.export.writers import dumps, public
from api.fields import at_instant
from api.medications.models import Dose, Medication
from api.medications.schemas import DoseSchema, MedicationSchema
from api.summaries.models import WeeklySummary
from jobs import weekly_summaries
from tests.consenting import sign
from tests.export.data import seed_patient_data
from tests.export.fhir_check import bundle_errors
from tests.support.queries import count_queries


def _normal(value: Any) -> Any:
    return json.loads(dumps(value))


def _section(name: str) -> Any:
    return next(s for s in all_sections() if s.name == name)


def test_records_have_the_api_shape(
    app: Flask,
    client: FlaskClient,
    session: Session,
    patient: User,
    patient_headers: dict[str, str],
) -> None:
    seeded = seed_patient_data(app, client, session, patient_headers)
    pairs = [
        ("checkins", Checkin, CheckinSchema()),
        ("medications", Medication, MedicationSchema()),
        ("doses", Dose, DoseSchema()),
        ("counseling_sessions", CounselingSession, CounselingSessionSchema()),
    ]
    now = datetime.now(UTC)
    for name, model, schema in pairs:
        records = [
            public(r) for _pid, r in _section(name).rows(session, [patient.id], Window(now=now))
        ]
        assert records, name
        for record in records:
            obj = session.get(model, uuid.UUID(str(record["id"])))
            with at_instant(now):  # the API judges `active` at the instant its route passes in
                dumped = schema.dump(obj)
            assert _normal(record) == _normal(dumped), name
    doses = [
        r
        for _pid, r in _section("doses").rows(session, [patient.id], Window(now=datetime.now(UTC)))
    ]
    assert Counter(r["status"] for r in doses)["missed"] == seeded.missed > 0


def test_own_export_holds_every_feature(
    app: Flask,
    client: FlaskClient,
    session: Session,
    patient_headers: dict[str, str],
) -> None:
    seeded = seed_patient_data(app, client, session, patient_headers)
    body = json.loads(client.get("/v1/export", headers=patient_headers).get_data())
    assert [c["id"] for c in body["checkins"]] == seeded.checkin_ids
    assert body["checkins"][0]["recorded_at"].endswith(("-05:00", "-04:00"))
    assert [m["id"] for m in body["medications"]] == seeded.medication_ids
    assert set(seeded.dose_ids) <= {d["id"] for d in body["doses"]}
    assert sorted(s["id"] for s in body["counseling_sessions"]) == sorted(seeded.session_ids)
    assert all("_medication" not in d for d in body["doses"])
    assert {r["kind"] for r in body["reminders"]} == {"checkin", "medication"}
    assert [d["platform"] for d in body["devices"]] == ["android"]
    assert seeded.canaries[4] not in json.dumps(body)  # the push token is never exported
    assert body["inbox"] == []

    archive = zipfile.ZipFile(
        io.BytesIO(client.get("/v1/export?format=csv", headers=patient_headers).get_data())
    )
    doses = list(csv.DictReader(io.StringIO(archive.read("doses.csv").decode())))
    assert len(doses) == len(body["doses"])
    assert {d["medication_name"] for d in doses} == {body["medications"][0]["name"]}
    readme = archive.read("README.txt").decode()
    for name in ("medications.csv", "doses.csv", "counseling_sessions.csv"):
        assert name in archive.namelist() and name in readme

    bundle = json.loads(client.get("/v1/export?format=fhir", headers=patient_headers).get_data())
    assert bundle_errors(bundle) == []
    types = Counter(e["resource"]["resourceType"] for e in bundle["entry"])
    assert types["QuestionnaireResponse"] == 1
    assert types["Observation"] == 3  # one score, two ratings
    checkins = list(csv.DictReader(io.StringIO(archive.read("checkins.csv").decode())))
    assert [c["symptom_nausea"] for c in checkins] == ["7", ""]
    assert types["MedicationStatement"] == 1
    assert types["MedicationAdministration"] == len(body["doses"])
    assert types["Appointment"] == 2
    assert types["Encounter"] == 1  # only the attended session
    # The own export keeps the counseling note; statuses follow the doses.
    appointments = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Appointment"
    ]
    assert any(a.get("comment") == seeded.canaries[2] for a in appointments)
    statuses = Counter(
        e["resource"]["status"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "MedicationAdministration"
    )
    assert statuses["completed"] == 1
    assert statuses["not-done"] == len(body["doses"]) - 1


def test_queries_do_not_grow_with_the_data(
    app: Flask,
    client: FlaskClient,
    session: Session,
    make_patient: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
) -> None:
    """One query per section, whatever the number of records (no N+1)."""
    counts = []
    for rounds in (1, 3):
        user = make_patient()
        headers = auth_headers(user)
        for _ in range(rounds):
            seed_patient_data(app, client, session, headers)
        with count_queries(session, only="SELECT") as statements:
            assert client.get("/v1/export?format=fhir", headers=headers).status_code == 200
        counts.append(len(statements))
    assert counts[0] == counts[1]
    assert counts[0] <= len(all_sections()) + 6  # + auth, rate counter


def test_nothing_of_another_user(
    app: Flask,
    client: FlaskClient,
    session: Session,
    make_patient: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
) -> None:
    ana, ben = make_patient(), make_patient()
    ben_data = seed_patient_data(app, client, session, auth_headers(ben))
    for fmt in ("json", "csv", "fhir"):
        data = client.get(f"/v1/export?format={fmt}", headers=auth_headers(ana)).get_data()
        if fmt == "csv":
            archive = zipfile.ZipFile(io.BytesIO(data))
            data = b"".join(archive.read(n) for n in archive.namelist())
        text = data.decode()
        assert str(ben.id) not in text
        assert not any(c in text for c in ben_data.canaries)
    assert session.scalars(select(Medication).where(Medication.user_id == ana.id)).all() == []


def test_own_export_holds_the_weekly_summaries_about_the_user(
    app: Flask,
    client: FlaskClient,
    session: Session,
    make_patient: Callable[..., User],
    make_clinician: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
) -> None:
    """Every weekly summary built about the user, with its recipient and status; a delivered
    one's document is the one its clinician reads (less the redisclosure notice)."""
    now = datetime.now(UTC)
    clinician = make_clinician()
    people = [make_patient(), make_patient()]
    consents = []
    for person in people:
        seed_patient_data(app, client, session, auth_headers(person), now=now)
        consents.append(
            sign(
                session,
                patient=person,
                clinician=clinician,
                categories=["symptoms", "medications", "counseling"],
                now=now - timedelta(days=20),
                days=120,
                share_weekly_summary=True,
            )
        )
    assert weekly_summaries.build_weekly_summaries(session, now=now, config=app.config) == 2
    sent = weekly_summaries.deliver_weekly_summaries(session, now=now, config=app.config)
    assert sent["delivered"] == 2
    user = people[0]
    (delivered,) = session.scalars(select(WeeklySummary).where(WeeklySummary.patient_id == user.id))
    cancelled = WeeklySummary(
        consent_id=consents[0].id,
        patient_id=user.id,
        clinician_id=clinician.id,
        week_start=delivered.week_start - timedelta(days=7),
        period_from=delivered.period_from - timedelta(days=7),
        period_to=delivered.period_to - timedelta(days=7),
        status="cancelled",
        content=None,
        built_at=delivered.built_at - timedelta(days=7),
        cancelled_at=delivered.built_at - timedelta(days=7),
    )
    session.add(cancelled)
    session.commit()

    headers = auth_headers(user)
    body = json.loads(client.get("/v1/export", headers=headers).get_data())
    records = body["weekly_summaries"]
    assert [r["id"] for r in records] == [str(cancelled.id), str(delivered.id)]
    assert records[0]["status"] == "cancelled" and records[0]["content"] is None
    mine = records[1]
    assert mine["status"] == "delivered"
    assert mine["recipient_id"] == str(clinician.id)
    assert mine["recipient_name"] == consents[0].recipient_name
    read = client.get(f"/v1/clinician/summaries/{delivered.id}", headers=auth_headers(clinician))
    assert read.status_code == 200
    as_read = read.get_json()
    for key in ("id", "consent_id", "week_start", "from", "to", "built_at", "delivered_at"):
        assert _normal(mine[key]) == as_read[key], key
    assert mine["content"] == {
        k: v for k, v in as_read["content"].items() if k != "redisclosure_notice"
    }
    assert str(people[1].id) not in json.dumps(records)  # nothing about anyone else

    archive = zipfile.ZipFile(
        io.BytesIO(client.get("/v1/export?format=csv", headers=headers).get_data())
    )
    rows = list(csv.DictReader(io.StringIO(archive.read("weekly_summaries.csv").decode())))
    assert [r["status"] for r in rows] == ["cancelled", "delivered"]
    assert rows[0]["content"] == ""
    assert json.loads(rows[1]["content"]) == mine["content"]
    assert "weekly_summaries.csv" in archive.read("README.txt").decode()
    # No FHIR mapping (docs/fhir.md): the Bundle holds no summary.
    bundle = json.loads(client.get("/v1/export?format=fhir", headers=headers).get_data())
    assert str(delivered.id) not in json.dumps(bundle)
