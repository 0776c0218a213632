"""Fields and base schemas every feature shares: strict input, aware times, IANA zones, HH:MM."""

from __future__ import annotations

import contextlib
import re
import unicodedata
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import cache, wraps
from importlib import resources
from typing import Any, TypedDict, TypeVar, cast

from marshmallow import RAISE, Schema, ValidationError, fields
from marshmallow.experimental.context import Context

_HHMM_PATTERN = r"^([01]\d|2[0-3]):[0-5]\d$"
_HHMM = re.compile(_HHMM_PATTERN)


def _with_doc(kwargs: dict[str, Any], **doc: Any) -> dict[str, Any]:
    """Default OpenAPI keywords for a field; a caller's own metadata wins."""
    kwargs["metadata"] = {**doc, **kwargs.get("metadata", {})}
    return kwargs


@cache
def time_zone_names() -> frozenset[str]:
    """The IANA zone names of the bundled tzdata package: the same on every machine, and never
    the host's own "localtime" or a "posix/" or "right/" variant that another host may lack."""
    names = resources.files("tzdata").joinpath("zones").read_text().split()
    return frozenset(names) - {"Factory"}


class _Instant(TypedDict):
    now: datetime


_InstantContext = Context[_Instant]
_View = TypeVar("_View", bound=Callable[..., Any])


def judged_at(clock: Callable[[], datetime]) -> Callable[[_View], _View]:
    """Run a view, and the dump of its answer, at one instant read once from `clock` (the
    route's): a field derived from time (a consent's status, a regimen's `active`) reads it with
    `instant()`, and the view passes `now=instant()` to its services, so what it wrote and what
    it answers agree. Placed above `@blp.response`, whose wrapper dumps the answer."""

    def decorate(view: _View) -> _View:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with _InstantContext({"now": clock()}):
                return view(*args, **kwargs)

        return cast("_View", wrapper)

    return decorate


def instant() -> datetime:
    """The instant of the enclosing `judged_at` (or `at_instant`). Raises LookupError outside
    one: a dump that would otherwise read the clock itself."""
    return _InstantContext.get()["now"]


def at_instant(now: datetime) -> contextlib.AbstractContextManager[Any]:
    """`judged_at` for code that dumps outside a view (tests, jobs): `with at_instant(now): ...`."""
    return _InstantContext({"now": now})


class StrictSchema(Schema):
    """Input schemas refuse unknown fields, so `role`, `id` and the like cannot be smuggled in."""

    class Meta:
        unknown = RAISE


# Every date and time a client sends is bounded: nothing of ours happened before 1900, and nothing
# is scheduled or expires more than a few years ahead. One row dated 0001-01-01 or 9999-12-31
# used to overflow date arithmetic (a 500 on every later read of the account, a crash of every
# job run) or expand a dose schedule over millennia. Input schemas use these two fields, never
# marshmallow's own, so the rule lives here once (tests/test_date_bounds.py walks the document).
EARLIEST_DATE = date(1900, 1, 1)
YEARS_AHEAD = 5


def latest_date(today: date | None = None) -> date:
    """The last date a client may send: YEARS_AHEAD years after today (UTC)."""
    today = today or datetime.now(UTC).date()
    return today + timedelta(days=365 * YEARS_AHEAD + YEARS_AHEAD // 4 + 1)


def _bounds_doc() -> dict[str, Any]:
    return {"x-earliest": EARLIEST_DATE.isoformat(), "x-years-ahead": YEARS_AHEAD}


def _out_of_bounds(day: date) -> bool:
    return not EARLIEST_DATE <= day <= latest_date()


_BOUNDS_MESSAGE = f"Must be between {EARLIEST_DATE.isoformat()} and {YEARS_AHEAD} years from today."


class AwareDateTime(fields.AwareDateTime):
    """RFC 3339 with an offset; a naive time is refused rather than guessed. Bounded: from 1900
    to YEARS_AHEAD years ahead."""

    default_error_messages = {
        "invalid": "Not a valid RFC 3339 date-time.",
        "invalid_awareness": "The time must carry an offset, e.g. 2026-03-08T08:00:00-05:00.",
        "out_of_bounds": _BOUNDS_MESSAGE,
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="iso", **_with_doc(kwargs, **_bounds_doc()))

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> datetime:
        if isinstance(value, str) and not re.match(r"^\d{4}-\d{2}-\d{2}T", value):
            raise self.make_error("invalid")
        parsed = super()._deserialize(value, attr, data, **kwargs)
        try:
            # 0001-01-01T00:00+01:00 parses but has no UTC equivalent: refuse it here, not as a
            # 500 when it is stored or compared.
            in_utc = parsed.astimezone(UTC)
        except OverflowError as exc:
            raise self.make_error("out_of_bounds") from exc
        if _out_of_bounds(in_utc.date()):
            raise self.make_error("out_of_bounds")
        return parsed


class BoundedDate(fields.Date):
    """An ISO calendar date (YYYY-MM-DD), from 1900 to YEARS_AHEAD years ahead."""

    default_error_messages = {"out_of_bounds": _BOUNDS_MESSAGE}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**_with_doc(kwargs, **_bounds_doc()))

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> date:
        parsed = super()._deserialize(value, attr, data, **kwargs)
        if _out_of_bounds(parsed):
            raise self.make_error("out_of_bounds")
        return parsed


