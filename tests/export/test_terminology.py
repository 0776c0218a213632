"""Which of our Questionnaires and CodeSystems an export names, and what it must carry for them."""

from __future__ import annotations

import json

from api.export import terminology
from api.export.fhir import CANONICAL_BASE


def _named(*texts: str) -> set[tuple[str, str]]:
    scanner = terminology.CanonicalScanner()
    for text in texts:
        scanner.scan(text.encode())
    return scanner.named


def test_the_scanner_finds_each_canonical_by_its_whole_id() -> None:
    q = f"{CANONICAL_BASE}/Questionnaire"
    # `sows` is a prefix of `sows-gossop`: each is found only when named.
    assert _named(json.dumps({"questionnaire": f"{q}/sows-gossop|1"})) == {
        ("Questionnaire", "sows-gossop")
    }
    assert _named(json.dumps({"questionnaire": f"{q}/sows"})) == {("Questionnaire", "sows")}
    # Found across lines, each once; another base's CodeSystem of the same name is not ours.
    lines = [
        json.dumps({"system": f"{CANONICAL_BASE}/CodeSystem/checkin", "code": "checkin"}),
        json.dumps({"system": "http://example.org/fhir/CodeSystem/severity", "code": "x"}),
        json.dumps({"system": f"{CANONICAL_BASE}/CodeSystem/checkin", "code": "sleep.hours"}),
        json.dumps({"system": f"{CANONICAL_BASE}/CodeSystem/nope", "code": "x"}),  # unpublished
    ]
    assert _named(*lines) == {("CodeSystem", "checkin")}
    everything = [json.dumps(r) for r in terminology.questionnaires().values()]
    everything += [json.dumps({"system": r["url"]}) for r in terminology.code_systems().values()]
    assert len(_named(*everything)) == len(terminology.questionnaires()) + len(
        terminology.code_systems()
    )


def test_a_questionnaire_brings_the_code_system_its_items_name() -> None:
    out = terminology.supporting({("Questionnaire", "cows")})
    assert [(r["resourceType"], r["id"]) for r in out] == [
        ("Questionnaire", "cows"),
        ("CodeSystem", "instruments"),
    ]
    assert terminology.supporting(set()) == []
