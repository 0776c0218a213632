"""/docs renders in headless Chromium with the network cut: Swagger UI comes from the app."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from flask import Flask

from api import create_app
from tests.conftest import TestConfig
from tests.livesite import serve

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="CI installs chromium (.ci/run)")


def _dump_dom(url: str) -> str:
    """The page after its scripts ran, with every origin but loopback unreachable: DNS answers
    nothing for other hosts, and their traffic goes to a proxy that does not exist."""
    assert CHROMIUM
    result = subprocess.run(  # noqa: S603 - fixed arguments, no shell
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--proxy-server=http://127.0.0.1:9",
            "--proxy-bypass-list=127.0.0.1",
            "--virtual-time-budget=15000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout


def _app(swagger_ui_url: str | None = None) -> Flask:
    config = TestConfig("sqlite://")
    if swagger_ui_url:
        config.OPENAPI_SWAGGER_UI_URL = swagger_ui_url
    return create_app(config)


def test_docs_render_offline() -> None:
    with serve(_app()) as base:
        dom = _dump_dom(f"{base}/docs")

    assert 'class="swagger-ui' in dom
    assert "Waymark API" in dom  # the title comes from /openapi.json: the document loaded
    assert "/v1/crisis-resources" in dom  # and its operations were drawn


def test_the_check_would_catch_a_cdn() -> None:
    # The control: the same page with Swagger UI from a CDN stays blank under the same cut.
    with serve(_app("https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/")) as base:
        dom = _dump_dom(f"{base}/docs")

    assert "/v1/crisis-resources" not in dom
