"""Fields and base schemas every feature shares: strict input, aware times, IANA zones, HH:MM."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import RAISE, Schema, ValidationError, fields

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class StrictSchema(Schema):
    """Input schemas refuse unknown fields, so `role`, `id` and the like cannot be smuggled in."""

    class Meta:
        unknown = RAISE


class AwareDateTime(fields.AwareDateTime):
    """RFC 3339 with an offset; a naive time is refused rather than guessed."""

    default_error_messages = {
        "invalid": "Not a valid RFC 3339 date-time.",
        "invalid_awareness": "The time must carry an offset, e.g. 2026-03-08T08:00:00-05:00.",
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="iso", **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> datetime:
        if isinstance(value, str) and not re.match(r"^\d{4}-\d{2}-\d{2}T", value):
            raise self.make_error("invalid")
        parsed = super()._deserialize(value, attr, data, **kwargs)
        try:
            # 0001-01-01T00:00+01:00 parses but has no UTC equivalent: refuse it here, not as a
            # 500 when it is stored or compared.
            parsed.astimezone(UTC)
        except OverflowError as exc:
            raise self.make_error("invalid") from exc
        return parsed


class TimeZoneName(fields.String):
    default_error_messages = {"invalid_zone": "Not a known IANA time zone name."}

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        name = super()._deserialize(value, attr, data, **kwargs)
        if not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
            raise self.make_error("invalid_zone")
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
            raise self.make_error("invalid_zone") from exc
        return name


class LocalTime(fields.String):
    """A local wall-clock time, "HH:MM" (24-hour)."""

    default_error_messages = {"invalid_time": "Use a 24-hour local time, HH:MM."}

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if not _HHMM.match(text):
            raise self.make_error("invalid_time")
        return text


def require_offset(value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError("The time must carry an offset.")
