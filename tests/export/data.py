"""Realistic data for export tests, made through the public API (and the missed-dose job), with
canary values that must never survive an erasure or leak to the wrong recipient."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from api.instruments.services import list_instruments
from jobs import missed_doses


@dataclass
class Seeded:
    canaries: list[str]
    medication_ids: list[str] = field(default_factory=list)
    dose_ids: list[str] = field(default_factory=list)
    session_ids: list[str] = field(default_factory=list)
    checkin_ids: list[str] = field(default_factory=list)
    consent_ids: list[str] = field(default_factory=list)
    missed: int = 0


def _ok(resp: Any) -> dict[str, Any]:
    assert resp.status_code in (200, 201), (resp.status_code, resp.get_json())
    return resp.get_json()


def seed_patient_data(
    app: Flask,
    client: FlaskClient,
    session: Session,
    headers: dict[str, str],
    *,
    now: datetime | None = None,
    timezone: str = "America/New_York",
) -> Seeded:
    """A regimen with taken, skipped and missed doses, and two counseling sessions."""
    now = now or datetime.now(UTC)
    tag = uuid.uuid4().hex[:8]
    med_name = f"Medcanary{tag}"
    dose_note = f"Dosenote{tag}"
    session_note = f"Sessionnote{tag}"
    checkin_note = f"Checkinnote{tag}"
    device_token = f"Devicetoken{tag}"
    seeded = Seeded(canaries=[med_name, dose_note, session_note, checkin_note, device_token])

    sows = next(i for i in list_instruments() if i.code == "sows")
    for days_ago, body in (
        (
            3,
            {
                "instrument": "sows",
                "answers": {item.key: 2 for item in sows.items},
                "symptoms": {"nausea": 7, "insomnia": 4},
                "craving": 6,
                "sleep_hours": 4.5,
                "note": checkin_note,
            },
        ),
        (2, {"symptoms": {"anxiety": 3}}),
    ):
        recorded = (now - timedelta(days=days_ago)).astimezone(ZoneInfo(timezone))
        created = _ok(
            client.post(
                "/v1/checkins", json={"recorded_at": recorded.isoformat(), **body}, headers=headers
            )
        )
        seeded.checkin_ids.append(created["id"])

    start = (now - timedelta(days=4)).date()
    med = _ok(
        client.post(
            "/v1/medications",
            json={
                "name": med_name,
                "dose": 8,
                "unit": "mg",
                "times": ["08:00"],
                "start_date": start.isoformat(),
                "rxnorm_code": "1010600",
            },
            headers=headers,
        )
    )
    seeded.medication_ids.append(med["id"])
    # Dose times are local 08:00 in the user's zone.
    zone = ZoneInfo(timezone)
    day1 = datetime.combine(start + timedelta(days=1), time(8, 0), tzinfo=zone)
    day2 = datetime.combine(start + timedelta(days=2), time(8, 0), tzinfo=zone)
    taken = _ok(
        client.post(
            f"/v1/medications/{med['id']}/doses",
            json={
                "status": "taken",
                "scheduled_for": day1.isoformat(),
                "taken_at": (day1 + timedelta(minutes=10)).isoformat(),
                "note": dose_note,
            },
            headers=headers,
        )
    )
    skipped = _ok(
        client.post(
            f"/v1/medications/{med['id']}/doses",
            json={
                "status": "skipped",
                "scheduled_for": day2.isoformat(),
            },
            headers=headers,
        )
    )
    seeded.dose_ids += [taken["id"], skipped["id"]]
    with app.app_context():
        seeded.missed = missed_doses.run(
            session,
            now=now,
            window_minutes=app.config["ADHERENCE_ON_TIME_WINDOW_MINUTES"],
            lookback_days=app.config["MISSED_DOSES_LOOKBACK_DAYS"],
        )
    session.commit()

    _ok(
        client.post(
            "/v1/devices", json={"platform": "android", "token": device_token}, headers=headers
        )
    )
    _ok(
        client.post(
            "/v1/reminders",
            json={"kind": "checkin", "local_time": "09:00", "channels": ["push", "inbox"]},
            headers=headers,
        )
    )
    for attendance, note in (("attended", session_note), ("missed", None)):
        created = _ok(
            client.post(
                "/v1/counseling-sessions",
                json={
                    "kind": "individual",
                    "title": "Weekly session",
                    "starts_at": (now - timedelta(days=2)).isoformat(),
                    "duration_minutes": 50,
                    "provider_name": "Dr. Example",
                    "location": "Room 2",
                    "attendance": attendance,
                    "note": note,
                },
                headers=headers,
            )
        )
        seeded.session_ids.append(created["id"])
    return seeded
