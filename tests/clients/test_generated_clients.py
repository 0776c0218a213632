"""Issue 13's "done when": a Python client generated from the served document with
openapi-python-client, a scripted flow type-checked with mypy --strict against it, and run
against a live server; TypeScript types generated with openapi-typescript (npm, pinned in
package-lock.json) and a flow over the same operations type-checked with tsc --strict, then
compiled and run with node against the same kind of live server. The
document is used as served: no patching, no casts, no hand-written requests in either flow.

The TypeScript half needs node and `npm ci`; like the browser tests it is skipped where they are
missing, unless WAYMARK_REQUIRE_BROWSER=1 (CI), which turns the skip into a failure."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from flask import Flask

from api import create_app
from api.export.storage import storage_from_config
from jobs import bulk_export
from jobs.__main__ import run_in_transaction, run_send
from tests.conftest import TestConfig, alembic_config
from tests.livesite import serve
from tests.servers import Mailbox, start_smtp

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BIN = Path(sys.executable).parent
GENERATOR = BIN / "openapi-python-client"
ADMIN = ("admin@example.test", "admin password 12")
NODE = shutil.which("node")
NODE_BIN = ROOT / "node_modules" / ".bin"

_ts_missing = [
    what
    for what, ok in (
        ("node", NODE is not None),
        ("openapi-typescript (npm ci)", (NODE_BIN / "openapi-typescript").exists()),
        ("typescript (npm ci)", (NODE_BIN / "tsc").exists()),
        ("openapi-fetch (npm ci)", (ROOT / "node_modules" / "openapi-fetch").exists()),
    )
    if not ok
]
if _ts_missing and os.environ.get("WAYMARK_REQUIRE_BROWSER") == "1":
    raise RuntimeError(f"WAYMARK_REQUIRE_BROWSER=1 but missing: {', '.join(_ts_missing)}")

# What a flow may not contain: a way around the generated types (a cast, an ignore, `Any`) or
# around the generated client (an HTTP library, a raw URL, the client's underlying transport).
PY_FORBIDDEN = re.compile(
    r"\bcast\(|type:\s*ignore|\bAny\b|\bhttpx\b|\brequests\b|\burllib\b|\bhttp\.client\b"
    r"|get_httpx_client|get_async_httpx_client|set_httpx_client|\.json\(\)|[\"']/(v1|fhir)/"
)
TS_FORBIDDEN = re.compile(
    r"\bas\s+(const\b|unknown\b|any\b|[A-Z{\[(])|\bany\b|@ts-|\bfetch\(|XMLHttpRequest"
    r"|[\w)\]]!(?=[.\[(;,)\s])|<\w+>\s*\w"
)


def _code(path: Path, comment: str) -> str:
    """The source without comments and docstrings' prose lines (these may say `cast`)."""
    lines = [line.split(comment, 1)[0] for line in path.read_text().splitlines()]
    return "\n".join(lines)


def test_the_flows_use_only_the_generated_clients() -> None:
    python = _code(HERE / "flow.py", "#")
    python = re.sub(r'"""[\s\S]*?"""', "", python)
    assert not PY_FORBIDDEN.findall(python), PY_FORBIDDEN.findall(python)
    typescript = _code(HERE / "flow.ts", "//")
    assert not TS_FORBIDDEN.findall(typescript), TS_FORBIDDEN.findall(typescript)
    # The guards bite: each forbidden shape is caught.
    for bad in ("cast(Checkin, x)", "httpx.get(url)", 'client.get("/v1/me")', "r.json()"):
        assert PY_FORBIDDEN.search(bad), bad
    for bad in ("x as Checkin", "let y: any", "fetch(url)", "a!.b", "// @ts-ignore", "<T>x"):
        assert TS_FORBIDDEN.search(bad), bad


