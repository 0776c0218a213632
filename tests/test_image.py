"""The container image and compose file (issue 15 item 3), tested without pulling any image.

The Dockerfile's rules are read from it; the entrypoint and its three commands run here exactly
as the image runs them (the image's environment, the compose file's settings, its health check
commands), against a fresh PostgreSQL database of their own: `migrate` upgrades it, two
`scheduler`s elect one leader, `api` answers /healthz and /readyz. The compose file and the
README settings table must agree.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from api.config import Config
from tests.conftest import PG_URL, ROOT, _create_pg_database
from tests.test_config import _documented

DOCKERFILE = (ROOT / "Dockerfile").read_text()
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
WAYMARK_SERVICES = ("migrate", "api1", "api2", "scheduler1", "scheduler2")


def _instructions(name: str) -> list[str]:
    joined = DOCKERFILE.replace("\\\n", " ")
    return [m.group(1).strip() for m in re.finditer(rf"^{name}\s+(.*)$", joined, re.MULTILINE)]


def _json_array(instruction: str) -> list[str]:
    return json.loads(instruction[instruction.index("[") :])


def test_the_dockerfile_builds_in_stages_without_dev_tools_and_runs_as_a_user() -> None:
    stages = _instructions("FROM")
    assert len(stages) >= 2 and any(" AS runtime" in s for s in stages)
    runs = " ".join(_instructions("RUN"))
    assert "uv sync --frozen --no-dev" in runs
    assert "uv==0.13.9" in runs  # the uv the Makefile pins
    assert re.search(r"^UV_VERSION := 0\.13\.9$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    (user,) = _instructions("USER")
    assert not user.startswith(("root", "0"))
    (health,) = _instructions("HEALTHCHECK")
    assert "/healthz" in health
    assert _json_array(_instructions("ENTRYPOINT")[0]) == ["scripts/entrypoint.sh"]
    assert _json_array(_instructions("CMD")[0]) == ["api"]
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "instance", ".git"} <= set(ignored)  # no secrets or dev venv in the image


def test_compose_runs_two_apis_two_schedulers_and_their_backing_services() -> None:
    services = COMPOSE["services"]
    commands = [services[name].get("command") for name in services]
    assert commands.count(["api"]) == 2
    assert commands.count(["scheduler"]) == 2
    assert commands.count(["migrate"]) == 1
    images = " ".join(str(s.get("image", "")) for s in services.values())
    assert "postgres" in images and "redis" in images and "mailpit" in images
    probes = [
        " ".join(services[name]["healthcheck"]["test"])
        for name in services
        if services[name].get("command") == ["api"]
    ]
    assert probes and all("/readyz" in p for p in probes)
    assert "/healthz" in " ".join(_instructions("HEALTHCHECK"))


def test_compose_settings_are_in_the_readme_and_pass_the_production_checks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    documented = _documented()
    for name in WAYMARK_SERVICES:
        env = COMPOSE["services"][name]["environment"]
        unknown = set(env) - documented
        assert not unknown, f"{name}: not in the README settings table: {sorted(unknown)}"
        assert env["WAYMARK_ENV"] == "production"
        for key, value in env.items():
            monkeypatch.setenv(key, str(value))
        Config()  # refuses SQLite, a loopback PUBLIC_BASE_URL, missing mail settings
        assert env["EXPORT_STORAGE"] == "database"  # several hosts: any one serves any file


# --- The entrypoint, run as the image runs it ---------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _image_env(service: str, database_url: str, instance: Path) -> dict[str, str]:
    """The image's ENV lines, then the compose service's environment, with what names other
    containers (postgres, redis, mailpit) pointed at this machine."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEY")}
    for line in _instructions("ENV"):
        for key, value in re.findall(r"(\w+)=(\S+)", line):
            env[key] = value.replace("/app/", f"{ROOT}/").replace("$PATH", os.environ["PATH"])
    env.update({k: str(v) for k, v in COMPOSE["services"][service]["environment"].items()})
    env.pop("REDIS_URL")  # the throttles fall back to the database; CI runs no Redis
    env.update(
        DATABASE_URL=database_url,
        SMTP_HOST="127.0.0.1",
        WAYMARK_INSTANCE_DIR=str(instance),
        WEB_CONCURRENCY="2",
        HEARTBEAT_INTERVAL="1",
        SCHEDULER_LEADER_RETRY="1",
    )
    return env


