"""Alembic is the only source of schema: models and migrations agree, and the chain round-trips."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Any

import pyotp
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

import api.all_models  # noqa: F401
from api.auth import mfa
from api.config import Config
from api.db import Base, make_engine
from tests.conftest import _ran_on, alembic_config


def _fresh_url(database_url: str, tmp_path) -> tuple[str, object]:
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'migrate.sqlite3'}", lambda: None
    from tests.conftest import _create_pg_database

    return _create_pg_database()


def test_models_and_migrations_agree(engine: Engine, backend: str) -> None:
    _ran_on.add(backend)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], f"models differ from migrations: {diff}"


def test_single_head() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1


def test_file_names_follow_the_chain() -> None:
    """Reading the folder in name order is reading the chain from base to head (revision ids
    stay as they were; a new migration takes a number above the head's file)."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    chain = [rev.path for rev in reversed(list(script.walk_revisions()))]
    names = [path.rsplit("/", 1)[-1] for path in chain]
    numbers = [int(name.split("_", 1)[0]) for name in names]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers), names


@pytest.mark.slow
def test_upgrade_downgrade_upgrade(database_url: str, backend: str, tmp_path) -> None:
    _ran_on.add(backend)
    url, drop = _fresh_url(database_url, tmp_path)
    try:
        cfg = alembic_config(url)
        command.upgrade(cfg, "head")
        command.downgrade(cfg, "base")
        eng = make_engine(url)
        with eng.connect() as conn:
            tables = set(conn.dialect.get_table_names(conn)) - {"alembic_version"}
        eng.dispose()
        assert tables == set()
        command.upgrade(cfg, "head")
    finally:
        drop()


def _filler(column: sa.Column[Any], given: dict[str, Any]) -> Any:
    if column.name in given:
        return given[column.name]
    if column.name == "id" or column.name.endswith("_id"):
        return uuid.uuid4().hex
    kind = column.type.python_type
    if kind is datetime:
        return "2026-01-01 00:00:00.000000"
    if kind is bool:
        return False  # PostgreSQL will not take 0 for a boolean
    if kind is int:
        return 0
    return "x"


def _insert(conn: sa.Connection, table: str, **given: Any) -> None:
    t = sa.Table(table, sa.MetaData(), autoload_with=conn)
    row = {c.name: _filler(c, given) for c in t.columns if not c.nullable or c.name in given}
    names = ", ".join(row)
    conn.execute(
        sa.text(f"INSERT INTO {table} ({names}) VALUES ({', '.join(':' + n for n in row)})"), row
    )


def test_part2_migration_keeps_consents_their_categories_and_summaries(tmp_path) -> None:
    """0022 rebuilds `consents` on SQLite (to drop the recipient's foreign key); the rows that
    point at consents must come through, and the ledger gets each row's purpose."""
    url = f"sqlite:///{tmp_path / 'part2.sqlite3'}"
    cfg = alembic_config(url)
    command.upgrade(cfg, "0009")
    eng = make_engine(url)
    patient, clinician, consent, older = (uuid.uuid4().hex for _ in range(4))
    with eng.begin() as conn:
        _insert(
            conn,
            "users",
            id=patient,
            email="p@x.test",
            display_name="Pat At Signing",
            role="patient",
        )
        _insert(conn, "users", id=clinician, email="c@x.test", role="clinician")
        for cid, replaces in ((older, None), (consent, older)):
            _insert(
                conn,
                "consents",
                id=cid,
                patient_id=patient,
                recipient_id=clinician,
                purpose="treatment",
                replaces_id=replaces,
            )
            _insert(conn, "consent_categories", consent_id=cid, category="symptoms")
        _insert(
            conn,
            "weekly_summaries",
            consent_id=consent,
            patient_id=patient,
            clinician_id=clinician,
            id=uuid.uuid4().hex,
            week_start="2026-01-05",
            status="built",
        )
        _insert(conn, "disclosures", consent_id=consent, kind="read", categories="[]")
        _insert(conn, "disclosures", consent_id=uuid.uuid4().hex, kind="read", categories="[]")
    eng.dispose()
    command.upgrade(cfg, "head")
    eng = make_engine(url)
    with eng.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM consent_categories")).scalar() == 2
        assert conn.execute(sa.text("SELECT count(*) FROM weekly_summaries")).scalar() == 1
        rows = conn.execute(sa.text("SELECT id, replaces_id, patient_name FROM consents")).all()
        assert {(r[0], r[1], r[2]) for r in rows} == {
            (older, None, "Pat At Signing"),
            (consent, older, "Pat At Signing"),
        }
        purposes = conn.execute(sa.text("SELECT purpose FROM disclosures")).scalars().all()
        assert sorted(purposes) == ["treatment", "unrecorded"]
    eng.dispose()


