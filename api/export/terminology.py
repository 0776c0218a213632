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


# Our canonical URLs as they appear in a resource's JSON (a Questionnaire canonical may carry
# `|version`). Matched on the encoded line, so every element that names one is found, whatever
# mapping wrote it.
_CANONICAL = re.compile(
    re.escape(fhir.CANONICAL_BASE).encode() + rb"/(CodeSystem|Questionnaire)/([A-Za-z0-9.-]{1,64})"
)


def canonicals_in(encoded: bytes) -> set[tuple[str, str]]:
    """The (type, id) of every CodeSystem and Questionnaire canonical of ours in a resource."""
    return {(rtype.decode(), rid.decode()) for rtype, rid in _CANONICAL.findall(encoded)}


def supporting(named: set[tuple[str, str]]) -> list[dict[str, Any]]:
    """The Questionnaires and CodeSystems an export names, and what they name in turn (a
    Questionnaire's item codes are in the instruments CodeSystem): Questionnaires first, then
    CodeSystems, each once, in a stable order. Names we do not publish are left out."""
    wanted = set(named)
    out: list[dict[str, Any]] = []
    for rid, resource in questionnaires().items():
        if ("Questionnaire", rid) in wanted:
            out.append(resource)
            wanted |= canonicals_in(json.dumps(resource).encode())
    out += [r for rid, r in code_systems().items() if ("CodeSystem", rid) in wanted]
    return out
