"""Backup drill: back up a database, restore it into a fresh one, and check the app serves it.

    python scripts/backup_drill.py postgresql+psycopg://postgres@127.0.0.1:5432/postgres

On that server it creates a source database of its own (waymark_drill_<random>), migrates it and
stores an account and a check-in through the API; runs scripts/backup.sh; restores with
scripts/restore.sh into a second new database; starts the app on the restored one, signs in and
reads the check-in back; checks the schema is at Alembic's head; drops both databases. Prints
one JSON line of figures (sizes, seconds). CI runs it (tests/test_backup.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from alembic import command  # noqa: E402
from alembic.config import Config as AlembicConfig  # noqa: E402
from alembic.script import ScriptDirectory  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

PASSWORD = "drill-password-" + uuid.uuid4().hex


def _alembic(url: str) -> AlembicConfig:
    cfg = AlembicConfig(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    return cfg


def _app(url: str) -> object:
    from api import create_app
    from api.config import Config

    config = Config()
    config.DATABASE_URL = url
    config.ARGON2_MEMORY_KIB, config.ARGON2_TIME_COST = 1024, 1  # a drill, not a vault
    return create_app(config)


def _seed(url: str) -> str:
    """An account and a check-in, stored through the API as a phone would."""
    app = _app(url)
    client = app.test_client()  # type: ignore[attr-defined]
    email = f"drill-{uuid.uuid4().hex[:8]}@example.test"
    registered = client.post(
        "/v1/auth/register",
        json={"email": email, "password": PASSWORD, "display_name": "Drill", "timezone": "UTC"},
    )
    assert registered.status_code == 202, registered.data
    token = _sign_in(client, email)
    recorded = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    checkin = client.post(
        "/v1/checkins",
        json={"recorded_at": recorded, "craving": 3},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert checkin.status_code == 201, checkin.data
    app.extensions["db"].engine.dispose()  # type: ignore[attr-defined]
    return email + " " + checkin.json["id"]


def _sign_in(client: object, email: str) -> str:
    answer = client.post(  # type: ignore[attr-defined]
        "/v1/auth/token", json={"email": email, "password": PASSWORD}
    )
    assert answer.status_code == 200, answer.data
    return str(answer.json["access_token"])


def _served(url: str, seeded: str) -> None:
    email, checkin_id = seeded.split()
    app = _app(url)
    client = app.test_client()  # type: ignore[attr-defined]
    token = _sign_in(client, email)
    listed = client.get("/v1/checkins", headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200, listed.data
    assert checkin_id in json.dumps(listed.json), "the restored check-in is not served"
    app.extensions["db"].engine.dispose()  # type: ignore[attr-defined]


def main(server_url: str) -> dict[str, object]:
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    name = f"waymark_drill_{uuid.uuid4().hex[:10]}"
    source = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    target = make_url(server_url).set(database=name + "_restored")
    target_url = target.render_as_string(hide_password=False)
    figures: dict[str, object] = {}
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}_restored"')
        command.upgrade(_alembic(source), "head")
        seeded = _seed(source)
        with tempfile.TemporaryDirectory() as folder:
            archive = Path(folder) / "waymark.dump"
            env = {**os.environ, "DATABASE_URL": source}
            started = time.monotonic()
            subprocess.run([str(ROOT / "scripts" / "backup.sh"), str(archive)], env=env, check=True)  # noqa: S603
            figures["backup_seconds"] = round(time.monotonic() - started, 2)
            figures["backup_bytes"] = archive.stat().st_size
            figures["backup_mode"] = oct(archive.stat().st_mode & 0o777)
            started = time.monotonic()
            subprocess.run(  # noqa: S603
                [str(ROOT / "scripts" / "restore.sh"), str(archive), target_url], check=True
            )
            figures["restore_seconds"] = round(time.monotonic() - started, 2)
        with sa.create_engine(target_url).connect() as conn:
            current = conn.scalar(sa.text("SELECT version_num FROM alembic_version"))
        heads = ScriptDirectory.from_config(_alembic(target_url)).get_heads()
        assert [current] == heads, f"restored schema at {current}, head is {heads}"
        _served(target_url, seeded)
        figures["served"] = True
    finally:
        with admin.connect() as conn:
            for db in (name, name + "_restored"):
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        admin.dispose()
    return figures


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(json.dumps(main(sys.argv[1])))  # noqa: T201 - the drill's figures are its output
