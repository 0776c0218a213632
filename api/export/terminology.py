"""Our CodeSystems and one Questionnaire per instrument, as FHIR R4 resources at the fixed
canonical base (fhir.CANONICAL_BASE), served at /fhir/CodeSystem/{id} and
/fhir/Questionnaire/{id}. Built from the same definitions the API and the mapping use."""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

from api.consent.models import CATEGORIES
from api.counseling.models import KINDS as COUNSELING_KINDS
from api.disclosures.models import KINDS as DISCLOSURE_KINDS
from api.export import fhir
from api.instruments.definitions import INSTRUMENTS

PUBLISHER = "Waymark"
VERSION = "1"


def _concepts(codes: list[tuple[str, str]]) -> list[dict[str, Any]]:
    return [{"code": code, "display": display} for code, display in codes]


def _code_lists() -> dict[str, tuple[str, list[tuple[str, str]]]]:
    instruments: list[tuple[str, str]] = []
    bands: dict[str, str] = {}
    for inst in INSTRUMENTS.values():
        instruments.append((f"{inst.code}.total", f"{inst.title}: total score"))
        instruments.extend((f"{inst.code}.{item.key}", item.text) for item in inst.items)
        for band in inst.bands:
            bands.setdefault(band.severity, band.severity.replace("_", " "))
    checkin = [("checkin", "Check-in ratings")]
    checkin += [
        (f"symptom.{name}", f"{name.replace('_', ' ')} (0-10)") for name in fhir.SYMPTOM_NAMES
    ]
    checkin += [
        ("craving.nrs-0-10", "Craving, 0-10 numeric rating scale"),
        ("sleep.hours", "Hours slept"),
    ]
    return {
        "instruments": ("Withdrawal instruments and their items", instruments),
        "severity": ("Severity bands the instruments define (indicative)", list(bands.items())),
        "checkin": ("Check-in ratings", checkin),
        "counseling-kind": (
            "Kinds of counseling session",
            [(k, k.replace("_", " ")) for k in COUNSELING_KINDS],
        ),
        "data-category": (
            "Consent data categories (42 CFR part 2)",
            [(c, c) for c in CATEGORIES],
        ),
        "disclosure-kind": (
            "Kinds of disclosure in the accounting",
            [(k, k) for k in DISCLOSURE_KINDS],
        ),
    }


@cache
def code_systems() -> dict[str, dict[str, Any]]:
    out = {}
    for name, (title, codes) in _code_lists().items():
        out[name] = {
            "resourceType": "CodeSystem",
            "id": name,
            "url": f"{fhir.CANONICAL_BASE}/CodeSystem/{name}",
            "version": VERSION,
            "name": "".join(part.title() for part in name.split("-")),
            "title": title,
            "status": "active",
            "experimental": False,
            "publisher": PUBLISHER,
            "caseSensitive": True,
            "content": "complete",
            "count": len(codes),
            "concept": _concepts(codes),
        }
    return out


@cache
def questionnaires() -> dict[str, dict[str, Any]]:
    out = {}
    for inst in INSTRUMENTS.values():
        system = f"{fhir.CANONICAL_BASE}/CodeSystem/instruments"
        out[inst.code] = {
            "resourceType": "Questionnaire",
            "id": inst.code,
            "url": f"{fhir.CANONICAL_BASE}/Questionnaire/{inst.code}",
            "version": inst.version,
            "name": "".join(ch for ch in inst.code.title() if ch.isalnum()),
            "title": inst.title,
            "status": "active",
            "publisher": PUBLISHER,
            "description": f"{inst.title}. Source: {inst.source}",
            "subjectType": ["Patient"],
            "code": [{"system": system, "code": f"{inst.code}.total"}],
            "item": [
                {
                    "linkId": item.key,
                    "code": [{"system": system, "code": f"{inst.code}.{item.key}"}],
                    "text": item.text,
                    "type": "integer",
                    "required": True,
                }
                for item in inst.items
            ],
        }
    return out


class CanonicalScanner:
    """Which of our published Questionnaires and CodeSystems the encoded resources fed to it name
    (`named`, as (type, id)). A bulk export feeds it every line it writes, so it searches only for
    those not found yet, with one regular expression rebuilt each time one is found (at most once
    per published resource); a line naming only known ones costs one pass of the regex engine
    (measured: docs/benchmarks.md). A canonical ends as JSON ends it (`"`, or `|` before a
    version), so `sows` never matches `sows-gossop`."""

    def __init__(self) -> None:
        self.named: set[tuple[str, str]] = set()
        self._pending = set(_published_urls())
        self._pattern = self._compile()

    def _compile(self) -> re.Pattern[bytes] | None:
        if not self._pending:
            return None
        alternatives = b"|".join(
            re.escape(f"{rtype}/{rid}".encode()) for rtype, rid in sorted(self._pending)
        )
        base = re.escape(fhir.CANONICAL_BASE.encode())
        return re.compile(base + rb"/(" + alternatives + rb')["|]')

    def scan(self, encoded: bytes) -> None:
        while self._pattern is not None:
            match = self._pattern.search(encoded)
            if match is None:
                return
            rtype, _, rid = match.group(1).decode().partition("/")
            self._pending.discard((rtype, rid))
            self.named.add((rtype, rid))
            self._pattern = self._compile()


def _published_urls() -> dict[tuple[str, str], str]:
    urls = {("CodeSystem", rid): r["url"] for rid, r in code_systems().items()}
    urls.update({("Questionnaire", rid): r["url"] for rid, r in questionnaires().items()})
    return urls


def supporting(named: set[tuple[str, str]]) -> list[dict[str, Any]]:
    """The Questionnaires and CodeSystems an export names, and what they name in turn (a
    Questionnaire's item codes are in the instruments CodeSystem): Questionnaires first, then
    CodeSystems, each once, in a stable order. Names we do not publish are left out."""
    wanted = set(named)
    out: list[dict[str, Any]] = []
    for rid, resource in questionnaires().items():
        if ("Questionnaire", rid) in wanted:
            out.append(resource)
            scanner = CanonicalScanner()
            scanner.scan(json.dumps(resource).encode())
            wanted |= scanner.named
    out += [r for rid, r in code_systems().items() if ("CodeSystem", rid) in wanted]
    return out
