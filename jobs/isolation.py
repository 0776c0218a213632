"""A batch job survives a bad item: one patient's (or regimen's, or consent's) failure is logged
with ids only, counted in `waymark_job_item_failures_total{job=...}`, and skipped; the others
are served (issue 11 item 5).

Each batch runs in its own transaction. When a batch raises, it is rolled back and its items are
run again one at a time, each in its own transaction, so only the item that fails is skipped (a
bad row often breaks a bulk read of the whole batch, not just its own part). A database that is
down is not an item's fault: that error ends the run, to be retried by the next one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from api.observability import ITEM_FAILURES, item_failed

__all__ = ["ITEM_FAILURES", "item_failed", "keyset_batches"]

# Not an item's fault: the whole run stops and the next run tries again.
_FATAL = (OperationalError, InterfaceError, PoolTimeout)

K = TypeVar("K")


def keyset_batches(
    session: Session,
    *,
    job: str,
    item: str,
    run: Callable[[K | None, int], tuple[int, K | None]],
    next_key: Callable[[K | None], K | None],
    limit: int,
) -> int:
    """Run `run(after, limit)` batch after batch (it returns (count, last key or None when done)),
    committing each; a failing batch is run again item by item (`next_key(after)` names the item
    `run(after, 1)` will take) and its failing items are skipped. Returns the summed count."""
    total: int = 0
    after: K | None = None
    while True:
        try:
            count, following = run(after, limit)
            session.commit()
        except _FATAL:
            session.rollback()
            raise
        except Exception:
            session.rollback()
            count, following = _one_by_one(
                session, job=job, item=item, run=run, next_key=next_key, after=after, limit=limit
            )
        total += count
        if following is None:
            return total
        after = following


def _one_by_one(
    session: Session,
    *,
    job: str,
    item: str,
    run: Callable[[K | None, int], tuple[int, K | None]],
    next_key: Callable[[K | None], K | None],
    after: K | None,
    limit: int,
) -> tuple[int, K | None]:
    total = 0
    for _ in range(limit):
        key = next_key(after)
        session.rollback()  # the look-up's transaction: each item gets its own
        if key is None:
            return total, None
        try:
            count, _ = run(after, 1)
            session.commit()
            total += count
        except _FATAL:
            session.rollback()
            raise
        except Exception as exc:
            session.rollback()
            item_failed(job, exc, **{item: key})
        after = key
    return total, after