class TimeZoneName(fields.String):
    """An IANA time zone name ("America/New_York"); documented as format `iana-time-zone`."""

    default_error_messages = {"invalid_zone": "Not a known IANA time zone name."}

    def __init__(self, **kwargs: Any) -> None:
        # No maxLength: the set of names is the whole constraint (and fuzzers cannot meet both).
        doc = {"format": "iana-time-zone", "example": "America/New_York"}
        super().__init__(**_with_doc(kwargs, **doc))

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        name = super()._deserialize(value, attr, data, **kwargs)
        # A lookup in a fixed set: no file system path is ever built from the input.
        if name not in time_zone_names():
            raise self.make_error("invalid_zone")
        return name


class LocalTime(fields.String):
    """A local wall-clock time, "HH:MM" (24-hour)."""

    default_error_messages = {"invalid_time": "Use a 24-hour local time, HH:MM."}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**_with_doc(kwargs, pattern=_HHMM_PATTERN, example="22:00"))

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if not _HHMM.match(text):
            raise self.make_error("invalid_time")
        return text


def require_offset(value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError("The time must carry an offset.")


def normalize_email(email: str) -> str:
    """One spelling per mailbox: NFKC (fullwidth letters become ASCII), trimmed, lower case, and
    the domain in its IDNA (punycode) form, so look-alike spellings meet the same account."""
    text = unicodedata.normalize("NFKC", email).strip()
    local, at, domain = text.rpartition("@")
    if not at:
        return text.lower()
    domain = domain.rstrip(".").lower()
    # EmailAddress refuses an unencodable domain at the edge; stored rows keep their spelling.
    with contextlib.suppress(UnicodeError):
        domain = domain.encode("idna").decode("ascii")
    return f"{local.lower()}@{domain}"


def _script(char: str) -> str:
    return unicodedata.name(char, "UNKNOWN").split(" ")[0]


def email_problem(email: str) -> str | None:
    """Why an email cannot name an account (or None): invisible or control characters, a local
    part that is not ASCII, or a domain label mixing scripts (a Cyrillic a in "example")."""
    text = unicodedata.normalize("NFKC", email).strip()
    if any(
        unicodedata.category(c) in ("Cf", "Cc", "Cs", "Co", "Cn", "Zs", "Zl", "Zp") for c in text
    ):
        return "The email holds invisible or control characters."
    local, _, domain = text.rpartition("@")
    if not local.isascii():
        return "The part before @ must be plain ASCII."
    for label in domain.split("."):
        scripts = {_script(c) for c in label if c.isalpha()}
        if len(scripts) > 1:
            return "A domain name may not mix alphabets."
    try:
        domain.rstrip(".").encode("idna")
    except UnicodeError:
        return "Not a valid domain name."
    return None


class EmailAddress(fields.Email):
    """An email address, refused if it could pass for another (email_problem) and loaded in its
    one normal spelling (normalize_email)."""

    default_error_messages = {"lookalike": "{problem}"}

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        if isinstance(value, str):
            problem = email_problem(value)
            if problem:
                raise self.make_error("lookalike", problem=problem)
        text = super()._deserialize(value, attr, data, **kwargs)
        return normalize_email(text)


class IntegerMap(fields.Dict):
    """A name -> integer object (instrument answers, symptom ratings). Marshmallow serializes a
    Dict's every key and value through field objects: for a check-in's 16 answers that was most
    of its dump, and a first sync dumps thousands. Stored maps are already str -> int, so they
    are copied as they are; anything else goes the general way. Documented like the Dict it is."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(keys=fields.String(), values=fields.Integer(), **kwargs)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        if type(value) is dict and all(type(k) is str and type(v) is int for k, v in value.items()):
            return dict(value)
        return super()._serialize(value, attr, obj, **kwargs)
