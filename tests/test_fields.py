"""Shared fields: IANA zone names, HH:MM local times, aware date-times."""

from __future__ import annotations

import pytest
from marshmallow import Schema, ValidationError

from api.fields import AwareDateTime, LocalTime, TimeZoneName, time_zone_names


class Sample(Schema):
    zone = TimeZoneName()
    at = LocalTime()
    when = AwareDateTime()


@pytest.mark.parametrize("name", ["UTC", "America/New_York", "Asia/Kolkata", "Etc/GMT-2"])
def test_known_zones_are_accepted(name: str) -> None:
    assert Sample().load({"zone": name}) == {"zone": name}


@pytest.mark.parametrize(
    "name",
    [
        "localtime",  # the host's own zone, not a place
        "posix/Europe/Lisbon",  # present on some hosts only
        "right/UTC",
        "Factory",
        "Mars/Olympus",
        "../../etc/passwd",
        "/etc/localtime",
        "",
        "america/new_york",
    ],
)
def test_other_zone_names_are_refused(name: str) -> None:
    with pytest.raises(ValidationError) as raised:
        Sample().load({"zone": name})
    assert raised.value.messages == {"zone": ["Not a known IANA time zone name."]}


def test_zone_names_come_from_tzdata_not_the_host() -> None:
    names = time_zone_names()
    assert len(names) > 500
    assert "Europe/Lisbon" in names and "localtime" not in names


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("00:00", True),
        ("23:59", True),
        ("24:00", False),
        ("7:00", False),
        ("07:60", False),
        ("07:00:00", False),
    ],
)
def test_local_time(value: str, ok: bool) -> None:
    if ok:
        assert Sample().load({"at": value}) == {"at": value}
    else:
        with pytest.raises(ValidationError):
            Sample().load({"at": value})


def test_aware_datetime_requires_an_offset() -> None:
    assert Sample().load({"when": "2026-03-08T08:00:00-05:00"})["when"].utcoffset() is not None
    for naive in ("2026-03-08T08:00:00", "2026-03-08", "1700000000"):
        with pytest.raises(ValidationError):
            Sample().load({"when": naive})
