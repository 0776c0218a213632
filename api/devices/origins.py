"""Which Web Push endpoints the server will POST to: a subscription's endpoint is a URL the
client chose, so it must belong to a push service named in WEBPUSH_ENDPOINT_ORIGINS (checked at
registration and again before each send), or the server could be made to call any address."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from urllib.parse import urlsplit


def origin_allowed(endpoint: str, patterns: Iterable[str]) -> bool:
    """Whether the endpoint's scheme://host matches a pattern (fnmatch: `*` stands for labels)."""
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname
    except ValueError:
        return False
    if parts.scheme not in ("https", "http") or not host or parts.username or parts.password:
        return False
    origin = f"{parts.scheme}://{host.lower()}"
    return any(fnmatch.fnmatchcase(origin, pattern.strip().lower()) for pattern in patterns)