def test_emails_are_normalized_and_look_alike_collisions_left_and_reported(
    database_url: str, backend: str, tmp_path
) -> None:
    """0026 gives stored emails the app's one spelling (issue 11 item 13), and never merges
    or half-renames two accounts that meet in one spelling: both stay, reported by id only."""
    import json

    from structlog.testing import capture_logs

    from api.fields import normalize_email

    _ran_on.add(backend)
    url, drop = _fresh_url(database_url, tmp_path)
    try:
        cfg = alembic_config(url)
        command.upgrade(cfg, "0025")
        ids = {name: uuid.uuid4().hex for name in ("wide", "idn", "plain", "twin", "twin2", "zw")}
        stored = {
            "wide": "\uff41\uff4e\uff4e@example.com",  # fullwidth "ann"
            "idn": "carl@b\u00fccher.example",
            "plain": "dora@example.com",
            "twin": "eve@example.com",
            "twin2": "\uff45ve@example.com",  # fullwidth e: a look-alike of "twin"
            "zw": "f\u200bred@example.com",  # a zero-width space: refused at the edge now
        }
        eng = make_engine(url)
        with eng.begin() as conn:
            for name, user_id in ids.items():
                _insert(
                    conn,
                    "users",
                    id=user_id,
                    email=stored[name],
                    role="patient",
                    discreet_notifications=False,
                )
        eng.dispose()
        with capture_logs() as logs:
            command.upgrade(cfg, "head")
        logged = json.dumps(logs, ensure_ascii=False)
        eng = make_engine(url)
        with eng.connect() as conn:
            rows = conn.execute(sa.text("SELECT id, email FROM users")).all()
        eng.dispose()
        by_id = {uuid.UUID(str(r[0])).hex: r[1] for r in rows}
        assert by_id[ids["wide"]] == "ann@example.com"
        assert by_id[ids["idn"]] == "carl@xn--bcher-kva.example"
        assert by_id[ids["idn"]] == normalize_email(stored["idn"])
        assert by_id[ids["plain"]] == stored["plain"]
        # Neither of the two look-alikes is renamed onto the other, nor merged.
        assert by_id[ids["twin"]] == stored["twin"]
        assert by_id[ids["twin2"]] == stored["twin2"]
        assert by_id[ids["zw"]] == stored["zw"]
        events = {e["event"]: e for e in logs if e["event"].startswith("users.email")}
        collision = events["users.email_collision"]
        assert {uuid.UUID(i).hex for i in collision["user_ids"]} == {ids["twin"], ids["twin2"]}
        refused = events["users.email_refused_spelling"]
        assert {uuid.UUID(i).hex for i in refused["user_ids"]} == {ids["zw"]}
        for email in stored.values():  # ids only, never an address
            assert email not in logged and normalize_email(email) not in logged
    finally:
        drop()


def test_mfa_migration_seals_plaintext_secrets_and_keys_recovery_codes(
    database_url: str, tmp_path
) -> None:
    """0028 encrypts the TOTP secrets stored in the clear (and keys the bare SHA-256 recovery
    hashes) without touching the rows that point at users; downgrading gives the secrets back."""
    url, drop = _fresh_url(database_url, tmp_path)
    try:
        cfg = alembic_config(url)
        command.upgrade(cfg, "0027")
        eng = make_engine(url)
        user, clinician, consent = (uuid.uuid4().hex for _ in range(3))
        secret, pending = pyotp.random_base32(), pyotp.random_base32()
        code = "ab12c-34de5"
        bare = hashlib.sha256(code.replace("-", "").encode()).hexdigest()
        with eng.begin() as conn:
            _insert(conn, "users", id=user, email="c@x.test", role="clinician", totp_secret=secret)
            _insert(conn, "users", id=clinician, email="d@x.test", role="patient")
            _insert(conn, "recovery_codes", id=uuid.uuid4().hex, user_id=user, code_hash=bare)
            _insert(
                conn,
                "clinic_sessions",
                id=uuid.uuid4().hex,
                user_id=user,
                stage="password",
                pending_totp_secret=pending,
            )
            _insert(
                conn,
                "consents",
                id=consent,
                patient_id=clinician,
                recipient_id=user,
                purpose="treatment",
                patient_name="P",
            )
        eng.dispose()
        command.upgrade(cfg, "0028")
        box = mfa.SecretBox.of(vars(Config()))
        eng = make_engine(url)
        with eng.connect() as conn:
            sealed = conn.execute(
                sa.text("SELECT totp_secret FROM users WHERE totp_secret IS NOT NULL")
            ).scalar_one()
            held = conn.execute(
                sa.text("SELECT pending_totp_secret FROM clinic_sessions")
            ).scalar_one()
            keyed = conn.execute(sa.text("SELECT code_hash FROM recovery_codes")).scalar_one()
            kept = conn.execute(sa.text("SELECT count(*) FROM consents")).scalar_one()
        eng.dispose()
        assert secret not in sealed and box.open(sealed) == (secret, False)
        assert pending not in held and box.open(held) == (pending, False)
        assert keyed != bare and keyed in box.code_hashes(code)
        assert kept == 1
        command.downgrade(cfg, "0027")
        eng = make_engine(url)
        with eng.connect() as conn:
            plain = conn.execute(
                sa.text("SELECT totp_secret FROM users WHERE totp_secret IS NOT NULL")
            ).scalar_one()
            again = conn.execute(
                sa.text("SELECT pending_totp_secret FROM clinic_sessions")
            ).scalar_one()
        eng.dispose()
        assert (plain, again) == (secret, pending)
    finally:
        drop()


def test_accounts_older_than_verification_count_as_verified(tmp_path) -> None:
    """0029: an account made before email verification existed is verified (at its creation),
    so REQUIRE_EMAIL_VERIFICATION never locks it out; the flag is null for new accounts."""
    url = f"sqlite:///{tmp_path / 'verified.sqlite3'}"
    cfg = alembic_config(url)
    command.upgrade(cfg, "0028")
    eng = make_engine(url)
    user = uuid.uuid4().hex
    with eng.begin() as conn:
        _insert(
            conn,
            "users",
            id=user,
            email="old@x.test",
            role="patient",
            created_at="2026-01-02 03:04:05",
        )
    eng.dispose()
    command.upgrade(cfg, "0029")
    eng = make_engine(url)
    with eng.connect() as conn:
        verified = conn.execute(sa.text("SELECT email_verified_at FROM users")).scalar()
        assert str(verified).startswith("2026-01-02 03:04:05")
        assert conn.execute(sa.text("SELECT count(*) FROM email_tokens")).scalar() == 0
    eng.dispose()
    command.downgrade(cfg, "0028")
    command.upgrade(cfg, "head")
