"""Where bulk export files live (issue 15 item 2, issue 11 item 16): in the database any API host
serves any file; on disk they are private to the service; a crashed export leaves no orphan.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api import create_app
from api.auth.models import AuthSession, User
from api.export.models import ExportJob
from api.export.storage import DatabaseStorage, DiskStorage, ExportFile, storage_from_config
from api.security import issue_access_token
from jobs import bulk_export
from tests.conftest import TestConfig
from tests.export.test_bulk import ASYNC, _path


def _instance(database_url: str, export_dir: Path) -> Flask:
    """An API host of its own: its own engine, its own disk; only the database is shared."""
    app = create_app(TestConfig(database_url))
    app.config["EXPORT_STORAGE"] = "database"
    app.config["EXPORT_DIR"] = str(export_dir)
    return app


@pytest.fixture
def hosts(database_url: str, committed_db: sa.Engine, tmp_path: Path) -> Iterator[list[Flask]]:
    apps = [_instance(database_url, tmp_path / f"host-{n}") for n in "abc"]
    yield apps
    for app in apps:
        app.extensions["db"].engine.dispose()


def _admin(app: Flask) -> dict[str, str]:
    make = app.extensions["db"].sessionmaker
    with app.app_context(), make() as session:
        admin = User(email="ops@example.test", password_hash="x", display_name="A", role="admin")
        patient = User(email="p@example.test", password_hash="x", display_name="P", timezone="UTC")
        session.add_all([admin, patient])
        session.flush()
        login = AuthSession(user_id=admin.id, created_at=datetime.now(UTC))
        session.add(login)
        session.commit()
        token = issue_access_token(
            user_id=admin.id, role="admin", session_id=login.id, now=datetime.now(UTC), ttl=600
        )
    return {"Authorization": f"Bearer {token}"}


def _run_scheduler_tick(app: Flask) -> Any:
    """The scheduler host: run the next export with the storage its configuration names."""
    with app.app_context(), app.extensions["db"].sessionmaker() as session:
        job = bulk_export.run_next_export(
            session,
            now=datetime.now(UTC),
            export_dir=storage_from_config(app.config),
            base_url="https://waymark.example.org/fhir",
            ttl=3600,
            leader=True,
        )
        session.commit()
        return job


def test_two_api_hosts_serve_the_files_of_an_export_run_on_a_third(
    hosts: list[Flask], committed_db: sa.Engine
) -> None:
    host_a, host_b, scheduler = hosts
    headers = _admin(host_a)
    started = host_a.test_client().get("/fhir/Patient/$export", headers={**headers, **ASYNC})
    assert started.status_code == 202
    job = _run_scheduler_tick(scheduler)
    assert job.status == "completed"
    status_url = _path(started.headers["Content-Location"])
    manifest = host_b.test_client().get(status_url, headers=headers).json
    assert manifest["output"]
    for output in manifest["output"]:
        bodies = []
        for host in (host_a, host_b):
            answer = host.test_client().get(_path(output["url"]), headers=headers)
            assert answer.status_code == 200, output["url"]
            assert answer.mimetype == "application/fhir+ndjson"
            bodies.append(answer.get_data())
            answer.close()  # as the WSGI server does: ends the streamed response's transaction
        assert bodies[0] == bodies[1]
        assert len(bodies[0].splitlines()) == output["count"]
    # Nothing on any host's disk: the database holds the files.
    for host in hosts:
        folder = Path(host.config["EXPORT_DIR"])
        assert not folder.exists() or not any(folder.rglob("*.ndjson"))
    # A delete through one host removes them for all.
    assert host_b.test_client().delete(status_url, headers=headers).status_code == 202
    with committed_db.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(ExportFile)) == 0
    url = _path(manifest["output"][0]["url"])
    assert host_a.test_client().get(url, headers=headers).status_code == 404


def test_database_storage_streams_large_files_in_chunks(
    session: Session, make_admin: Callable[..., User], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("api.export.storage.CHUNK", 10)
    job = ExportJob(
        requester_id=make_admin().id,
        types=["Patient"],
        request_url="x",
        created_at=datetime.now(UTC),
    )
    session.add(job)
    session.flush()
    storage = DatabaseStorage()
    writer = storage.writer(session, job.id, "Patient")
    for n in range(7):
        writer.write(b"line %d\n" % n)
    writer.close()
    session.commit()  # the job commits its files; the reader ends its read per chunk
    chunks = list(storage.read(session, job.id, "Patient") or [])
    assert len(chunks) > 1 and all(len(c) <= 10 for c in chunks)
    assert b"".join(chunks) == b"".join(b"line %d\n" % n for n in range(7))
    assert storage.read(session, job.id, "Observation") is None
    storage.delete(session, job.id)
    storage.delete(session, job.id)  # again: nothing to remove is fine
    assert storage.read(session, job.id, "Patient") is None


def test_files_on_disk_are_private_to_the_service(
    session: Session, make_admin: Callable[..., User], tmp_path: Path
) -> None:
    job = ExportJob(
        requester_id=make_admin().id,
        types=["Patient"],
        request_url="x",
        created_at=datetime.now(UTC),
    )
    session.add(job)
    session.flush()
    old = os.umask(0o022)  # a common default, which made them 0644 in 0755
    try:
        storage = DiskStorage(tmp_path / "exports")
        writer = storage.writer(session, job.id, "Patient")
        writer.write(b"{}\n")
        writer.close()
    finally:
        os.umask(old)
    folder = storage.folder(job.id)
    for directory in (storage.root, folder):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "Patient.ndjson").stat().st_mode) == 0o600


@pytest.mark.parametrize("kind", ["disk", "database"])
def test_a_crashed_export_is_failed_and_its_partial_files_removed(
    app: Flask,
    session: Session,
    make_admin: Callable[..., User],
    tmp_path: Path,
    kind: str,
) -> None:
    admin = make_admin()
    storage = DiskStorage(tmp_path / "exports") if kind == "disk" else DatabaseStorage()
    # What a scheduler killed mid-run leaves: a running job and part of its files.
    crashed = ExportJob(
        requester_id=admin.id,
        types=["Patient", "Observation"],
        request_url="x",
        created_at=datetime.now(UTC),
        status="running",
        progress=16,
        started_at=datetime.now(UTC),
    )
    session.add(crashed)
    session.flush()
    writer = storage.writer(session, crashed.id, "Patient")
    writer.write(b'{"resourceType": "Patient"}\n')
    writer.close()
    session.commit()
    with app.app_context():
        # The (new) leader's next export tick, seconds later.
        bulk_export.run_next_export(
            session, now=datetime.now(UTC), export_dir=storage, base_url="b", ttl=60, leader=True
        )
    session.expire_all()
    failed = session.get(ExportJob, crashed.id)
    assert failed is not None and failed.status == "failed"
    assert failed.error and "interrupted" in failed.error
    assert storage.read(session, crashed.id, "Patient") is None
    # The requester is no longer held up by the one-active-export rule.
    session.add(
        ExportJob(
            requester_id=admin.id, types=["Patient"], request_url="x", created_at=datetime.now(UTC)
        )
    )
    session.flush()


def test_only_the_leader_fails_running_exports(
    app: Flask, session: Session, make_admin: Callable[..., User], tmp_path: Path
) -> None:
    running = ExportJob(
        requester_id=make_admin().id,
        types=["Patient"],
        request_url="x",
        created_at=datetime.now(UTC),
        status="running",
        started_at=datetime.now(UTC),
    )
    session.add(running)
    session.commit()
    with app.app_context():
        bulk_export.run_next_export(
            session, now=datetime.now(UTC), export_dir=str(tmp_path), base_url="b", ttl=60
        )
    session.expire_all()
    assert session.get(ExportJob, running.id).status == "running"  # type: ignore[union-attr]


def test_storage_setting_is_checked() -> None:
    assert storage_from_config({"EXPORT_STORAGE": "database"}).kind == "database"
    assert storage_from_config({"EXPORT_STORAGE": "disk", "EXPORT_DIR": "/x"}).kind == "disk"
    with pytest.raises(RuntimeError, match="EXPORT_STORAGE"):
        storage_from_config({"EXPORT_STORAGE": "s3"})
