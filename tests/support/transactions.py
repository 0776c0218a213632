"""db.in_own_transaction for a service called outside a request (service tests)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.orm import Session

from api.db import OwnTransaction

T = TypeVar("T")


def own_transactions(
    maker: Callable[[], Session], *, request_session: Session | None = None
) -> OwnTransaction:
    """Run each named short transaction on a fresh session from `maker`, committed when the work
    returns, rolled back if it raises, as `in_own_transaction` does. `request_session` plays the
    request's own session, which `in_own_transaction` rolls back first (its locks freed); leave
    it out when both share one connection (the `session` fixture's savepoints)."""

    def run(_name: str, work: Callable[[Session], T], /) -> T:
        if request_session is not None:
            request_session.rollback()
        with maker() as own, own.begin():
            return work(own)

    return run
