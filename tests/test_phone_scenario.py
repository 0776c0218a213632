"""Issue 3's "done when", end to end over HTTP: a scripted phone registers, fills a SOWS, logs doses
(on time, late, skipped, never), marks sessions, loses its connection, resends everything twice,
syncs, and sees one copy of each record and the adherence and attendance it can work out itself.

Every expected figure below is computed here from what the phone did, not copied from an answer.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from flask.testing import FlaskClient

ZONE = ZoneInfo("America/New_York")
# Wednesday 2026-06-10, 12:00 in New York: three whole local days (Sun-Tue) lie behind the phone.
NOW = datetime(2026, 6, 10, 12, 0, tzinfo=ZONE)
WINDOW = timedelta(minutes=60)  # ADHERENCE_ON_TIME_WINDOW_MINUTES, the default

Headers = dict[str, str]


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 6, day, hour, minute, tzinfo=ZONE)


class Phone:
    """Sends like the app does: its own ids, an Idempotency-Key on every POST, and a journal of
    every write so that it can send them all again after losing the connection."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.headers: Headers = {}
        self.journal: list[tuple[str, str, dict[str, Any], str | None]] = []

    def send(self, method: str, path: str, body: dict[str, Any], *, first: bool = True) -> Any:
        key = str(uuid.uuid4()) if method == "POST" and first else None
        if first:
            self.journal.append((method, path, body, key))
        headers = dict(self.headers)
        if key:
            headers["Idempotency-Key"] = key
        return self.client.open(path, method=method, json=body, headers=headers)

    def resend_everything(self) -> list[Any]:
        answers = []
        for method, path, body, key in self.journal:
            headers = dict(self.headers)
            if key:
                headers["Idempotency-Key"] = key
            answers.append(self.client.open(path, method=method, json=body, headers=headers))
            # And once more without the key, as a phone that lost the key with its outbox would:
            # the client id alone must still make it a no-op.
            if key:
                answers.append(
                    self.client.open(path, method=method, json=body, headers=self.headers)
                )
        return answers

    def get(self, path: str, **query: Any) -> Any:
        response = self.client.get(path, query_string=query, headers=self.headers)
        assert response.status_code == 200, response.json
        return response.json

    def sync(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Everything since the beginning, page by page, as the phone stores it."""
        store: dict[tuple[str, str], dict[str, Any]] = {}
        cursor = None
        while True:
            query: dict[str, Any] = {"limit": 7}  # small pages: several calls
            if cursor:
                query["since"] = cursor
            page = self.get("/v1/sync", **query)
            keys = [(c["type"], c["id"]) for c in page["changes"]]
            assert len(keys) == len(set(keys))
            for change in page["changes"]:
                if change["op"] == "upsert":
                    store[(change["type"], change["id"])] = change["data"]
                else:
                    store.pop((change["type"], change["id"]), None)
            cursor = page["cursor"]
            if not page["has_more"]:
                return store


@pytest.fixture
def phone(strict_client: FlaskClient) -> Any:
    # Every answer is also checked against the OpenAPI document, strictly: what the phone reads
    # is what a generated client would be told to expect.
    with time_machine.travel(NOW, tick=False):
        yield Phone(strict_client)


def test_a_scripted_phone_offline_resends_and_sync(phone: Phone) -> None:
    # Register and sign in.
    account = {
        "email": f"phone-{uuid.uuid4().hex[:8]}@example.test",
        "password": "correct horse battery",
        "display_name": "Sam",
        "timezone": "America/New_York",
    }
    assert phone.send("POST", "/v1/auth/register", account).status_code == 202
    token = phone.send("POST", "/v1/auth/token", {k: account[k] for k in ("email", "password")})
    assert token.status_code == 200
    phone.headers = {"Authorization": f"Bearer {token.json['access_token']}"}
    phone.journal.clear()  # the app does not replay sign-ups; the health writes are what matter

    # Fill a SOWS from the instrument the service serves.
    (sows,) = [i for i in phone.get("/v1/instruments")["items"] if i["code"] == "sows"]
    sows_answers = {item["key"]: n % (item["max"] + 1) for n, item in enumerate(sows["items"])}
    checkin = {
        "id": str(uuid.uuid4()),
        "recorded_at": local(9, 21, 15).isoformat(),
        "instrument": "sows",
        "answers": sows_answers,
        "symptoms": {"nausea": 3, "anxiety": 6},
        "craving": 4,
        "sleep_hours": 5.5,
        "note": "rough evening",
    }
    created = phone.send("POST", "/v1/checkins", checkin)
    assert created.status_code == 201
    assert created.json["total"] == sum(sows_answers.values())

    # Two regimens, and what the phone logged against their dose times.
    films = {
        "id": str(uuid.uuid4()),
        "name": "buprenorphine/naloxone",
        "dose": 8,
        "unit": "film",
        "times": ["08:00", "20:00"],
        "start_date": "2026-06-07",
    }
    kratom = {  # recorded as the user names it, without endorsement
        "id": str(uuid.uuid4()),
        "name": "kratom",
        "dose": 2,
        "unit": "g",
        "times": ["09:00"],
        "start_date": "2026-06-08",
    }
    for regimen in (films, kratom):
        assert phone.send("POST", "/v1/medications", regimen).status_code == 201
    # (medication, scheduled, status, taken_at); a scheduled time with no entry is never logged.
    logs = [
        (films, local(7, 8), "taken", local(7, 8, 10)),  # on time
        (films, local(7, 20), "taken", local(7, 21, 30)),  # late
        (films, local(8, 8), "skipped", None),
        (films, local(8, 20), "taken", local(8, 19, 40)),  # early, within the window
        (films, local(9, 8), "taken", local(9, 10)),  # late
        # films 06-09 20:00: never logged -> missed
        (kratom, local(8, 9), "taken", local(8, 9, 5)),
        # kratom 06-09 09:00: never logged -> missed
    ]
    dose_ids = []
    for regimen, scheduled, status, taken_at in logs:
        body: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "status": status,
            "scheduled_for": scheduled.isoformat(),
        }
        if taken_at:
            body["taken_at"] = taken_at.isoformat()
        answer = phone.send("POST", f"/v1/medications/{regimen['id']}/doses", body)
        assert answer.status_code == 201, answer.json
        dose_ids.append(body["id"])

    # Counseling: one attended, one missed, one cancelled, one still ahead.
    sessions = []
    for day, kind, attendance in [
        (7, "group", "attended"),
        (8, "individual", "missed"),
        (9, "peer_support", "cancelled"),
        (12, "individual", None),
    ]:
        body = {
            "id": str(uuid.uuid4()),
            "kind": kind,
            "title": f"{kind} session",
            "starts_at": local(day, 18).isoformat(),
            "duration_minutes": 60,
        }
        assert phone.send("POST", "/v1/counseling-sessions", body).status_code == 201
        sessions.append(body["id"])
        if attendance:
            marked = phone.send(
                "PUT", f"/v1/counseling-sessions/{body['id']}/attendance", {"status": attendance}
            )
            assert marked.status_code == 200

    # The connection drops before the answers arrive: the phone sends its whole outbox twice.
    for _ in range(2):
        for answer in phone.resend_everything():
            assert answer.status_code in (200, 201), answer.json

    # Sync: exactly one copy of each record, and nothing else of the phone's own making.
    store = phone.sync()
    kinds = Counter(kind for kind, _ in store)
    assert kinds["checkin"] == 1
    assert kinds["medication"] == 2
    assert kinds["counseling_session"] == 4
    logged = {key: data for key, data in store.items() if key[0] == "dose"}
    user_doses = {i: d for (_, i), d in logged.items() if d["source"] == "user"}
    assert set(user_doses) == set(dose_ids)
    # Any other dose rows are the service's own record of doses that were never logged.
    assert all(d["status"] == "missed" for d in logged.values() if d["source"] != "user")
    assert store[("checkin", checkin["id"])]["total"] == sum(sows_answers.values())
    attendance = {store[("counseling_session", s)]["attendance"] for s in sessions}
    assert attendance == {"attended", "missed", "cancelled", "scheduled"}

    # Adherence over the three whole days behind the phone (Sun 06-07 to Tue 06-09), worked out
    # from the schedule and the log above.
    start, end = date(2026, 6, 7), date(2026, 6, 10)
    report = phone.get(
        "/v1/adherence",
        **{
            "from": datetime(2026, 6, 7, tzinfo=ZONE).isoformat(),
            "to": datetime(2026, 6, 10, tzinfo=ZONE).isoformat(),
        },
    )
    assert report["on_time_window_minutes"] == WINDOW.total_seconds() / 60
    expected_overall = Counter[str]()
    covered_days = scheduled_days = 0
    for regimen in (films, kratom):
        first = date.fromisoformat(regimen["start_date"])
        slots = [
            datetime.combine(first + timedelta(days=n), time.fromisoformat(t), ZONE)
            for n in range((end - first).days)
            for t in regimen["times"]
            if start <= first + timedelta(days=n) < end
        ]
        by_slot = {s: (st, t) for r, s, st, t in logs if r is regimen}
        counts = Counter[str](scheduled=len(slots))
        days_taken = set()
        for slot in slots:
            status, taken_at = by_slot.get(slot, ("missed", None))
            counts[status] += 1
            if status == "taken":
                days_taken.add(slot.date())
                counts["taken_on_time"] += abs(taken_at - slot) <= WINDOW
        (item,) = [m for m in report["medications"] if m["medication_id"] == regimen["id"]]
        for field in ("scheduled", "taken", "taken_on_time", "skipped", "missed"):
            assert item[field] == counts[field], field
        days = {slot.date() for slot in slots}
        assert item["dose_adherence"] == round(counts["taken"] / counts["scheduled"], 4)
        assert item["pdc"] == round(min(1.0, len(days_taken) / len(days)), 4)
        expected_overall.update(counts)
        covered_days += len(days_taken)
        scheduled_days += len(days)
    overall = report["overall"]
    for field in ("scheduled", "taken", "taken_on_time", "skipped", "missed"):
        assert overall[field] == expected_overall[field], field
    assert overall["dose_adherence"] == round(
        expected_overall["taken"] / expected_overall["scheduled"], 4
    )
    # PDC is per medication, never pooled across medications (docs/medications.md).
    assert overall["pdc"] is None
    assert (covered_days, scheduled_days) == (4, 5)
    # The figures this script produces, spelled out once so a reader can check the arithmetic.
    assert (expected_overall["scheduled"], expected_overall["taken"]) == (8, 5)
    assert (expected_overall["taken_on_time"], expected_overall["missed"]) == (3, 2)

    # Attendance: attended / (attended + missed), the future session still scheduled.
    summary = phone.get("/v1/counseling/attendance")
    assert summary["counts"]["attended"] == 1
    assert summary["counts"]["missed"] == 1
    assert summary["counts"]["cancelled"] == 1
    assert summary["attendance_rate"] == 0.5

    # The lists agree with sync: one of each, no duplicates from the resends.
    assert len(phone.get("/v1/checkins")["items"]) == 1
    assert len(phone.get("/v1/medications")["items"]) == 2
    assert len(phone.get("/v1/counseling-sessions")["items"]) == 4
    listed = phone.get(
        "/v1/doses",
        **{"from": datetime(2026, 6, 7, tzinfo=ZONE).isoformat(), "to": NOW.isoformat()},
    )["items"]
    assert Counter(d["status"] for d in listed) == Counter(
        {
            "taken": 5,
            "skipped": 1,
            "missed": 2 + 2,
        }  # + both 06-10 morning doses, their windows over
    )
    assert len({d["id"] for d in listed}) == len(listed)
    assert datetime.fromisoformat(listed[0]["scheduled_for"]) <= NOW.astimezone(UTC)
