"""The agenda agrees with dose logging, the dose list and adherence, for users in several zones
across DST changes (hypothesis): the same doses, at the same instants, in the same states."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import time_machine
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.auth.models import User

# Each zone with days on which its clocks change in 2026 (and Kolkata, which has no DST).
DAYS = {
    "America/New_York": [date(2026, 3, 8), date(2026, 11, 1)],
    "Europe/London": [date(2026, 3, 29), date(2026, 10, 25)],
    "Australia/Sydney": [date(2026, 4, 5), date(2026, 10, 4)],
    "Asia/Kolkata": [date(2026, 3, 8)],
}
WALLS = ["00:30", "01:00", "01:30", "02:00", "02:30", "03:00", "08:00", "23:45"]
WINDOW = timedelta(minutes=60)


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    zone = draw(st.sampled_from(sorted(DAYS)))
    return {
        "zone": zone,
        "day": draw(st.sampled_from(DAYS[zone])),
        "times": draw(st.lists(st.sampled_from(WALLS), min_size=1, max_size=3, unique=True)),
        "hours_in": draw(st.integers(min_value=0, max_value=30)),  # "now", from the day's start
        "answers": draw(st.lists(st.sampled_from(["taken", "skipped", None]), max_size=3)),
    }


def _day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    def start(d: date) -> datetime:
        # Midnight exists on each of these days in these zones.
        return datetime.combine(d, time(0), tzinfo=zone).astimezone(UTC)

    return start(day), start(day + timedelta(days=1))


def _is_dose_time(instant: datetime, walls: list[str], zone: ZoneInfo) -> bool:
    """Oracle: the instant reads as one of the wall times, or it is the end of a gap that
    swallowed one (the wall clock jumped over that time just before it)."""
    wall = instant.astimezone(zone).time().replace(tzinfo=None)
    before = (instant - timedelta(seconds=1)).astimezone(zone).time().replace(tzinfo=None)
    stated = {time.fromisoformat(w) for w in walls}
    return wall in stated or any(before < t < wall for t in stated)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cases())
def test_agenda_agrees_with_doses_and_adherence(
    client: FlaskClient,
    make_patient: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
    case: dict[str, Any],
) -> None:
    zone = ZoneInfo(case["zone"])
    start, end = _day_bounds(case["day"], zone)
    now = start + timedelta(hours=case["hours_in"], minutes=7)
    with time_machine.travel(now, tick=False):
        user = make_patient(timezone=case["zone"])
        headers = auth_headers(user)
        medication = client.post(
            "/v1/medications",
            json={
                "name": "Buprenorphine",
                "dose": 8,
                "unit": "mg",
                "times": case["times"],
                "start_date": (case["day"] - timedelta(days=2)).isoformat(),
            },
            headers=headers,
        )
        assert medication.status_code == 201, medication.json
        med_id = medication.json["id"]
        day = case["day"].isoformat()

        first = client.get(f"/v1/agenda?date={day}", headers=headers)
        assert first.status_code == 200, first.json
        doses = first.json["doses"]
        instants = [datetime.fromisoformat(d["scheduled_for"]) for d in doses]
        # Every stated time gives exactly one dose that day, at a right instant.
        assert len(set(instants)) == len(instants)
        assert all(start <= at < end for at in instants)
        assert all(_is_dose_time(at, case["times"], zone) for at in instants)
        reachable = {
            t for t in case["times"] if any(_is_dose_time(at, [t], zone) for at in instants)
        }
        assert reachable == set(case["times"])

        # Log some of the doses whose time has come.
        logged: dict[str, str] = {}
        for dose, answer in zip(doses, case["answers"], strict=False):
            at = datetime.fromisoformat(dose["scheduled_for"])
            if answer is None or at > now:
                continue
            body: dict[str, Any] = {"status": answer, "scheduled_for": dose["scheduled_for"]}
            if answer == "taken":
                body["taken_at"] = dose["scheduled_for"]
            logged_dose = client.post(f"/v1/medications/{med_id}/doses", json=body, headers=headers)
            assert logged_dose.status_code == 201, logged_dose.json
            logged[dose["scheduled_for"]] = answer

        agenda = client.get(f"/v1/agenda?date={day}", headers=headers).json
        states = {d["scheduled_for"]: d["state"] for d in agenda["doses"]}
        for at_text, state in states.items():
            at = datetime.fromisoformat(at_text)
            if at_text in logged:
                assert state == logged[at_text]
            else:
                assert state == ("missed" if at <= now - WINDOW else "due"), (at, now)

        # The dose list shows the same logged and missed doses, at the same instants.
        window = {"from": start.isoformat(), "to": end.isoformat()}
        page = {**window, "limit": 100}
        listed = client.get("/v1/doses", query_string=page, headers=headers).json["items"]
        assert {(datetime.fromisoformat(d["scheduled_for"]), d["status"]) for d in listed} == {
            (datetime.fromisoformat(at), s) for at, s in states.items() if s != "due"
        }

        # Adherence over the same local day counts the same doses.
        answer = client.get("/v1/adherence", query_string=window, headers=headers)
        assert answer.status_code == 200, answer.json
        overall = answer.json
        counted = Counter(states.values())
        assert overall["overall"]["scheduled"] == len(states) - counted["due"]
        for state in ("taken", "skipped", "missed"):
            assert overall["overall"][state] == counted[state]
