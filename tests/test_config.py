"""Configuration: every variable the code reads is in the README table; production refuses weak
secrets."""

from __future__ import annotations

import re

import pytest

from api.config import Config
from tests.conftest import ROOT

_PY = re.compile(
    r'(?:_env|_int|_bool)\(\s*"([A-Z][A-Z0-9_]+)"|os\.environ(?:\.get)?[(\[]\s*"([A-Z][A-Z0-9_]+)"'
)
_GENERIC = {"TMPDIR", "HOME", "PATH"}


def _read_by_code() -> set[str]:
    names: set[str] = set()
    sources = [*ROOT.joinpath("api").rglob("*.py"), *ROOT.joinpath("jobs").rglob("*.py")]
    sources += [ROOT / "gunicorn.conf.py", ROOT / "wsgi.py", ROOT / "migrations" / "env.py"]
    sources += [*ROOT.joinpath("scripts").glob("*.py"), ROOT / "tests" / "conftest.py"]
    sources.append(ROOT / "tests" / "test_openapi_fuzz.py")  # FUZZ_EXAMPLES: the fuzz budget
    sources.append(ROOT / "tests" / "clinic" / "test_browser.py")  # the browser tests' switches
    for path in sources:
        for match in _PY.finditer(path.read_text()):
            names.add(match.group(1) or match.group(2))
    for path in ROOT.joinpath("scripts").glob("*.sh"):
        names.update(re.findall(r"\$\{([A-Z][A-Z0-9_]+)", path.read_text()))
    makefile = (ROOT / "Makefile").read_text()
    defined = set(re.findall(r"^([A-Z][A-Z0-9_]+)\s*:=", makefile, re.MULTILINE))
    names.update(re.findall(r"^([A-Z][A-Z0-9_]+)\s*\?=", makefile, re.MULTILINE))
    names.update(set(re.findall(r"\$\(([A-Z][A-Z0-9_]+)\)", makefile)) - defined)
    return names - _GENERIC


def _documented() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Configuration") : readme.index("## Running in production")]
    first_cells = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    return {name for cell in first_cells for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", cell)}


def test_every_variable_the_code_reads_is_in_the_readme_table() -> None:
    read = _read_by_code()
    assert {"DATABASE_URL", "ARGON2_MEMORY_KIB", "SWAGGER_UI_URL", "BIND", "PYTEST_ARGS"} <= read
    missing = read - _documented()
    assert not missing, f"add to the README configuration table: {sorted(missing)}"


def test_the_readme_documents_nothing_the_code_does_not_read() -> None:
    assert _documented() - _read_by_code() == set()


@pytest.mark.parametrize("secret", [None, "", "short-secret"])
def test_production_refuses_a_missing_or_short_secret(
    monkeypatch: pytest.MonkeyPatch, secret: str | None
) -> None:
    monkeypatch.setenv("WAYMARK_ENV", "production")
    if secret is None:
        monkeypatch.delenv("SECRET_KEY", raising=False)
    else:
        monkeypatch.setenv("SECRET_KEY", secret)
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        Config()


PRODUCTION = {
    "WAYMARK_ENV": "production",
    "SECRET_KEY": "s" * 32,
    "MFA_ENCRYPTION_KEY": "m" * 43 + "=",
    "DATABASE_URL": "postgresql+psycopg://waymark@db/waymark",
    "PUBLIC_BASE_URL": "https://waymark.example.org",
    "SMTP_HOST": "smtp.example.org",
    "MAIL_FROM": "Waymark <no-reply@example.org>",
}


def _production(monkeypatch: pytest.MonkeyPatch, **changes: str | None) -> None:
    for name, value in {**PRODUCTION, **changes}.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)


def test_production_accepts_a_long_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    _production(monkeypatch)
    cfg = Config()
    assert cfg.SECRET_KEY == "s" * 32
    assert cfg.MFA_ENCRYPTION_KEY == "m" * 43 + "="


def test_outside_production_the_mfa_key_is_derived_from_the_secret_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("WAYMARK_ENV", raising=False)
    monkeypatch.delenv("MFA_ENCRYPTION_KEY", raising=False)
    monkeypatch.setenv("SECRET_KEY", "a" * 40)
    first = Config().MFA_ENCRYPTION_KEY
    assert first == Config().MFA_ENCRYPTION_KEY  # stable across restarts
    assert "a" * 10 not in first
    monkeypatch.setenv("SECRET_KEY", "b" * 40)
    assert first != Config().MFA_ENCRYPTION_KEY


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", None),
        ("DATABASE_URL", "sqlite:////srv/waymark.sqlite3"),
        ("PUBLIC_BASE_URL", None),
        ("PUBLIC_BASE_URL", "http://127.0.0.1:8000"),
        ("PUBLIC_BASE_URL", "http://localhost"),
        ("PUBLIC_BASE_URL", "https://[::1]:8443"),
        ("PUBLIC_BASE_URL", "not a url"),
        ("SMTP_HOST", None),
        ("SMTP_HOST", ""),
        ("MAIL_FROM", None),
        ("SECRET_KEY_PREVIOUS", "short"),
        ("MFA_ENCRYPTION_KEY", None),
        ("MFA_ENCRYPTION_KEY", ""),
        ("MFA_ENCRYPTION_KEY", "not-a-fernet-key"),
        ("MFA_ENCRYPTION_KEY_PREVIOUS", "short"),
    ],
)
def test_production_refuses_unsafe_settings(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str | None
) -> None:
    _production(monkeypatch, **{name: value})
    with pytest.raises(RuntimeError, match=name):
        Config()


def test_development_keeps_its_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WAYMARK_ENV", "DATABASE_URL", "PUBLIC_BASE_URL", "SMTP_HOST", "MAIL_FROM"):
        monkeypatch.delenv(name, raising=False)
    cfg = Config()
    assert cfg.DATABASE_URL.startswith("sqlite")
    assert cfg.PUBLIC_BASE_URL == "http://127.0.0.1:8000"