def _start(command: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(  # noqa: S603 - our own script
            [str(ROOT / "scripts" / "entrypoint.sh"), command],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _healthy(test: list[str], port_from: int, port_to: int, timeout: float = 40) -> bool:
    """Run a compose health check command (["CMD", "python", ...]) with the port mapped."""
    argv = [arg.replace(f":{port_from}/", f":{port_to}/") for arg in test[1:]]
    argv[0] = sys.executable if argv[0] == "python" else argv[0]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if subprocess.run(argv, cwd=ROOT, check=False).returncode == 0:  # noqa: S603
            return True
        time.sleep(0.5)
    return False


@pytest.fixture
def image_database() -> Iterator[str]:
    if not PG_URL:
        pytest.skip("the image runs against PostgreSQL (WAYMARK_ENV=production refuses SQLite)")
    url, drop = _create_pg_database()
    yield url
    drop()


@pytest.mark.slow
@pytest.mark.postgres_only
def test_the_entrypoint_migrates_serves_and_schedules_as_in_the_image(
    image_database: str, tmp_path: Path, backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("the image runs against PostgreSQL")
    started: list[subprocess.Popen[bytes]] = []
    try:
        migrate = subprocess.run(  # noqa: S603 - our own script
            [str(ROOT / "scripts" / "entrypoint.sh"), "migrate"],
            cwd=ROOT,
            env=_image_env("migrate", image_database, tmp_path / "m"),
            capture_output=True,
            check=False,
            timeout=120,
        )
        assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-2000:]
        lines = [json.loads(line) for line in migrate.stdout.decode().splitlines() if line]
        assert any(line["event"].startswith("Running upgrade") for line in lines)
        assert all(line["logger"].startswith("alembic") for line in lines)  # JSON, like the rest

        api_port = _free_port()
        env = _image_env("api1", image_database, tmp_path / "a")
        env["BIND"] = env["BIND"].replace("0.0.0.0:8000", f"127.0.0.1:{api_port}")
        started.append(_start("api", env, tmp_path / "api.log"))
        metrics_ports = []
        for name in ("scheduler1", "scheduler2"):
            port = _free_port()
            env = _image_env(name, image_database, tmp_path / name)
            env["SCHEDULER_METRICS_ADDR"] = f"127.0.0.1:{port}"
            metrics_ports.append(port)
            started.append(_start("scheduler", env, tmp_path / f"{name}.log"))

        api_probe = COMPOSE["services"]["api1"]["healthcheck"]["test"]
        assert _healthy(api_probe, 8000, api_port), (tmp_path / "api.log").read_text()[-3000:]
        image_probe = _json_array(_instructions("HEALTHCHECK")[0].split("CMD", 1)[1])
        assert _healthy(["CMD", *image_probe], 8000, api_port)
        with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/healthz", timeout=10) as r:
            assert json.load(r)["version"]
        scheduler_probe = COMPOSE["services"]["scheduler1"]["healthcheck"]["test"]
        for port in metrics_ports:
            assert _healthy(scheduler_probe, 9100, port)
        assert _one_leader(metrics_ports), [
            (tmp_path / f"scheduler{n}.log").read_text()[-2000:] for n in (1, 2)
        ]
        with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/readyz", timeout=10) as r:
            assert json.load(r)["scheduler"]["status"] == "ok"
    finally:
        for process in started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _one_leader(ports: list[int], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leading = [_leader_sample(port) for port in ports]
        if sorted(leading) == [0.0, 1.0]:
            return True
        time.sleep(0.5)
    return False


def _leader_sample(port: int) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    match = re.search(r"^waymark_scheduler_leader\{[^}]*\} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None
