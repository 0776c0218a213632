"""Concurrent identical resends of one dose (issue 15, PostgreSQL): every answer is the first
one's (201 once, then 200 with the same dose), and the sync feed gets one row for the dose."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from api.medications.models import Dose
from api.sync.models import Change
from tests.test_idempotency import _committed_patient


@pytest.mark.postgres_only
@pytest.mark.parametrize("attempt", range(3))
def test_concurrent_resends_of_a_dose_answer_like_the_first_and_feed_once(
    app: Flask, committed_db: Engine, backend: str, attempt: int
) -> None:
    if backend != "postgresql":
        pytest.skip("real concurrent transactions are PostgreSQL's")
    headers = _committed_patient(app)
    client = app.test_client()
    start = (datetime.now(UTC).date() - timedelta(days=3)).isoformat()
    med = client.post(
        "/v1/medications",
        json={"name": "m", "dose": 8, "unit": "mg", "times": ["08:00"], "start_date": start},
        headers=headers,
    )
    assert med.status_code == 201, med.json
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    body = {
        "id": str(uuid.uuid4()),
        "status": "taken",
        "scheduled_for": f"{yesterday.isoformat()}T08:00:00Z",
        "taken_at": f"{yesterday.isoformat()}T08:10:00Z",
    }
    url = f"/v1/medications/{med.json['id']}/doses"
    barrier = threading.Barrier(4)
    results: list[Any] = []

    def resend() -> None:
        barrier.wait()
        answer = app.test_client().post(url, json=body, headers=headers)
        results.append((answer.status_code, answer.json))

    threads = [threading.Thread(target=resend) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 200, 200, 201], results
    assert {answer["id"] for _, answer in results} == {body["id"]}
    with committed_db.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Dose)) == 1
        feed = conn.scalar(
            select(func.count())
            .select_from(Change)
            .where(Change.entity_type == "dose", Change.entity_id == uuid.UUID(body["id"]))
        )
        assert feed == 1
