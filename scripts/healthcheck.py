"""Container health check: exit 0 when the URL answers 200 within 3 seconds, else 1.

The image has no curl; this is Python's standard library only. Usage:
`python scripts/healthcheck.py http://127.0.0.1:8000/healthz`.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request


def main(url: str) -> int:
    if not url.startswith(("http://127.0.0.1:", "http://localhost:")):
        return 2  # the check is for this container only
    try:
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - checked above
            return 0 if response.status == 200 else 1
    except (OSError, urllib.error.URLError):
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000/healthz"))
