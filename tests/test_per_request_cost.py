"""What the per-request cost work (issue 17) must keep true: the hooks still run, the memo of
`ensure_sync` cannot grow with requests, and gunicorn's master warms the summary renderer."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from flask.views import View

ROOT = Path(__file__).resolve().parent.parent


def test_ensure_sync_memo_holds_plain_functions_only(app: Flask, client: FlaskClient) -> None:
    class Echo(View):
        init_every_request = True  # a new instance, so new bound methods, every request

        def dispatch_request(self) -> str:
            return "ok"

    app.add_url_rule("/_echo", view_func=Echo.as_view("echo"))
    for _ in range(3):
        assert client.get("/healthz").status_code == 200
    size = len(app._sync_checked)  # type: ignore[attr-defined]
    assert size > 0  # the hooks and views of /healthz were remembered
    for _ in range(20):
        assert client.get("/healthz").status_code == 200
        assert client.get("/_echo").get_data(as_text=True) == "ok"
    # /_echo's view function joins once; its per-request bound methods never do.
    assert len(app._sync_checked) <= size + 1  # type: ignore[attr-defined]


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
