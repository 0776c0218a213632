"""The published scales as data (docs/instruments.md). The scoring code, the answer
validation and GET /v1/instruments all read these definitions, so they cannot drift apart."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class Option:
    value: int
    label: str


@dataclass(frozen=True)
class Item:
    key: str
    text: str
    min: int
    max: int
    # A sparse scale (COWS) takes only these values; None: every integer in min..max.
    allowed: tuple[int, ...] | None = None
    # Item-specific anchors (COWS); None: the instrument's shared options apply.
    options: tuple[Option, ...] | None = None

    def accepts(self, value: int) -> bool:
        if self.allowed is not None:
            return value in self.allowed
        return self.min <= value <= self.max

    @property
    def highest(self) -> int:
        return max(self.allowed) if self.allowed is not None else self.max


@dataclass(frozen=True)
class Band:
    min: int
    max: int
    severity: str


@dataclass(frozen=True)
class Instrument:
    code: str
    version: str
    title: str
    source: str
    items: tuple[Item, ...]
    options: tuple[Option, ...]
    clinician_only: bool
    bands: tuple[Band, ...] = ()

    @cached_property
    def max_total(self) -> int:
        return sum(item.highest for item in self.items)

    @cached_property
    def by_key(self) -> dict[str, Item]:
        return {item.key: item for item in self.items}


def _options(*labels: str) -> tuple[Option, ...]:
    return tuple(Option(value, label) for value, label in enumerate(labels))


def _uniform(pairs: list[tuple[str, str]], high: int) -> tuple[Item, ...]:
    return tuple(Item(key=key, text=text, min=0, max=high) for key, text in pairs)


def _sparse(key: str, text: str, anchors: list[tuple[int, str]]) -> Item:
    values = tuple(value for value, _ in anchors)
    return Item(
        key=key,
        text=text,
        min=min(values),
        max=max(values),
        allowed=values,
        options=tuple(Option(value, label) for value, label in anchors),
    )


SOWS = Instrument(
    code="sows",
    version="1",
    title="Subjective Opiate Withdrawal Scale (SOWS)",
    source="Handelsman et al., 1987",
    items=_uniform(
        [
            ("anxious", "I feel anxious"),
            ("yawning", "I feel like yawning"),
            ("perspiring", "I am perspiring"),
            ("tearing", "My eyes are tearing"),
            ("runny_nose", "My nose is running"),
            ("goose_flesh", "I have goose flesh"),
            ("shaking", "I am shaking"),
            ("hot_flashes", "I have hot flashes"),
            ("cold_flashes", "I have cold flashes"),
            ("aches", "My bones and muscles ache"),
            ("restless", "I feel restless"),
            ("nauseous", "I feel nauseous"),
            ("vomiting", "I feel like vomiting"),
            ("twitching", "My muscles twitch"),
            ("stomach_cramps", "I have cramps in my stomach"),
            ("craving_use", "I feel like using now"),
        ],
        high=4,
    ),
    options=_options("Not at all", "A little", "Moderately", "Quite a bit", "Extremely"),
    clinician_only=False,
    # No bands: the 16-item paper publishes none, and the often-quoted ones belong to a 15-item
    # variant scored 0-60. The raw total is the result (docs/checkins.md).
)

SOWS_GOSSOP = Instrument(
    code="sows-gossop",
    version="1",
    title="Short Opiate Withdrawal Scale (SOWS-Gossop)",
    source="Gossop, 1990",
    items=_uniform(
        [
            ("feeling_sick", "Feeling sick"),
            ("stomach_cramps", "Stomach cramps"),
            ("muscle_spasms", "Muscle spasms/twitching"),
            ("feeling_cold", "Feeling of coldness"),
            ("heart_pounding", "Heart pounding"),
            ("muscular_tension", "Muscular tension"),
            ("aches_pains", "Aches and pains"),
            ("yawning", "Yawning"),
            ("runny_eyes", "Runny eyes"),
            ("insomnia", "Insomnia/problems sleeping"),
        ],
        high=3,
    ),
    options=_options("None", "Mild", "Moderate", "Severe"),
    clinician_only=False,
    # No published bands; a change of 2-4 points is what trials treat as meaningful.
)

COWS = Instrument(
    code="cows",
    version="1",
    title="Clinical Opiate Withdrawal Scale (COWS)",
    source="Wesson & Ling, 2003",
    items=(
        _sparse(
            "resting_pulse",
            "Resting pulse rate (beats/minute), measured after sitting or lying for one minute",
            [(0, "80 or below"), (1, "81-100"), (2, "101-120"), (4, "Greater than 120")],
        ),
        _sparse(
            "sweating",
            "Sweating over the past 1/2 hour, not accounted for by room temperature or activity",
            [
                (0, "No report of chills or flushing"),
                (1, "Subjective report of chills or flushing"),
                (2, "Flushed or observable moistness on face"),
                (3, "Beads of sweat on brow or face"),
                (4, "Sweat streaming off face"),
            ],
        ),
        _sparse(
            "restlessness",
            "Restlessness, observed during the assessment",
            [
                (0, "Able to sit still"),
                (1, "Reports difficulty sitting still, but is able to do so"),
                (3, "Frequent shifting or extraneous movements of legs/arms"),
                (5, "Unable to sit still for more than a few seconds"),
            ],
        ),
        _sparse(
            "pupil_size",
            "Pupil size",
            [
                (0, "Pupils pinned or normal size for room light"),
                (1, "Pupils possibly larger than normal for room light"),
                (2, "Pupils moderately dilated"),
                (5, "Pupils so dilated that only the rim of the iris is visible"),
            ],
        ),
        _sparse(
            "bone_joint_aches",
            "Bone or joint aches (only the part attributed to opioid withdrawal)",
            [
                (0, "Not present"),
                (1, "Mild diffuse discomfort"),
                (2, "Reports severe diffuse aching of joints/muscles"),
                (4, "Rubbing joints or muscles and unable to sit still because of discomfort"),
            ],
        ),
        _sparse(
            "runny_nose_tearing",
            "Runny nose or tearing, not accounted for by cold symptoms or allergies",
            [
                (0, "Not present"),
                (1, "Nasal stuffiness or unusually moist eyes"),
                (2, "Nose running or tearing"),
                (4, "Nose constantly running or tears streaming down cheeks"),
            ],
        ),
        _sparse(
            "gi_upset",
            "GI upset over the last 1/2 hour",
            [
                (0, "No GI symptoms"),
                (1, "Stomach cramps"),
                (2, "Nausea or loose stool"),
                (3, "Vomiting or diarrhea"),
                (5, "Multiple episodes of diarrhea or vomiting"),
            ],
        ),
        _sparse(
            "tremor",
            "Tremor, observed with outstretched hands",
            [
                (0, "No tremor"),
                (1, "Tremor can be felt, but not observed"),
                (2, "Slight tremor observable"),
                (4, "Gross tremor or muscle twitching"),
            ],
        ),
        _sparse(
            "yawning",
            "Yawning, observed during the assessment",
            [
                (0, "No yawning"),
                (1, "Yawning once or twice during the assessment"),
                (2, "Yawning three or more times during the assessment"),
                (4, "Yawning several times/minute"),
            ],
        ),
        _sparse(
            "anxiety_irritability",
            "Anxiety or irritability",
            [
                (0, "None"),
                (1, "Reports increasing irritability or anxiousness"),
                (2, "Obviously irritable or anxious"),
                (4, "So irritable or anxious that participation in the assessment is difficult"),
            ],
        ),
        _sparse(
            "gooseflesh",
            "Gooseflesh skin",
            [
                (0, "Skin is smooth"),
                (3, "Piloerection of skin can be felt or hairs standing up on arms"),
                (5, "Prominent piloerection"),
            ],
        ),
    ),
    options=(),  # every COWS item carries its own anchors
    clinician_only=True,
    bands=(
        Band(5, 12, "mild"),
        Band(13, 24, "moderate"),
        Band(25, 36, "moderately_severe"),
        Band(37, 48, "severe"),
    ),
)

INSTRUMENTS: dict[str, Instrument] = {i.code: i for i in (SOWS, SOWS_GOSSOP, COWS)}
