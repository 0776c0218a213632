"""The consent promise as a property (issue 11): for random patient histories, random consents
and a random change after derived records were made (alerts raised, a weekly summary delivered,
a bulk export finished), no clinician-facing read path (reads, alerts, roster counts, on-demand
and weekly summaries, bulk files) shows data outside the categories or the window of the consent
in force now, and nothing at all under a revoked or expired consent.

A seeded generator (the cases are database-heavy); every seed and change is its own case.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from api.alerts import services as alert_services
from api.checkins import services as checkins
from api.clinician import services as clinician
from api.consent import services as consent_services
from api.consent.gate import CategoryNotConsented
from api.counseling import services as counseling
from api.errors import AppError, NotFound
from api.export import services as export_services
from api.export.models import ExportJob
from api.instruments.definitions import INSTRUMENTS
from api.medications import services as medications
from api.summaries import services as summaries
from jobs import alerts as alert_job
from jobs import bulk_export
from tests.consenting import sign

T = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)  # a Tuesday: last week is Mar 2-9
ALL = ("symptoms", "medications", "counseling")
CHANGES = ("none", "revoke", "narrow_categories", "narrow_window", "expire")
SEEDS = (1, 2)
_DETAIL_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}")


@dataclass
class Case:
    patient: Any
    clinician: Any
    categories: set[str]  # what the consent in force now covers (empty: none in force)
    window_from: datetime | None


def _history(session: Session, rng: random.Random, patient: Any) -> None:
    """Check-ins (some severe), counseling sessions (some missed) and a daily regimen nobody
    answers, spread over the last 60 days."""
    answers = {item.key: item.max for item in INSTRUMENTS["sows"].items}
    for _ in range(8):
        at = T - timedelta(minutes=rng.randint(90, 60 * 24 * 60))
        body: dict[str, Any] = {"id": None, "recorded_at": at, "craving": rng.randint(0, 10)}
        if rng.random() < 0.5:
            body |= {"instrument": "sows", "answers": answers}
        checkins.create_checkin(session, user_id=patient.id, body=body, now=at)
    for _ in range(4):
        at = T - timedelta(minutes=rng.randint(90, 60 * 24 * 60))
        counseling.create_session(
            session,
            user_id=patient.id,
            body={
                "id": None,
                "kind": "individual",
                "title": "Session",
                "starts_at": at,
                "duration_minutes": 50,
                "provider_name": None,
                "location": None,
                "attendance": rng.choice(["attended", "missed"]),
                "note": None,
            },
            now=at,
        )
    start = (T - timedelta(days=rng.randint(3, 50))).date()
    medications.create_medication(
        session,
        user_id=patient.id,
        timezone="UTC",
        body={
            "id": None,
            "name": "Regimen",
            "dose": 8.0,
            "unit": "mg",
            "times": ["08:00"],
            "days_of_week": None,
            "start_date": start,
            "end_date": None,
            "as_needed": False,
            "rxnorm_code": None,
        },
        now=datetime.combine(start, datetime.min.time(), tzinfo=UTC) - timedelta(hours=1),
    )


@pytest.fixture(params=[(seed, change) for seed in SEEDS for change in CHANGES], ids=str)
def case(
    request: pytest.FixtureRequest,
    app: Flask,
    session: Session,
    make_patient: Callable[..., Any],
    make_clinician: Callable[..., Any],
    tmp_path: Path,
) -> tuple[Case, Path]:
    seed, change = request.param
    rng = random.Random(f"{seed}:{change}")
    patient, seen_by, everyone = make_patient(timezone="UTC"), make_clinician(), make_clinician()
    _history(session, rng, patient)
    # Another clinician sees everything, so derived records exist for the whole history.
    sign(session, patient=patient, clinician=everyone, categories=ALL, now=T - timedelta(days=70))
    categories = set(rng.sample(ALL, rng.randint(1, 3)))
    signed = T - timedelta(days=rng.randint(5, 40))
    data_from = signed - timedelta(days=rng.randint(0, 20)) if rng.random() < 0.5 else None
    consent = sign(
        session,
        patient=patient,
        clinician=seen_by,
        categories=sorted(categories),
        now=signed,
        data_from=data_from,
        days=(T - timedelta(minutes=30) - signed).total_seconds() / 86400
        if change == "expire"
        else None,
        purpose="treatment",
        share_weekly_summary=True,
    )
    # Derived records, made before the change.
    before = T - timedelta(hours=2)
    alert_job.evaluate_alerts(session, now=before, config=app.config)
    config = summaries.SummaryConfig.from_mapping(app.config)
    summaries.build_weekly_batch(session, now=before, config=config, after=None, limit=50)
    summaries.deliver_weekly_batch(session, now=before, limit=50)
    session.add(
        ExportJob(
            requester_id=seen_by.id,
            types=export_services.bulk_types(),
            request_url="x",
            created_at=before,
        )
    )
    session.commit()
    export_dir = tmp_path / "exports"
    with app.app_context():
        done = bulk_export.run_next_export(
            session,
            now=before,
            export_dir=str(export_dir),
            base_url=app.config["FHIR_BASE_URL"],
            ttl=app.config["BULK_EXPORT_TTL"],
        )
        session.commit()
    assert done is not None and done.status == "completed"
    # The change.
    window_from: datetime | None = data_from or signed
    at = T - timedelta(hours=1)
    if change in ("revoke", "expire"):
        if change == "revoke":
            consent_services.revoke_consent(
                session, patient_id=patient.id, consent_id=consent.id, now=at
            )
        categories, window_from = set(), None
    elif change == "narrow_categories":
        categories = set(rng.sample(sorted(categories), max(1, len(categories) - 1)))
        sign(
            session,
            patient=patient,
            clinician=seen_by,
            categories=sorted(categories),
            now=at,
            data_from=data_from,
            days=None,
            purpose="treatment",
        )
    elif change == "narrow_window":
        window_from = T - timedelta(days=2)
        sign(
            session,
            patient=patient,
            clinician=seen_by,
            categories=sorted(categories),
            now=at,
            data_from=window_from,
            days=None,
            purpose="treatment",
        )
    session.commit()
    return Case(patient, seen_by, categories, window_from), export_dir


def _after_window(case: Case, when: datetime | None, what: str) -> None:
    assert when is not None, what
    assert case.window_from is not None and case.window_from <= when <= T, (what, when)


def _details(case: Case, details: list[str], what: str) -> None:
    """Every time an alert's words name lies in the window (minutes: the window's minute)."""
    if not details:
        return
    assert case.window_from is not None, (what, details)
    floor = case.window_from.replace(second=0, microsecond=0)
    for detail in details:
        for text in _DETAIL_TIME.findall(detail):
            named = datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
            assert named >= floor, (what, detail)


def _check_reads(session: Session, case: Case) -> None:
    kw = {"clinician_id": case.clinician.id, "patient_id": case.patient.id, "now": T}
    page = {"from_": None, "to": None, "limit": 200, "cursor": None}
    reads: dict[str, tuple[Callable[..., Any], Callable[[Any], datetime | None]]] = {
        "symptoms": (clinician.read_checkins, lambda i: i.recorded_at),
        "counseling": (clinician.read_counseling_sessions, lambda i: i.starts_at),
        "medications": (
            lambda s, **a: clinician.read_doses(s, **a, medication_id=None, window_minutes=60),
            lambda i: i.taken_at or i.scheduled_for,
        ),
    }
    for category, (read, when) in reads.items():
        if not case.categories:
            with pytest.raises(NotFound):
                read(session, **kw, **page)
        elif category not in case.categories:
            with pytest.raises(CategoryNotConsented):
                read(session, **kw, **page)
        else:
            for item in read(session, **kw, **page)["items"]:
                _after_window(case, when(item), category)


def _check_alerts(session: Session, case: Case) -> None:
    shown = alert_services.list_alerts(
        session, clinician_id=case.clinician.id, state="all", limit=200, cursor=None, now=T
    )["items"]
    if not case.categories:
        assert shown == []
    for alert in shown:
        assert alert["category"] in case.categories
    _details(case, [a["detail"] or "" for a in shown], "alert")
    roster = clinician.roster(session, clinician_id=case.clinician.id, limit=50, cursor=None, now=T)
    counts = {i["patient_id"]: i["open_alerts"] for i in roster["items"]}
    if not case.categories:
        assert case.patient.id not in counts
    else:
        assert counts[case.patient.id] == len(shown)  # none acknowledged


def _summary_alerts(doc: dict[str, Any]) -> list[dict[str, Any]]:
    section = doc.get("sections", {}).get("alerts") or {}
    return list(section.get("items", []))


def _check_summaries(app: Flask, session: Session, case: Case) -> None:
    config = summaries.SummaryConfig.from_mapping(app.config)
    kw = {"clinician_id": case.clinician.id, "patient_id": case.patient.id, "now": T}
    if not case.categories:
        with pytest.raises(NotFound):
            summaries.on_demand_summary(session, start=None, end=None, config=config, **kw)
    else:
        doc = summaries.on_demand_summary(
            session, start=T - timedelta(days=60), end=T, config=config, **kw
        )
        items = _summary_alerts(doc)
        assert {a["category"] for a in items} <= case.categories
        _details(case, [a["detail"] for a in items], "summary alert")
        for category in set(ALL) - case.categories:
            assert doc["sections"][category]["status"] == "withheld"
    weekly = summaries.list_weekly_summaries(
        session, clinician_id=case.clinician.id, patient_id=None, limit=50, cursor=None, now=T
    )["items"]
    for row in weekly:
        # Readable only under the consent it was built for, still in force and unchanged.
        assert case.categories, "a weekly summary readable after revocation or expiry"
        doc = summaries.get_weekly_summary(
            session, clinician_id=case.clinician.id, summary_id=row.id, now=T, notice="n"
        )["content"]
        _details(case, [a["detail"] for a in _summary_alerts(doc)], "weekly alert")
        assert {a["category"] for a in _summary_alerts(doc)} <= case.categories


def _resource_time(resource: dict[str, Any]) -> datetime | None:
    """The time a bulk resource is about (a running regimen: now)."""
    rtype = resource["resourceType"]
    if rtype == "MedicationStatement":
        end = resource.get("effectivePeriod", {}).get("end")
        return T if end is None or resource.get("status") == "active" else _parse(end)
    for key in ("effectiveDateTime", "authored", "start", "occurrenceDateTime"):
        if key in resource:
            return _parse(resource[key])
    period = resource.get("period") or resource.get("effectivePeriod")
    return _parse(period["start"]) if period else None


def _parse(text: str) -> datetime:
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


_CATEGORY_OF = {
    "QuestionnaireResponse": "symptoms",
    "Observation": "symptoms",
    "MedicationStatement": "medications",
    "MedicationAdministration": "medications",
    "Appointment": "counseling",
    "Encounter": "counseling",
}


def _check_bulk(session: Session, case: Case, export_dir: Path) -> None:
    job = session.query(ExportJob).filter_by(requester_id=case.clinician.id).one()
    readable: list[str] = []
    try:
        export_services.recheck_bulk_export(
            session, requester=case.clinician, job_id=job.id, export_dir=export_dir, now=T
        )
        for output in job.output or []:
            chunks = export_services.bulk_file(
                session,
                requester=case.clinician,
                job_id=job.id,
                rtype=output["type"],
                export_dir=export_dir,
                now=T,
            )
            readable.append(b"".join(chunks).decode())  # the file's bytes, from its storage
    except AppError:
        readable = []
    if not case.categories:
        assert readable == []
        assert not list(export_dir.rglob("*.ndjson")), "files outlived the consent"
    for text in readable:
        for line in text.splitlines():
            resource = json.loads(line)
            category = _CATEGORY_OF.get(resource["resourceType"])
            if category is None:
                continue
            assert category in case.categories, resource["resourceType"]
            _after_window(case, _resource_time(resource), resource["resourceType"])


def test_no_clinician_path_shows_what_the_consent_in_force_does_not_cover(
    app: Flask, session: Session, case: tuple[Case, Path]
) -> None:
    current, export_dir = case
    _check_reads(session, current)
    _check_alerts(session, current)
    _check_summaries(app, session, current)
    _check_bulk(session, current, export_dir)
