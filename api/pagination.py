"""Cursor pages: `?limit=` (default 50, at most 200) and an opaque keyset `?cursor=`."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from marshmallow import fields, validate
from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute, Session

from api.errors import ValidationError
from api.fields import AwareDateTime, StrictSchema


class PageArgs(StrictSchema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(load_default=None)


class RangePageArgs(PageArgs):
    from_ = AwareDateTime(data_key="from", load_default=None)
    to = AwareDateTime(load_default=None)


def encode_cursor(values: Sequence[Any]) -> str:
    raw = json.dumps([v.isoformat() if isinstance(v, datetime) else str(v) for v in values])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


_MAX_CURSOR = 512  # ours are < 100 characters; a longer one is not ours


def decode_cursor(
    cursor: str, parsers: Sequence[Callable[[str], Any]], *, field: str = "cursor"
) -> list[Any]:
    """The values of a cursor `encode_cursor` made; anything else is a 422 naming `cursor`.

    A cursor is client input: every value we issue is a string, so a number, a list or a huge
    literal in its place (`[1e309]`, `["2026-...", 1]`) is refused before any parser sees it,
    and whatever a parser raises on a well-typed but bad value is a 422, never a 500.
    """
    try:
        if len(cursor) > _MAX_CURSOR:
            raise ValueError("cursor too long")
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(values, list) or len(values) != len(parsers):
            raise ValueError("not a cursor list")
        if not all(isinstance(v, str) and len(v) <= 100 for v in values):
            raise ValueError("cursor values are strings")
        return [parse(v) for parse, v in zip(parsers, values, strict=True)]
    except (ValueError, TypeError, OverflowError, AttributeError, RecursionError) as exc:
        raise ValidationError({field: ["Not a cursor this service issued."]}) from exc


def aware_utc(text: str) -> datetime:
    """A cursor's time: aware and representable in UTC, else ValueError (a 422, not a 500)."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError("naive time in cursor")
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("time out of range") from exc


def keyset_page(
    session: Session,
    stmt: Select[Any],
    *,
    order: InstrumentedAttribute[datetime],
    tiebreak: InstrumentedAttribute[uuid.UUID],
    limit: int,
    cursor: str | None,
    descending: bool = True,
) -> tuple[list[Any], str | None]:
    """One page of `stmt` ordered by (order, tiebreak), and the cursor of the next page or None."""
    if cursor:
        when, last_id = decode_cursor(cursor, [aware_utc, uuid.UUID])
        if descending:
            stmt = stmt.where(or_(order < when, and_(order == when, tiebreak < last_id)))
        else:
            stmt = stmt.where(or_(order > when, and_(order == when, tiebreak > last_id)))
    if descending:
        stmt = stmt.order_by(order.desc(), tiebreak.desc())
    else:
        stmt = stmt.order_by(order.asc(), tiebreak.asc())
    rows = list(session.scalars(stmt.limit(limit + 1)))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor([getattr(last, order.key), getattr(last, tiebreak.key)])
    return rows, next_cursor


def page_schema(item_schema: type, name: str) -> type:
    """The list envelope `{"items": [...], "next_cursor": ...}` for one item schema."""
    return type(
        name,
        (StrictSchema,),
        {
            "items": fields.List(fields.Nested(item_schema), required=True),
            "next_cursor": fields.String(allow_none=True, required=True),
        },
    )
