"""What an export holds: one Section per resource (profile, check-ins, medications, ...).

A section streams its records as plain dicts shaped like the contract's output of that resource,
for one user, a chunk of users or everyone, and says how they map to CSV columns and FHIR. The
export services only ever iterate sections, so adding a feature to every export format (own JSON,
CSV and FHIR, the bulk NDJSON) is one Section here.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth.models import User
from api.export import fhir

# Rows are fetched in batches of this many on a server-side cursor (PostgreSQL) or one SQLite
# cursor: memory stays flat however large the export.
YIELD_PER = 1000


@dataclass(frozen=True)
class Window:
    """Records changed after `since` (bulk `_since`) and not after `until` (transactionTime);
    `now`: the instant the export reads at where no `until` bounds it (derived fields such as a
    regimen's `active` are judged at it; sections never read the clock)."""

    since: datetime | None = None
    until: datetime | None = None
    now: datetime | None = None

    @property
    def at(self) -> datetime:
        at = self.until or self.now
        if at is None:
            raise ValueError("an export reads at a given instant: Window(until=...) or now=...")
        return at


@dataclass(frozen=True)
class Column:
    name: str
    description: str
    get: Callable[[dict[str, Any]], Any] | None = None

    def value(self, record: dict[str, Any]) -> Any:
        return self.get(record) if self.get else record.get(self.name)


# rows(session, user_ids or None for every patient, window) -> (patient_id, record) pairs
Rows = Callable[[Session, Sequence[uuid.UUID] | None, Window], Iterator[tuple[uuid.UUID, dict]]]
# to_fhir(record, ctx, the patient's id as a UUID or its text) -> resources
ToFhir = Callable[[dict[str, Any], fhir.FhirContext, uuid.UUID | str], list[dict[str, Any]]]


@dataclass(frozen=True)
class Section:
    name: str  # JSON key and CSV file name
    title: str  # one line for the CSV README
    rows: Rows
    columns: tuple[Column, ...]
    category: str | None = None  # consent category a clinician needs; None: not health data
    own_only: bool = False  # only in the user's own export (reminders, devices, disclosures)
    single: bool = False  # one record (the profile): a JSON object, not a list
    to_fhir: ToFhir | None = None
    fhir_types: tuple[str, ...] = ()
    # The time a record is about, for consented data periods; None: not filtered by period.
    when: Callable[[dict[str, Any]], datetime | None] | None = None
    position: int = 50  # order in the JSON document, the zip and the Bundle
    # Deletions: the entity type whose `delete` entries in the sync change feed (api/sync) are
    # this section's records, and the FHIR resources (type, id) one deleted record was.
    feed_entity: str | None = None
    deleted_refs: Callable[[uuid.UUID], list[tuple[str, str]]] | None = None


SECTIONS: dict[str, Section] = {}


def register(section: Section) -> Section:
    SECTIONS[section.name] = section
    return section


def all_sections() -> list[Section]:
    return sorted(SECTIONS.values(), key=lambda s: s.position)


def json_cell(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def parse_time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def in_chunks(stmt: Any, column: Any, user_ids: Sequence[uuid.UUID] | None) -> Iterator[Any]:
    """The statement for everyone (None) or restricted to the given users (<= 500 per query)."""
    if user_ids is None:
        yield stmt
        return
    ids = list(user_ids)
    for start in range(0, len(ids), 500):
        yield stmt.where(column.in_(ids[start : start + 500]))


def windowed(stmt: Any, column: Any, window: Window) -> Any:
    if window.since is not None:
        stmt = stmt.where(column > window.since)
    if window.until is not None:
        stmt = stmt.where(column <= window.until)
    return stmt


def stream(session: Session, stmt: Any) -> Iterator[Any]:
    # Core rows on the session's connection: the ORM's result wrapping is not needed here. The
    # result is closed however the caller stops (a reader that takes one row leaves early), so
    # no server-side cursor outlives its generator.
    with session.connection().execute(stmt.execution_options(yield_per=YIELD_PER)) as result:
        yield from result


def rows_of(
    session: Session,
    stmt: Any,
    *,
    owner: Any,
    changed: Any,
    window: Window,
    user_ids: Sequence[uuid.UUID] | None,
) -> Iterator[Any]:
    """The rows of `stmt` whose `changed` time is inside `window`, for everyone (None) or the
    given users (`owner` names the column), streamed in the statement's order."""
    for chunk in in_chunks(windowed(stmt, changed, window), owner, user_ids):
        yield from stream(session, chunk)


# --- The profile -----------------------------------------------------------------------------


def _user_record(row: Any) -> dict[str, Any]:
    quiet = None
    if row.quiet_hours_start and row.quiet_hours_end:
        quiet = {"start": row.quiet_hours_start, "end": row.quiet_hours_end}
    return {
        "id": str(row.id),
        "email": row.email,
        "display_name": row.display_name,
        "role": row.role,
        "timezone": row.timezone,
        "quiet_hours": quiet,
        "discreet_notifications": row.discreet_notifications,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def _profile_rows(
    session: Session, user_ids: Sequence[uuid.UUID] | None, window: Window
) -> Iterator[tuple[uuid.UUID, dict[str, Any]]]:
    base = select(User.__table__).order_by(User.id)
    if user_ids is None:
        base = base.where(User.role == "patient")
    for row in rows_of(
        session, base, owner=User.id, changed=User.updated_at, window=window, user_ids=user_ids
    ):
        yield row.id, _user_record(row)


def _profile_fhir(
    record: dict[str, Any], ctx: fhir.FhirContext, _patient_id: uuid.UUID | str
) -> list[dict[str, Any]]:
    # A disclosed copy carries the name, never the email.
    return [fhir.patient(record, ctx, include_contact=not ctx.disclosed)]


PROFILE = register(
    Section(
        name="profile",
        title="The account: one row.",
        rows=_profile_rows,
        single=True,
        position=0,
        columns=(
            Column("id", "Account id (UUID)."),
            Column("email", "Sign-in email."),
            Column("display_name", "Name shown in the app."),
            Column("role", "patient, clinician or admin."),
            Column("timezone", "IANA time zone used for local schedules."),
            Column(
                "quiet_hours",
                'Quiet hours as JSON {"start": "HH:MM", "end": "HH:MM"}, or empty.',
                lambda r: json_cell(r["quiet_hours"]) if r["quiet_hours"] else None,
            ),
            Column("discreet_notifications", "true: notifications never name health details."),
            Column("created_at", "When the account was made (UTC, RFC 3339)."),
            Column("updated_at", "Last profile change (UTC, RFC 3339)."),
        ),
        to_fhir=_profile_fhir,
        fhir_types=("Patient",),
    )
)


# --- Shared helpers for feature sections -----------------------------------------------------


def when_field(key: str) -> Callable[[dict[str, Any]], datetime | None]:
    return lambda record: parse_time(record.get(key))


def fhir_many(mapper: Callable[..., list[dict[str, Any]]]) -> ToFhir:
    return lambda record, ctx, patient_id: mapper(record, ctx, patient_id=patient_id)


def fhir_one(mapper: Callable[..., dict[str, Any]]) -> ToFhir:
    return lambda record, ctx, patient_id: [mapper(record, ctx, patient_id=patient_id)]


TIME_COLUMNS = (
    Column("created_at", "When it was recorded in Waymark (UTC)."),
    Column("updated_at", "Last change (UTC)."),
)
