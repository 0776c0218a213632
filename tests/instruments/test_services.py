"""Scoring and answer validation against the published scales (domain/instruments.md)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.errors import ValidationError
from api.instruments.definitions import COWS, INSTRUMENTS, SOWS, SOWS_GOSSOP, Instrument
from api.instruments.services import score, validate_answers

# The facts from instruments.md, written out independently of the definitions module.
COWS_ALLOWED = {
    "resting_pulse": {0, 1, 2, 4},
    "sweating": {0, 1, 2, 3, 4},
    "restlessness": {0, 1, 3, 5},
    "pupil_size": {0, 1, 2, 5},
    "bone_joint_aches": {0, 1, 2, 4},
    "runny_nose_tearing": {0, 1, 2, 4},
    "gi_upset": {0, 1, 2, 3, 5},
    "tremor": {0, 1, 2, 4},
    "yawning": {0, 1, 2, 4},
    "anxiety_irritability": {0, 1, 2, 4},
    "gooseflesh": {0, 3, 5},
}
SOWS_KEYS = [
    "anxious", "yawning", "perspiring", "tearing", "runny_nose", "goose_flesh", "shaking",
    "hot_flashes", "cold_flashes", "aches", "restless", "nauseous", "vomiting", "twitching",
    "stomach_cramps", "craving_use",
]  # fmt: skip


def cows_band(total: int) -> str | None:
    if total <= 4:
        return None
    if total <= 12:
        return "mild"
    if total <= 24:
        return "moderate"
    if total <= 36:
        return "moderately_severe"
    return "severe"


def test_the_definitions_match_the_published_scales() -> None:
    assert [i.key for i in SOWS.items] == SOWS_KEYS
    assert all((i.min, i.max, i.allowed) == (0, 4, None) for i in SOWS.items)
    assert [o.value for o in SOWS.options] == [0, 1, 2, 3, 4]
    assert len(SOWS_GOSSOP.items) == 10
    assert all((i.min, i.max, i.allowed) == (0, 3, None) for i in SOWS_GOSSOP.items)
    assert {i.key: set(i.allowed or ()) for i in COWS.items} == COWS_ALLOWED
    assert all({o.value for o in i.options or ()} == set(i.allowed or ()) for i in COWS.items)
    assert (SOWS.max_total, SOWS_GOSSOP.max_total, COWS.max_total) == (64, 30, 48)
    assert COWS.clinician_only and not SOWS.clinician_only and not SOWS_GOSSOP.clinician_only


def _answers(instrument: Instrument) -> st.SearchStrategy[dict[str, int]]:
    return st.fixed_dictionaries(
        {
            item.key: st.sampled_from(item.allowed or range(item.min, item.max + 1))
            for item in instrument.items
        }
    )


@given(
    st.sampled_from(list(INSTRUMENTS.values())).flatmap(
        lambda i: st.tuples(st.just(i), _answers(i))
    )
)
def test_every_valid_answer_set_scores_its_sum_within_bounds(pair: tuple[Instrument, Any]) -> None:
    instrument, answers = pair
    result = score(instrument.code, answers)
    assert result.total == sum(answers.values())
    assert 0 <= result.total <= instrument.max_total
    if instrument.code == "cows":
        assert result.severity == cows_band(result.total)
    else:
        assert result.severity is None  # SOWS and SOWS-Gossop: no published bands


@given(
    st.sampled_from(list(INSTRUMENTS.values())).flatmap(
        lambda i: st.tuples(st.just(i), _answers(i), st.sampled_from([it.key for it in i.items]))
    ),
    st.integers(min_value=-1000, max_value=1000),
)
def test_a_value_outside_an_item_is_refused_naming_the_item(
    triple: tuple[Instrument, dict[str, int], str], value: int
) -> None:
    instrument, answers, key = triple
    item = next(i for i in instrument.items if i.key == key)
    allowed = set(item.allowed or range(item.min, item.max + 1))
    answers = {**answers, key: value}
    if value in allowed:
        assert score(instrument.code, answers).total == sum(answers.values())
        return
    with pytest.raises(ValidationError) as caught:
        score(instrument.code, answers)
    assert set(caught.value.errors or {}) == {f"answers.{key}"}


@pytest.mark.parametrize(
    ("total", "severity"),
    [
        (0, None),
        (4, None),
        (5, "mild"),
        (12, "mild"),
        (13, "moderate"),
        (24, "moderate"),
        (25, "moderately_severe"),
        (36, "moderately_severe"),
        (37, "severe"),
        (48, "severe"),
    ],
)
def test_cows_band_boundaries(total: int, severity: str | None) -> None:
    answers = _cows_answers_summing_to(total)
    assert sum(answers.values()) == total
    assert score("cows", answers) == (total, severity)


def _cows_answers_summing_to(total: int) -> dict[str, int]:
    """Greedy over items (largest allowed value that still fits), exact for 0..48."""
    answers, left = {}, total
    for key, values in COWS_ALLOWED.items():
        answers[key] = max(v for v in values if v <= left)
        left -= answers[key]
    assert left == 0
    return answers


@pytest.mark.parametrize(
    ("code", "per_item", "total"),
    [("sows", 4, 64), ("sows", 0, 0), ("sows-gossop", 3, 30), ("sows-gossop", 0, 0)],
)
def test_sows_extremes_have_no_band(code: str, per_item: int, total: int) -> None:
    instrument = INSTRUMENTS[code]
    assert score(code, {i.key: per_item for i in instrument.items}) == (total, None)


@pytest.mark.parametrize(
    ("mutate", "field", "message"),
    [
        (lambda a: a.pop("gooseflesh"), "answers.gooseflesh", "Missing"),
        (lambda a: a.update(gooseflesh=1), "answers.gooseflesh", "one of: 0, 3, 5"),
        (lambda a: a.update(restlessness=2), "answers.restlessness", "one of: 0, 1, 3, 5"),
        (lambda a: a.update(heart_rate=3), "answers.heart_rate", "Not an item"),
        (lambda a: a.update(tremor=True), "answers.tremor", "integer"),
        (lambda a: a.update(tremor=1.0), "answers.tremor", "integer"),
        (lambda a: a.update(tremor="1"), "answers.tremor", "integer"),
        (lambda a: a.update(tremor=None), "answers.tremor", "integer"),
    ],
)
def test_cows_refusals_name_the_item(mutate: Any, field: str, message: str) -> None:
    answers = dict.fromkeys(COWS_ALLOWED, 0)
    mutate(answers)
    with pytest.raises(ValidationError) as caught:
        validate_answers("cows", answers)
    assert list(caught.value.errors or {}) == [field]
    assert message in caught.value.errors[field][0]


def test_every_offence_is_reported_at_once_and_values_are_not_echoed() -> None:
    answers: dict[str, Any] = dict.fromkeys(SOWS_KEYS, 1)
    answers.pop("anxious")
    answers["aches"] = 777
    answers["mystery"] = 2
    with pytest.raises(ValidationError) as caught:
        validate_answers("sows", answers)
    errors = caught.value.errors or {}
    assert set(errors) == {"answers.anxious", "answers.aches", "answers.mystery"}
    assert "777" not in str(errors)


def test_not_an_object_and_unknown_instrument() -> None:
    with pytest.raises(ValidationError) as caught:
        validate_answers("sows", [1, 2, 3])
    assert set(caught.value.errors or {}) == {"answers"}
    with pytest.raises(ValidationError) as caught:
        validate_answers("phq-9", {})
    assert set(caught.value.errors or {}) == {"instrument"}


def test_the_error_prefix_is_configurable_for_other_callers() -> None:
    with pytest.raises(ValidationError) as caught:
        validate_answers("cows", {}, field="assessment")
    assert "assessment.resting_pulse" in (caught.value.errors or {})
