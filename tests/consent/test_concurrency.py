"""Revocation against reads in flight, with real commits and threads: no read succeeds after the
revocation, and the ledger never shows a disclosure later than the revocation."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.engine import Engine

from api.alerts import services as alert_services
from api.auth import services as auth_services
from api.auth.models import AuthSession, User
from api.checkins import services as checkin_services
from api.consent.models import Consent
from api.disclosures.models import Disclosure
from api.security import issue_access_token, password_hasher
from tests.consenting import sign

READERS = 2


def _seed(app: Flask, now: datetime) -> dict[str, Any]:
    with app.app_context():
        session = app.extensions["db"].sessionmaker()
        users: dict[str, User] = {}
        for role in ("patient", "clinician"):
            users[role] = auth_services.create_user(
                session,
                email=f"{role}-{uuid.uuid4().hex[:8]}@example.test",
                password="correct horse battery",
                display_name=role,
                timezone="UTC",
                hasher=password_hasher(),
                role=role,
                organization="Clinic" if role == "clinician" else None,
            )
        session.commit()
        checkin_services.create_checkin(
            session,
            user_id=users["patient"].id,
            body={"id": None, "recorded_at": now - timedelta(hours=1), "craving": 4},
            now=now,
        )
        alert_services.raise_alert(
            session,
            patient_id=users["patient"].id,
            kind="craving_high",
            category="symptoms",
            episode_key="race",
            now=now - timedelta(hours=1),
        )
        headers = {}
        for role, user in users.items():
            login = AuthSession(user_id=user.id, created_at=now)
            session.add(login)
            session.commit()
            token = issue_access_token(
                user_id=user.id, role=user.role, session_id=login.id, now=now, ttl=3600
            )
            headers[role] = {"Authorization": f"Bearer {token}"}
        session.close()
        return {"users": users, "headers": headers}


def _sign(app: Flask, world: dict[str, Any]) -> uuid.UUID:
    """A fresh consent (symptoms), sharing the last two days, so the alert is in its window."""
    now = datetime.now(UTC)
    with app.app_context():
        session = app.extensions["db"].sessionmaker()
        patient = session.get(User, world["users"]["patient"].id)
        clinician = session.get(User, world["users"]["clinician"].id)
        consent = sign(
            session,
            patient=patient,
            clinician=clinician,
            categories=["symptoms"],
            now=now,
            data_from=now - timedelta(days=2),
        )
        session.close()
        return consent.id


def _race(
    app: Flask,
    world: dict[str, Any],
    read: Callable[[Any, dict[str, str]], tuple[int, bool]],
) -> tuple[list[tuple[float, bool]], float]:
    """Readers loop; the patient revokes after a few successful reads. Returns each read's
    (start time, returned data) and the time the revoke answered."""
    reads: list[tuple[float, bool]] = []
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []
    revoked_done: list[float] = []

    def reader() -> None:
        client = app.test_client()
        try:
            while not stop.is_set():
                started = time.monotonic()
                status, got_data = read(client, world["headers"]["clinician"])
                assert status < 500, status
                with lock:
                    reads.append((started, got_data))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=reader) for _ in range(READERS)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while sum(1 for _, ok in reads if ok) < 5 and time.monotonic() < deadline and not errors:
        time.sleep(0.005)
    client = app.test_client()
    response = client.post(
        f"/v1/consents/{world['consent_id']}/revoke", headers=world["headers"]["patient"]
    )
    revoked_done.append(time.monotonic())
    assert response.status_code == 200
    # Let the readers run a while after the revocation.
    while len([r for r in reads if r[0] > revoked_done[0]]) < 10 and time.monotonic() < deadline:
        time.sleep(0.005)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    if errors:
        raise errors[0]
    return reads, revoked_done[0]


def _check_ledger(app: Flask, world: dict[str, Any], successes: int) -> None:
    with app.app_context():
        session = app.extensions["db"].sessionmaker()
        consent = session.get(Consent, world["consent_id"])
        assert consent is not None and consent.revoked_at is not None
        stamps = list(
            session.scalars(select(Disclosure.at).where(Disclosure.consent_id == consent.id))
        )
        session.close()
    # Each read that returned data left exactly one ledger row, none after the revocation.
    assert len(stamps) == successes
    assert all(at <= consent.revoked_at for at in stamps)


def _read_alerts(world: dict[str, Any]) -> Callable[[Any, dict[str, str]], tuple[int, bool]]:
    def read(client: Any, headers: dict[str, str]) -> tuple[int, bool]:
        response = client.get("/v1/clinician/alerts", headers=headers)
        return response.status_code, bool(response.status_code == 200 and response.json["items"])

    return read


def _read_checkins(world: dict[str, Any]) -> Callable[[Any, dict[str, str]], tuple[int, bool]]:
    url = f"/v1/clinician/patients/{world['users']['patient'].id}/checkins"

    def read(client: Any, headers: dict[str, str]) -> tuple[int, bool]:
        response = client.get(url, headers=headers)
        assert response.status_code in (200, 404), response.status_code
        return response.status_code, response.status_code == 200

    return read


ROUNDS = 4


@pytest.mark.slow
@pytest.mark.parametrize("reader", [_read_checkins, _read_alerts], ids=["checkins", "alerts"])
def test_revoke_while_a_clinician_reads(
    app: Flask, committed_db: Engine, reader: Callable[..., Any]
) -> None:
    world = _seed(app, datetime.now(UTC))
    for _ in range(ROUNDS):  # the race is timing-bound: several rounds make a miss unlikely
        world["consent_id"] = _sign(app, world)
        reads, revoked = _race(app, world, reader(world))
        successes = sum(1 for _, ok in reads if ok)
        assert successes >= 5
        late = [started for started, ok in reads if ok and started > revoked]
        assert late == [], "a read that started after the revocation returned data"
        assert any(started > revoked for started, _ in reads)
        _check_ledger(app, world, successes)
