"""Request parsing: a JSON body must carry the JSON types its schema documents, and no text
anywhere may hold what the database cannot store.

marshmallow coerces on load: `"5"` becomes 5, `0` and `"no"` become False. A query string has
only strings, so that is right there; in a JSON body it lets a wrong type through as a guess. This
parser refuses it (422) before the schema loads, for every route's body, nested fields included.

JSON may carry `\u0000` and lone surrogates (`\ud800`); PostgreSQL refuses both in text (a 500
at insert time), so any string holding one is refused as well (422), in bodies and query strings.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import orjson
from marshmallow import Schema, ValidationError, fields
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.exceptions import BadRequest

BAD_TEXT = "Text must be valid Unicode without NUL characters."

# No body of ours nests deeper than a handful of levels. Deeper input, and integers longer than
# Python parses safely, are refused while parsing (400), before they exhaust the stack
# (RecursionError) or trip Python's 4300-digit int limit (ValueError): both were 500s. Numbers
# in range are the schemas' business (422), and free-form answers may hold big ones.
MAX_JSON_DEPTH = 32
MAX_INT_DIGITS = 1000


class JsonBodyError(BadRequest):
    """A body that is not JSON we accept: invalid, too deep, or holding an absurd number."""


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise JsonBodyError(f"Numbers in the body may have at most {MAX_INT_DIGITS} digits.")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or len(text) > 64:
        raise JsonBodyError("Numbers in the body must be finite and at most 64 characters.")
    return value


def _parse_constant(_text: str) -> Any:
    raise JsonBodyError("NaN and Infinity are not JSON.")


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether containers nest deeper than `limit` (iterative: no recursion to exhaust)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def load_json(raw: bytes | str) -> Any:
    """Parse a request body; raise JsonBodyError (a 400 problem) for anything we do not accept."""
    try:
        value = json.loads(
            raw,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
    except JsonBodyError:
        raise
    except RecursionError as exc:
        raise JsonBodyError(f"JSON may nest at most {MAX_JSON_DEPTH} levels deep.") from exc
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise JsonBodyError("The request body is not valid JSON.") from exc
    if _depth_exceeds(value, MAX_JSON_DEPTH):
        raise JsonBodyError(f"JSON may nest at most {MAX_JSON_DEPTH} levels deep.")
    return value


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def all_text_storable(value: Any) -> bool:
    """True when no string in `value` (keys included) holds NUL or a lone surrogate, decided in
    one C pass: orjson refuses a string that is not valid UTF-8 and writes NUL as `\\u0000`.
    False also when orjson refuses the value for another reason (an integer beyond 64 bits), or
    a string holds a backslash followed by `u0000`: then the walk below decides."""
    try:
        return b"\\u0000" not in orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError
        return False


def bad_text_errors(value: Any, path: str = "") -> dict[str, list[str]]:
    """Dotted paths of every string (keys included) that cannot be stored as text."""
    if not path and all_text_storable(value):
        return {}  # the common case, without walking the body in Python
    errors: dict[str, list[str]] = {}
    if isinstance(value, str):
        if not _storable(value):
            errors[path or "_schema"] = [BAD_TEXT]
    elif isinstance(value, Mapping):
        for key, item in value.items():
            name = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and not _storable(key):
                errors[path or "_schema"] = [BAD_TEXT]
                continue
            errors.update(bad_text_errors(item, name))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            errors.update(bad_text_errors(item, f"{path}.{i}" if path else str(i)))
    return errors


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_integral(value: Any) -> bool:
    # No float(value): a big int would overflow it (OverflowError, a 500).
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _scalar_errors(field: fields.Field, value: Any) -> list[str] | None:
    if isinstance(field, fields.Boolean) and not isinstance(value, bool):
        return ["Not a valid boolean."]
    if isinstance(field, fields.Integer):
        if not _is_integral(value):
            return ["Not a valid integer."]
    elif isinstance(field, fields.Number) and not _is_number(value):
        return ["Not a valid number."]
    return None


def _only_errors(found: dict[Any, Any]) -> dict[Any, Any] | None:
    return {k: e for k, e in found.items() if e} or None


def _field_errors(field: fields.Field, value: Any) -> Any:
    """The messages for a value of the wrong JSON type (nested: per key or index), or None."""
    if value is None:
        return None  # allow_none is the field's own business
    if isinstance(field, fields.Nested):
        schema = field.schema
        if not (field.many or schema.many):
            return json_type_errors(schema, value) or None
        items = value if isinstance(value, list) else []  # else the schema reports the shape
        return _only_errors({i: json_type_errors(schema, v) for i, v in enumerate(items)})
    if isinstance(field, fields.List) and isinstance(value, list):
        return _only_errors({i: _field_errors(field.inner, v) for i, v in enumerate(value)})
    if isinstance(field, fields.Dict) and isinstance(value, Mapping) and field.value_field:
        return _only_errors({k: _field_errors(field.value_field, v) for k, v in value.items()})
    return _scalar_errors(field, value)


def json_type_errors(schema: Schema, data: Any) -> dict[str, Any]:
    """Per field, the values in `data` whose JSON type differs from the schema's field type."""
    if not isinstance(data, Mapping):
        return {}  # the schema itself reports a body that is not an object
    errors: dict[str, Any] = {}
    for name, field in schema.load_fields.items():
        key = field.data_key or name
        if key in data:
            messages = _field_errors(field, data[key])
            if messages:
                errors[key] = messages
    return errors


class StrictJsonParser(FlaskParser):
    """webargs' Flask parser, with JSON bodies held to their documented JSON types and no
    unstorable text in bodies or query strings."""

    # webargs drops unknown query parameters by default; we refuse them (422 naming the
    # parameter), as for bodies, so a typo such as `?form=` never silently widens a period.
    DEFAULT_UNKNOWN_BY_LOCATION = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "query": None,
        "querystring": None,
    }

    def _raw_load_json(self, req: Any) -> Any:
        # One JSON reader for every body (webargs' own lets RecursionError and ValueError out).
        if not is_json_request(req):
            return core.missing
        return load_json(req.get_data(cache=True))

    def pre_load(self, location_data: Any, *, schema: Schema, req: Any, location: str) -> Any:
        errors: dict[str, Any]
        if location == "json":
            errors = bad_text_errors(location_data) or json_type_errors(schema, location_data)
        elif location in ("query", "querystring"):
            errors = {}
            for key, value in req.args.items(multi=True):
                errors.update(bad_text_errors({key: value}))
        else:
            errors = {}
        if errors:
            raise ValidationError(errors)
        return location_data
