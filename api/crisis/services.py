"""The deployment's crisis lines: parsed from CRISIS_RESOURCES once, at start-up."""

from __future__ import annotations

import json
from typing import Any

from marshmallow import ValidationError

from api.crisis.schemas import CrisisResourceSchema


def parse_resources(raw: str) -> list[dict[str, Any]]:
    """The configured list, checked. Raises ValueError if the setting is not a JSON list of
    `{"name", "contact", "url"?}` objects, so a bad deployment fails at start, not on a phone."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"CRISIS_RESOURCES is not JSON: {exc.msg}") from None
    if not isinstance(data, list) or not data:
        raise ValueError("CRISIS_RESOURCES must be a non-empty JSON list")
    try:
        loaded: list[dict[str, Any]] = CrisisResourceSchema(many=True).load(data)
    except ValidationError as exc:
        raise ValueError(f"CRISIS_RESOURCES is malformed: {exc.messages}") from None
    return loaded
