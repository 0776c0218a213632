"""Fixtures: one app per database backend, one rolled-back transaction per test, factories.

The suite runs on SQLite always and again on PostgreSQL when TEST_DATABASE_URL is set (each run
gets its own throwaway database, so parallel runs on one server do not collide). With
WAYMARK_REQUIRE_POSTGRES=1 (CI) every test that passes on SQLite must pass on PostgreSQL too:
branch on `backend` instead of skipping, or mark the test `sqlite_only`.
"""

from __future__ import annotations

import os

# Before the app is imported: no development secret file is written by the tests.
os.environ.setdefault("SECRET_KEY", "test-secret-" + "x" * 40)
os.environ.pop("DATABASE_URL", None)
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import settings
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from api import create_app
from api.auth import services as auth_services
from api.auth.models import AuthSession, User
from api.config import Config
from api.db import Base, make_engine
from api.security import issue_access_token
from tests.support.queries import count_queries

ROOT = Path(__file__).resolve().parent.parent

# Property tests search new examples on every local run (a developer's run may find a new bug);
# CI (.ci/run sets HYPOTHESIS_PROFILE=ci) replays the same ones, so whether main lands does not
# depend on the luck of the draw. A failure found locally is kept in .hypothesis/ and replayed.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
PG_URL = os.environ.get("TEST_DATABASE_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])
_ran_on: set[str] = set()


class TestConfig(Config):
    __test__ = False  # a config, not a test class, wherever it is imported

    def __init__(self, database_url: str) -> None:
        super().__init__()
        self.TESTING = True
        self.DATABASE_URL = database_url
        self.SECRET_KEY = "test-secret-" + "x" * 40
        self.REDIS_URL = None
        # Cheap hashes keep the suite fast; production parameters are tested on their own.
        self.ARGON2_MEMORY_KIB = 1024
        self.ARGON2_TIME_COST = 1
        self.LOG_LEVEL = "INFO"


def alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    return cfg


def _create_pg_database() -> tuple[str, Callable[[], None]]:
    assert PG_URL
    name = f"waymark_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return url, drop


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated, empty database for this backend (schema built by Alembic, as in production)."""
    if request.param == "postgresql":
        url, drop = _create_pg_database()
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"
        drop = lambda: None  # noqa: E731
    command.upgrade(alembic_config(url), "head")
    yield url
    drop()


@pytest.fixture(scope="session")
def backend(database_url: str) -> str:
    return "postgresql" if database_url.startswith("postgresql") else "sqlite"


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def app(database_url: str, engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Flask:
    os.environ.setdefault("WAYMARK_INSTANCE_DIR", str(tmp_path_factory.mktemp("instance")))
    application = create_app(TestConfig(database_url))
    db = application.extensions["db"]
    db.engine.dispose()
    db.engine = engine
    # The sessionmaker was bound to the engine just dropped; committed_db tests use it, and its
    # pool would otherwise leak connections past the end of the run.
    db.sessionmaker = sessionmaker(bind=engine, expire_on_commit=False)
    return application


@pytest.fixture
def connection(app: Flask, engine: Engine, backend: str) -> Iterator[sa.Connection]:
    """One outer transaction per test, rolled back at the end (SQLAlchemy's external-transaction
    recipe): code under test commits to savepoints, and nothing survives the test."""
    _ran_on.add(backend)
    conn = engine.connect()
    outer = conn.begin()
    db = app.extensions["db"]
    original = db.sessionmaker
    db.sessionmaker = sessionmaker(
        bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    yield conn
    db.sessionmaker = original
    outer.rollback()
    conn.close()


@pytest.fixture
def session(app: Flask, connection: sa.Connection) -> Iterator[Session]:
    # No app context is held open here: each request must get its own (and its own `g`), as in
    # production; tests that call app-bound helpers push one themselves.
    sess = app.extensions["db"].sessionmaker()
    yield sess
    sess.close()


@pytest.fixture
def client(app: Flask, connection: sa.Connection) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def strict_client(app: Flask, connection: sa.Connection) -> FlaskClient:
    """A client whose every /v1 and /fhir answer is checked against the served OpenAPI document
    strictly (tests/openapi_strict.py)."""
    from tests.openapi_strict import strict_client as make

    return make(app)


@pytest.fixture
def committed_db(app: Flask, engine: Engine, backend: str) -> Iterator[Engine]:
    """For tests that need real commits across connections (concurrency): every table is emptied
    afterwards instead of rolled back."""
    _ran_on.add(backend)
    yield engine
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def make_user(app: Flask, session: Session) -> Callable[..., User]:
    counter = iter(range(1, 1_000_000))

    def factory(**overrides: Any) -> User:
        n = next(counter)
        fields: dict[str, Any] = {
            "email": f"user{n}-{uuid.uuid4().hex[:6]}@example.test",
            "password": "correct horse battery",
            "display_name": f"User {n}",
            "timezone": "America/New_York",
            "role": "patient",
        }
        fields.update(overrides)
        with app.app_context():
            from api.security import password_hasher

            user = auth_services.create_user(session, hasher=password_hasher(), **fields)
        session.commit()
        return user

    return factory


@pytest.fixture
def make_patient(make_user: Callable[..., User]) -> Callable[..., User]:
    return lambda **kw: make_user(**{"role": "patient", **kw})


@pytest.fixture
def make_clinician(make_user: Callable[..., User]) -> Callable[..., User]:
    return lambda **kw: make_user(**{"role": "clinician", "organization": "Clinic", **kw})


@pytest.fixture
def make_admin(make_user: Callable[..., User]) -> Callable[..., User]:
    return lambda **kw: make_user(**{"role": "admin", **kw})


@pytest.fixture
def auth_headers(app: Flask, session: Session) -> Callable[[User], dict[str, str]]:
    """Bearer headers for a user, through a real login row (so revocation checks apply)."""

    def build(user: User) -> dict[str, str]:
        now = datetime.now(UTC)
        login = AuthSession(user_id=user.id, created_at=now)
        session.add(login)
        session.commit()
        with app.app_context():
            token = issue_access_token(
                user_id=user.id, role=user.role, session_id=login.id, now=now, ttl=3600
            )
        return {"Authorization": f"Bearer {token}"}

    return build


@pytest.fixture
def patient(make_patient: Callable[..., User]) -> User:
    return make_patient()


@pytest.fixture
def patient_headers(
    patient: User, auth_headers: Callable[[User], dict[str, str]]
) -> dict[str, str]:
    return auth_headers(patient)


# What passed, per backend, keyed by the test and its other parameters (never by the text of its
# id, where "sqlite" may appear for other reasons): {(test, other params): {backends}}.
_passed: dict[tuple[str, str], set[str]] = {}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call" and report.passed:
        callspec = getattr(item, "callspec", None)
        _record_pass(item.nodeid, dict(callspec.params) if callspec else {}, item.keywords)
    return report


def _record_pass(nodeid: str, params: dict[str, Any], keywords: Any) -> None:
    backend = params.pop("database_url", None)
    # Tests marked sqlite_only are not expected to pass on PostgreSQL as well; tests that use no
    # database have no twin.
    if backend is None or "sqlite_only" in keywords:
        return
    others = repr(sorted((name, repr(value)) for name, value in params.items()))
    _passed.setdefault((nodeid.split("[", 1)[0], others), set()).add(str(backend))


def _missing_on_postgresql() -> list[str]:
    """Tests that passed on SQLite whose PostgreSQL twin did not pass (skipped, or absent)."""
    return sorted(
        f"{test} {others}" for (test, others), kinds in _passed.items() if kinds == {"sqlite"}
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # CI sets WAYMARK_REQUIRE_POSTGRES=1: a run that silently skipped PostgreSQL, wholly or in
    # part, must fail.
    if os.environ.get("WAYMARK_REQUIRE_POSTGRES") != "1" or not session.testscollected:
        return
    if "postgresql" not in _ran_on:
        print("\nWAYMARK_REQUIRE_POSTGRES=1 but no test ran on PostgreSQL")  # noqa: T201
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        return
    missing = _missing_on_postgresql()
    if missing and exitstatus == pytest.ExitCode.OK:
        print(f"\nWAYMARK_REQUIRE_POSTGRES=1 but {len(missing)} test(s) passed on SQLite only:")  # noqa: T201
        for nodeid in missing[:20]:
            print(f"  {nodeid}")  # noqa: T201
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(name="count_queries")
def count_queries_fixture() -> Any:
    """tests.support.queries.count_queries: the one query counter (a context manager)."""
    return count_queries
