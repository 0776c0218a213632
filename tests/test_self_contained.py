"""The repository carries its own contract: nothing committed points outside the clone."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# A path that climbs out of the repository, or the absolute path of the machine it was written on.
_OUTSIDE = re.compile(r"\.\./shared\b|/work/(?:shared|main|origin)")
# Markdown links: [text](target)
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _tracked() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "-z"],  # noqa: S607 - git from PATH, as in CI
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [ROOT / name for name in out.split("\0") if name]


def _text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
        return None


def test_nothing_refers_outside_the_repository() -> None:
    me = Path(__file__).resolve()
    offenders = []
    for path in _tracked():
        if path.resolve() == me:
            continue
        text = _text(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if _OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_markdown_links_resolve_inside_the_repository() -> None:
    broken = []
    for path in _tracked():
        if path.suffix != ".md":
            continue
        for target in _LINK.findall(_text(path) or ""):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue  # a URL or an anchor on the same page
            resolved = (path.parent / target.split("#", 1)[0]).resolve()
            if not resolved.is_relative_to(ROOT) or not resolved.exists():
                broken.append(f"{path.relative_to(ROOT)}: {target}")
    assert broken == []


def test_the_contract_and_its_domain_facts_are_in_docs() -> None:
    for name in ("contract.md", "instruments.md", "privacy-and-consent.md"):
        assert (ROOT / "docs" / name).is_file(), name
    readme = (ROOT / "README.md").read_text()
    assert "docs/contract.md" in readme
