"""A live HTTP server for the app in a thread, on a free port of 9250-9299 (tests that drive the
API from outside the process: a browser, a generated client)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

PORTS = range(9250, 9300)


@contextmanager
def serve(app: Flask) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 until the block ends; yields the base URL."""
    server: BaseWSGIServer | None = None
    for port in PORTS:
        try:
            server = make_server("127.0.0.1", port, app, threaded=True)
            break
        # Taken by a parallel run: try the next. werkzeug reports a port in use by printing and
        # raising SystemExit(1), not by the OSError underneath.
        except (OSError, SystemExit):
            continue
    if server is None:
        raise RuntimeError("no free port in 9250-9299")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