class _MailDir(Mailbox):
    """The SMTP server's messages, also written as files that the flow (another process) reads
    the way a mail client would."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        answer = await super().handle_DATA(server, session, envelope)
        if answer.startswith("250"):
            with self.lock:
                name = f"{len(self.messages):06d}.eml"
                (self.directory / name).write_bytes(envelope.content)
        return answer


@contextmanager
def _mail_and_sender(app: Flask, directory: Path) -> Iterator[None]:
    """A local SMTP server for `app` and the outbox sender running beside the live server, as
    the scheduler does in production (every SEND_INTERVAL; here every 0.2 s)."""
    controller, port = start_smtp(_MailDir(directory))
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=port)
    stop = threading.Event()

    def send_until_stopped() -> None:
        while not stop.wait(0.2):
            run_send(app)

    sender = threading.Thread(target=send_until_stopped, daemon=True)
    sender.start()
    try:
        yield
    finally:
        stop.set()
        sender.join(30)
        controller.stop()


# Runs the compiled TypeScript flow; reads the emailed links from the .eml files the test's SMTP
# server writes (quoted-printable or base64 bodies), as flow.py does, waiting up to a minute.
TS_RUNNER = r"""
import { readdirSync, readFileSync } from "node:fs";
import { main } from "./js/flow.js";

const [base, adminEmail, adminPassword, mailDir] = process.argv.slice(2);

function body(raw) {
  const [head, ...rest] = raw.split(/\r?\n\r?\n/);
  const text = rest.join("\n\n");
  if (/content-transfer-encoding:\s*base64/i.test(head)) {
    return { head, text: Buffer.from(text.replace(/\s+/g, ""), "base64").toString("utf8") };
  }
  if (/content-transfer-encoding:\s*quoted-printable/i.test(head)) {
    const joined = text.replace(/=\r?\n/g, "");
    const bytes = Buffer.from(joined.replace(/=([0-9A-F]{2})/gi, (_, h) =>
      String.fromCharCode(parseInt(h, 16))), "latin1");
    return { head, text: bytes.toString("utf8") };
  }
  return { head, text };
}

async function emailedToken(to, page) {
  const link = new RegExp(`/${page}#token=([A-Za-z0-9_-]+)`);
  for (let tries = 0; tries < 300; tries++) {
    for (const name of readdirSync(mailDir).filter((n) => n.endsWith(".eml")).sort().reverse()) {
      const { head, text } = body(readFileSync(`${mailDir}/${name}`, "utf8"));
      if (!new RegExp(`^To: ${to}$`, "mi").test(head)) continue;
      const found = link.exec(text);
      if (found) return found[1];
    }
    await new Promise((done) => setTimeout(done, 200));
  }
  throw new Error(`no ${page} email arrived`);
}

