"""What the per-request cost work (issue 17) must keep true: the hooks still run, the memo of
`ensure_sync` cannot grow with requests, and gunicorn's master warms the summary renderer."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from flask.json.provider import DefaultJSONProvider
from flask.views import View

from api import WaymarkFlask

ROOT = Path(__file__).resolve().parent.parent


def test_ensure_sync_memo_holds_plain_functions_only() -> None:
    app = WaymarkFlask(__name__)
    seen: list[str] = []

    @app.before_request
    def _hook() -> None:
        seen.append("hook")

    @app.get("/plain")
    def plain() -> str:
        return "plain"

    class Echo(View):
        init_every_request = True  # a new instance, so new bound methods, every request

        def dispatch_request(self) -> str:
            return "echo"

    app.add_url_rule("/echo", view_func=Echo.as_view("echo"))
    client = app.test_client()
    assert client.get("/plain").get_data(as_text=True) == "plain"
    assert client.get("/echo").get_data(as_text=True) == "echo"
    size = len(app._sync_checked)
    assert size >= 3  # the hook and both view functions are remembered
    for _ in range(20):
        assert client.get("/plain").get_data(as_text=True) == "plain"
        assert client.get("/echo").get_data(as_text=True) == "echo"
    assert len(app._sync_checked) == size  # per-request bound methods never join
    assert seen == ["hook"] * 42  # and the hooks still run on every request


def test_gunicorn_master_loads_the_summary_renderer_before_forking(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import runpy, sys
        conf = runpy.run_path("gunicorn.conf.py")
        before = {"matplotlib.figure", "fpdf"} & set(sys.modules)
        conf["when_ready"](None)
        loaded = {m for m in ("matplotlib.figure", "matplotlib.backends.backend_svg",
                              "matplotlib.backends.backend_agg", "fpdf") if m in sys.modules}
        print(sorted(before), sorted(loaded))
        """
    )
    out = subprocess.run(  # noqa: S603 - our own interpreter and a fixed script
        [sys.executable, "-W", "error", "-c", script],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=120,
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)},
    ).stdout  # fmt: skip
    assert out.strip() == (
        "[] ['fpdf', 'matplotlib.backends.backend_agg', 'matplotlib.backends.backend_svg', "
        "'matplotlib.figure']"
    )


def test_gunicorn_builds_no_access_line_the_app_already_logs(tmp_path: Path) -> None:
    # gunicorn's own Logger, under the same logconfig_dict, builds the line's atoms per request;
    # the configured logger class must not (the app's http.request line is the access log).
    script = textwrap.dedent(
        """
        import datetime, runpy
        from gunicorn.config import Config
        from gunicorn.glogging import Logger
        conf = runpy.run_path("gunicorn.conf.py")
        built = []
        for cls in (Logger, conf["logger_class"]):
            cfg = Config()
            cfg.set("logconfig_dict", conf["logconfig_dict"])
            logger = cls(cfg)
            logger.atoms = lambda *args: built.append(cls.__name__) or {}
            logger.access(None, None, {}, datetime.timedelta(0))
        print(built)
        """
    )
    out = subprocess.run(  # noqa: S603 - our own interpreter and a fixed script
        [sys.executable, "-c", script],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=120,
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)},
    ).stdout  # fmt: skip
    assert out.strip() == "['Logger']"


def test_compact_json_answers_read_as_flask_wrote_them() -> None:
    app = WaymarkFlask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # as create_app sets it

    @dataclasses.dataclass
    class Point:
        x: int

    value = {
        "when": datetime(2026, 12, 6, 17, 0, tzinfo=UTC),
        "day": date(2026, 12, 6),
        "amount": Decimal("1.50"),
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "point": Point(3),
        "small": 1e-05,
        "big": 2**70,  # beyond orjson's 64 bits: json.dumps writes it
        1: "int key",
        "text": "Müdigkeit, naïve ✓",
        "nested": [None, True, 1.5, {"a": []}],
    }
    with app.app_context():
        fast = app.json.response(value).get_data()
        flask_own = DefaultJSONProvider(app)
        flask_own.sort_keys = False
        slow = flask_own.response(value).get_data()
        assert app.json.dumps({"a": 1}) == '{"a": 1}'  # a direct dumps() keeps json.dumps
    assert json.loads(fast) == json.loads(slow)
    assert fast.endswith(b"\n")
    small = {"text": "Müdigkeit"}
    with app.app_context():
        # orjson wrote it: UTF-8 where json.dumps would escape (the same JSON)
        assert app.json.response(small).get_data() == '{"text":"Müdigkeit"}\n'.encode()
