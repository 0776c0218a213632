"""Answer validation and scoring, both read from the one definition in definitions.py."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from api.errors import ValidationError
from api.instruments.definitions import INSTRUMENTS, Instrument, Item


class Score(NamedTuple):
    total: int
    severity: str | None  # None where the instrument has no band for the total


def get_instrument(code: str, *, field: str = "instrument") -> Instrument:
    """Raises ValidationError naming `field` if the code is not a known instrument."""
    instrument = INSTRUMENTS.get(code) if isinstance(code, str) else None
    if instrument is None:
        raise ValidationError({field: [f"Must be one of: {', '.join(INSTRUMENTS)}."]})
    return instrument


def list_instruments() -> list[Instrument]:
    return list(INSTRUMENTS.values())


def _value_error(item: Item, value: Any) -> str | None:
    # bool is an int in Python; a JSON true/false is not an answer.
    if isinstance(value, bool) or not isinstance(value, int):
        return "Must be an integer."
    if item.accepts(value):
        return None
    if item.allowed is not None:
        return f"Must be one of: {', '.join(str(v) for v in item.allowed)}."
    return f"Must be between {item.min} and {item.max}."


def validate_answers(
    instrument_code: str, answers: Any, *, field: str = "answers"
) -> dict[str, int]:
    """Check a full answer set; returns it as {item_key: int}.

    Raises ValidationError with one entry per offending item under "<field>.<item_key>" (missing,
    out of range, not an allowed value, not an integer, unknown key), or under `field` if the
    answers are not an object. Messages never repeat the value sent.
    """
    instrument = get_instrument(instrument_code)
    if not isinstance(answers, Mapping):
        raise ValidationError({field: ["Must be an object of item key to integer."]})
    errors: dict[str, list[str]] = {}
    items = instrument.by_key
    for expected in instrument.items:
        if expected.key not in answers:
            errors[f"{field}.{expected.key}"] = ["Missing answer: every item is required."]
    for key, value in answers.items():
        item = items.get(key)
        if item is None:
            errors[f"{field}.{key}"] = [f"Not an item of {instrument.code}."]
            continue
        message = _value_error(item, value)
        if message:
            errors[f"{field}.{key}"] = [message]
    if errors:
        raise ValidationError(errors)
    return {item.key: answers[item.key] for item in instrument.items}


def severity_for(instrument: Instrument, total: int) -> str | None:
    for band in instrument.bands:
        if band.min <= total <= band.max:
            return band.severity
    return None


def score(instrument_code: str, answers: Any, *, field: str = "answers") -> Score:
    """Validate a full answer set and score it: the total and the band (None if no band applies).

    Raises ValidationError as validate_answers does.
    """
    checked = validate_answers(instrument_code, answers, field=field)
    total = sum(checked.values())
    return Score(total=total, severity=severity_for(INSTRUMENTS[instrument_code], total))
