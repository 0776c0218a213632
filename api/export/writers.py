"""Streaming writers: JSON document, zip of CSVs, FHIR Bundle. Each yields bytes in chunks of
about CHUNK bytes and holds no more than one chunk and one record in memory."""

from __future__ import annotations

import csv
import io
import json
import uuid
import zipfile
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from typing import Any

import orjson
from sqlalchemy.orm import Session

from api.export import fhir, terminology
from api.export.sections import Section, Window

CHUNK = 64 * 1024
FORMAT_VERSION = 1
# Spreadsheet programs run a cell that starts with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(type(value).__name__)


# No circular check: records are trees built here; it is a measurable share of a bulk export.
_encoder = json.JSONEncoder(
    default=_default, ensure_ascii=False, separators=(",", ":"), check_circular=False
)


def dumps(value: Any) -> str:
    return _encoder.encode(value)


def ndjson_line(value: Any) -> bytes:
    """One NDJSON line (UTF-8, newline-terminated): the same JSON as dumps(), encoded by orjson,
    several times faster than the standard library on a bulk export's millions of resources."""
    return orjson.dumps(value, default=_default, option=orjson.OPT_APPEND_NEWLINE)


class _Chunker:
    """Collects small writes and hands them out in CHUNK-sized pieces."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, data: str | bytes) -> bytes | None:
        raw = data.encode() if isinstance(data, str) else data
        self.parts.append(raw)
        self.size += len(raw)
        return self.take() if self.size >= CHUNK else None

    def take(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        self.size = 0
        return out


def _records(
    session: Session, section: Section, user_id: uuid.UUID, now: datetime
) -> Iterator[dict[str, Any]]:
    for _patient, record in section.rows(session, [user_id], Window(now=now)):
        yield record


def public(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """The record as the API shows it: keys starting with _ are helpers for the mappings."""
    if record is None:
        return None
    return {k: v for k, v in record.items() if not k.startswith("_")}


def json_document(
    session: Session, *, user_id: uuid.UUID, sections: Iterable[Section], now: datetime
) -> Iterator[bytes]:
    """{"format", "version", "exported_at", "<section>": [...] | {...}, ...}"""
    out = _Chunker()
    head = {"format": "waymark-export", "version": FORMAT_VERSION, "exported_at": now.isoformat()}
    out.add(dumps(head)[:-1])
    for section in sections:
        out.add(f",{dumps(section.name)}:")
        if section.single:
            record = next(_records(session, section, user_id, now), None)
            if (chunk := out.add(dumps(public(record)))) is not None:
                yield chunk
            continue
        out.add("[")
        first = True
        for record in _records(session, section, user_id, now):
            chunk = out.add(("" if first else ",") + dumps(public(record)))
            first = False
            if chunk is not None:
                yield chunk
        out.add("]")
    out.add("}")
    yield out.take()


class _ZipSink(io.RawIOBase):
    """A write-only, unseekable file for zipfile: zipfile then writes data descriptors and never
    seeks back, so the archive can be handed out as it is written."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        raw = bytes(data)
        self.parts.append(raw)
        self.position += len(raw)
        return len(raw)

    def tell(self) -> int:
        return self.position

    def take(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        return out

    @property
    def pending(self) -> int:
        return sum(len(p) for p in self.parts)


def csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return dumps(value)
    if isinstance(value, datetime | date | uuid.UUID):
        return _default(value)
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        # Quote so a spreadsheet shows the text instead of running it (see the README).
        return "'" + value
    return value


def readme(sections: Iterable[Section], now: datetime) -> str:
    lines = [
        "Waymark export",
        f"Made {now.isoformat()}. One CSV file per resource, UTF-8, comma-separated, with a",
        "header row. Times are RFC 3339 in UTC unless a column says otherwise; empty = no value.",
        "JSON columns hold a JSON value. A text cell that would start with = + - @ is prefixed",
        "with ' so that spreadsheet programs do not run it as a formula.",
        "",
    ]
    for section in sections:
        lines.append(f"{section.name}.csv: {section.title}")
        lines.extend(f"  {col.name}: {col.description}" for col in section.columns)
        lines.append("")
    return "\n".join(lines)


def csv_zip(
    session: Session, *, user_id: uuid.UUID, sections: list[Section], now: datetime
) -> Iterator[bytes]:
    sink = _ZipSink()
    with zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.txt", readme(sections, now))
        for section in sections:
            with archive.open(f"{section.name}.csv", mode="w") as raw:
                text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
                writer = csv.writer(text)
                writer.writerow([c.name for c in section.columns])
                for record in _records(session, section, user_id, now):
                    writer.writerow([csv_cell(c.value(record)) for c in section.columns])
                    if sink.pending >= CHUNK:
                        text.flush()
                        yield sink.take()
                text.flush()
                text.detach()
            yield sink.take()
    yield sink.take()


_SHARED_TYPES = frozenset({"Practitioner", "Organization"})


def fhir_bundle(
    session: Session,
    *,
    user_id: uuid.UUID,
    sections: Iterable[Section],
    ctx: fhir.FhirContext,
    bundle_id: str,
) -> Iterator[bytes]:
    """A FHIR R4 Bundle (type collection) of everything the user has, streamed entry by entry."""
    out = _Chunker()
    out.add(dumps(fhir.bundle_header(bundle_id, ctx))[:-1] + ',"entry":[')
    first = True
    # A recipient's Practitioner/Organization comes with each consent naming it: once each.
    shared: set[str] = set()
    # The Questionnaires and CodeSystems the entries name come last, so the Bundle holds every
    # canonical its resources point at (docs/fhir.md).
    canonicals = terminology.CanonicalScanner()
    for section in sections:
        if section.to_fhir is None:
            continue
        for record in _records(session, section, user_id, ctx.now):
            for entry in fhir.bundle_entries(section.to_fhir(record, ctx, user_id), ctx.rest_base):
                if entry["resource"]["resourceType"] in _SHARED_TYPES:
                    if entry["fullUrl"] in shared:
                        continue
                    shared.add(entry["fullUrl"])
                text = dumps(entry)
                canonicals.scan(text.encode())
                chunk = out.add(("" if first else ",") + text)
                first = False
                if chunk is not None:
                    yield chunk
    for resource in terminology.supporting(canonicals.named):
        # Served at {rest_base}/{type}/{id}; without a REST base the canonical URL names it.
        url = fhir.full_url(resource, ctx.rest_base) if ctx.rest_base else resource["url"]
        out.add(("" if first else ",") + dumps({"fullUrl": url, "resource": resource}))
        first = False
    out.add("]}")
    yield out.take()
