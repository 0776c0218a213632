"""The streaming writers: well-formed output, bounded chunks, memory independent of size."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
import uuid
import zipfile
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.orm import Session

from api.export import fhir, writers
from api.export.sections import Column, Section, Window

NOW = datetime(2026, 11, 26, tzinfo=UTC)
USER = uuid.uuid4()


def synthetic(count: int) -> Section:
    """A section of `count` generated check-ins, made lazily (no database, no list)."""

    def rows(
        _session: Session, user_ids: Sequence[uuid.UUID] | None, _window: Window
    ) -> Iterator[tuple[uuid.UUID, dict[str, Any]]]:
        for i in range(count):
            yield (
                USER,
                {
                    "id": str(uuid.UUID(int=i + 1)),
                    "recorded_at": NOW.isoformat(),
                    "symptoms": {"nausea": i % 11},
                    "craving": i % 11,
                    "note": f"=note {i}, with a comma",
                },
            )

    return Section(
        name="checkins",
        title="synthetic",
        rows=rows,
        columns=(
            Column("id", "id"),
            Column("symptoms", "JSON"),
            Column("craving", "0-10"),
            Column("note", "text"),
        ),
        to_fhir=lambda r, ctx, pid: fhir.checkin_resources(r, ctx, patient_id=pid),
        fhir_types=("Observation",),
    )


def _peak(chunks: Iterator[bytes]) -> tuple[int, int, int]:
    """(peak traced bytes, total bytes, largest chunk) while draining a stream."""
    tracemalloc.start()
    total = largest = 0
    for chunk in chunks:
        total += len(chunk)
        largest = max(largest, len(chunk))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak, total, largest


def test_json_document_is_valid_and_streams_in_chunks() -> None:
    chunks = list(
        writers.json_document(None, user_id=USER, sections=[synthetic(3000)], now=NOW)  # type: ignore[arg-type]
    )
    assert len(chunks) > 2
    assert max(len(c) for c in chunks) < 2 * writers.CHUNK
    body = json.loads(b"".join(chunks))
    assert len(body["checkins"]) == 3000
    assert body["checkins"][5]["note"] == "=note 5, with a comma"


def test_csv_zip_is_valid_and_quotes_formulas() -> None:
    data = b"".join(writers.csv_zip(None, user_id=USER, sections=[synthetic(2000)], now=NOW))  # type: ignore[arg-type]
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None
    rows = list(csv.DictReader(io.StringIO(archive.read("checkins.csv").decode())))
    assert len(rows) == 2000
    assert rows[1]["note"] == "'=note 1, with a comma"
    assert json.loads(rows[3]["symptoms"]) == {"nausea": 3}


def test_fhir_bundle_streams_valid_json() -> None:
    ctx = fhir.FhirContext(base_url="https://w.test/fhir", now=NOW)
    data = b"".join(
        writers.fhir_bundle(None, user_id=USER, sections=[synthetic(50)], ctx=ctx, bundle_id="b")  # type: ignore[arg-type]
    )
    bundle = json.loads(data)
    assert len(bundle["entry"]) == 50
    assert bundle["entry"][0]["fullUrl"].startswith("urn:uuid:")


@pytest.mark.slow
def test_memory_does_not_grow_with_the_export() -> None:
    """Ten times the records must not mean ten times the memory: everything is streamed."""
    ctx = fhir.FhirContext(base_url="https://w.test/fhir", now=NOW)

    def streams(count: int) -> list[Iterator[bytes]]:
        sections = [synthetic(count)]
        return [
            writers.json_document(None, user_id=USER, sections=sections, now=NOW),  # type: ignore[arg-type]
            writers.csv_zip(None, user_id=USER, sections=sections, now=NOW),  # type: ignore[arg-type]
            writers.fhir_bundle(None, user_id=USER, sections=sections, ctx=ctx, bundle_id="b"),  # type: ignore[arg-type]
        ]

    small = [_peak(s) for s in streams(300)]
    large = [_peak(s) for s in streams(3_000)]
    for (small_peak, small_total, _), (large_peak, large_total, largest) in zip(
        small, large, strict=True
    ):
        assert large_total > 5 * small_total
        assert largest < 2 * writers.CHUNK
        # Nearly flat from 300 to 3,000 records (a list of them would be megabytes).
        assert large_peak < small_peak + 512 * 1024


def test_csv_cell_rules() -> None:
    assert writers.csv_cell(None) == ""
    assert writers.csv_cell(True) == "true"
    assert writers.csv_cell(-3) == -3
    assert writers.csv_cell("-3 pills") == "'-3 pills"
    assert writers.csv_cell("@SUM(A1)") == "'@SUM(A1)"
    assert writers.csv_cell({"b": 1, "a": 2}) == '{"b":1,"a":2}'
    assert writers.csv_cell("plain") == "plain"
