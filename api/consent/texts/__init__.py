"""The consent texts patients sign: full, versioned and immutable.

Each version is a file beside this module, pinned here by its SHA-256. A published text is never
edited (a change is a new version), so a signed consent's `consent_text_version` always resolves
to exactly the words the patient saw; the pin makes an edit fail at load, not drift silently.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path

_HERE = Path(__file__).parent

# version -> (date published, SHA-256 of the file)
PUBLISHED: dict[str, tuple[date, str]] = {
    "2026-01": (
        date(2026, 1, 1),
        "2e383cce50ef216b76f19e351ceaa0c64b42fa75ac1bc4acd6b99d186c657cae",
    ),
}
CURRENT = "2026-01"


class TextChanged(RuntimeError):
    """A published consent text's file no longer matches its pin."""


@dataclass(frozen=True)
class ConsentText:
    version: str
    published: date
    sha256: str
    text: str


@cache
def get(version: str) -> ConsentText | None:
    """The text of a version, or None for a version never published."""
    if version not in PUBLISHED:
        return None
    published, pinned = PUBLISHED[version]
    raw = (_HERE / f"{version}.md").read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != pinned:
        raise TextChanged(f"consent text {version} was edited after publication")
    return ConsentText(version, published, digest, raw.decode("utf-8"))


def versions() -> list[ConsentText]:
    return [t for v in PUBLISHED if (t := get(v)) is not None]
