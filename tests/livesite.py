"""Live HTTP servers for tests that drive the app from outside the process (a browser, a generated
client, gunicorn itself), on ports no parallel run can take from under them."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

PORTS = range(9250, 9300)


@contextmanager
def serve(app: Flask, *, threaded: bool = True, ports: range = PORTS) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 until the block ends; yields the base URL."""
    server: BaseWSGIServer | None = None
    for port in ports:
        try:
            server = make_server("127.0.0.1", port, app, threaded=threaded)
            break
        # Taken by a parallel run: try the next. werkzeug reports a taken port by printing and
        # sys.exit(1), not by raising OSError.
        except (OSError, SystemExit):
            continue
    if server is None:
        raise RuntimeError(f"no free port in {ports.start}-{ports.stop - 1}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def bound_socket(ports: range) -> socket.socket | None:
    """A socket bound to a free port of `ports`, inheritable, for a child server to take as
    `--bind fd://N` (gunicorn): the port stays ours from the search to the child's listen, so a
    parallel run cannot take it in between and answer in our server's place. None if all are
    taken."""
    for port in ports:
        sock = socket.socket()
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        sock.set_inheritable(True)
        return sock
    return None