await main(base, adminEmail, adminPassword, emailedToken);
console.log("flow ok");
"""


def _served_document(app: Flask, path: Path) -> Path:
    with app.test_client() as client:
        path.write_text(json.dumps(client.get("/openapi.json").get_json()))
    return path


@pytest.mark.slow
@pytest.mark.skipif(bool(_ts_missing), reason=f"missing: {', '.join(_ts_missing)}")
def test_typescript_types_type_check_the_flow_strictly_and_it_runs(
    tmp_path: Path, live_site: tuple[Flask, str]
) -> None:
    app, base = live_site
    document = _served_document(app, tmp_path / "openapi.json")
    generated = subprocess.run(  # noqa: S603 - our own pinned tools, fixed arguments
        [str(NODE_BIN / "openapi-typescript"), str(document), "-o", str(tmp_path / "schema.d.ts")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    shutil.copy(HERE / "flow.ts", tmp_path / "flow.ts")
    # openapi-fetch resolves from the project's node_modules (installed by `npm ci`).
    (tmp_path / "node_modules").symlink_to(ROOT / "node_modules", target_is_directory=True)
    tsc = [
        str(NODE_BIN / "tsc"),
        "--strict",
        "--noEmit",
        "--target",
        "es2022",
        "--module",
        "esnext",
        "--moduleResolution",
        "bundler",
        "--lib",
        "es2022,dom",
        "--noUnusedLocals",
        "--noImplicitReturns",
    ]
    typed = subprocess.run(  # noqa: S603
        [*tsc, "flow.ts"], cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False
    )
    assert typed.returncode == 0, typed.stdout + typed.stderr

    # And it runs: the same flow compiled to JavaScript, against the live server (node's fetch).
    (tmp_path / "package.json").write_text('{"type": "module"}')
    emit = [arg for arg in tsc if arg != "--noEmit"]
    built = subprocess.run(  # noqa: S603
        [*emit, "--outDir", "js", "flow.ts"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (tmp_path / "run.mjs").write_text(TS_RUNNER)
    ran = subprocess.run(  # noqa: S603
        [str(NODE), "run.mjs", base, *ADMIN, str(tmp_path / "mail")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert ran.returncode == 0 and "flow ok" in ran.stdout, ran.stdout + ran.stderr

    # The check has teeth: a field the document does not declare fails the same compile.
    broken = (HERE / "flow.ts").read_text().replace("checkin.total", "checkin.totals", 1)
    assert broken != (HERE / "flow.ts").read_text()
    (tmp_path / "flow.ts").write_text(broken)
    refused = subprocess.run(  # noqa: S603
        [*tsc, "flow.ts"], cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False
    )
    assert refused.returncode != 0 and "totals" in refused.stdout, refused.stdout


@contextmanager
def _export_job_running(app: Flask) -> Iterator[None]:
    """The scheduler's bulk export job, run as jobs/__main__.py runs it, every half second."""
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(0.5):
            run_in_transaction(
                app,
                bulk_export.run_next_export,
                export_dir=storage_from_config(app.config),
                base_url=app.config["FHIR_BASE_URL"],
                ttl=app.config["BULK_EXPORT_TTL"],
            )

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


@pytest.fixture
def live_site(tmp_path: Path) -> Iterator[tuple[Flask, str]]:
    """The app on a free port over a file database with an admin, and the export job running."""
    url = f"sqlite:///{tmp_path / 'live.sqlite3'}"
    command.upgrade(alembic_config(url), "head")
    config = TestConfig(url)
    config.EXPORT_DIR = str(tmp_path / "exports")
    config.BULK_EXPORT_RETRY_AFTER = 1
    app = create_app(config)
    cli = app.test_cli_runner().invoke(
        args=["create-admin", "--email", ADMIN[0], "--password", ADMIN[1]]
    )
    assert cli.exit_code == 0, cli.output
    # Emails (verification and reset links) go to a local SMTP server that files them in
    # tmp_path/mail, where a flow reads them as a mail client would.
    mail_dir = tmp_path / "mail"
    mail_dir.mkdir()
    with serve(app) as base, _export_job_running(app), _mail_and_sender(app, mail_dir):
        yield app, base


@pytest.mark.skipif(not GENERATOR.exists(), reason="openapi-python-client is a dev dependency")
def test_generated_python_client_runs_the_phone_flow(
    tmp_path: Path, live_site: tuple[Flask, str]
) -> None:
    app, base = live_site
    document = _served_document(app, tmp_path / "openapi.json")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    generated = subprocess.run(  # noqa: S603 - our own tools, fixed arguments
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(document),
            "--meta",
            "none",
            "--output-path",
            str(tmp_path / "waymark_client"),
            "--config",
            str(HERE / "openapi-python-client.yaml"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr

    flow = tmp_path / "flow.py"
    shutil.copy(HERE / "flow.py", flow)
    typed = subprocess.run(  # noqa: S603
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--follow-imports=silent",
            "--no-incremental",
            "--cache-dir",
            os.devnull,
            str(flow),
        ],
        cwd=tmp_path,
        env={**env, "MYPYPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert typed.returncode == 0, typed.stdout + typed.stderr

    ran = subprocess.run(  # noqa: S603
        [sys.executable, str(flow), base, *ADMIN, str(tmp_path / "mail")],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "flow ok" in ran.stdout
