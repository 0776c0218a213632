"""What a channel answers for one delivery (shared by email and every push provider)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Commit = Callable[[], bool]


@dataclass(frozen=True)
class Result:
    """outcome: sent | retry | failed | invalid_token | lost | deferred.

    `retry_after` (seconds) is the provider's own word on when to come back (Retry-After); the
    delivery then waits at least that long. `deferred` means nothing was attempted (the provider
    is paused): the row is put back without counting an attempt.
    """

    outcome: str
    error: str | None = None
    retry_after: float | None = None


SENT = Result("sent")
LOST = Result("lost", "claim_lost")
