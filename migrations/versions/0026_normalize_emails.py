"""Accounts: stored emails get the one spelling the app now gives every address it reads
(api.fields.normalize_email: NFKC, lower case, IDNA domain), so an account made before that keeps
signing in. Accounts that would meet another one's spelling are never merged: every account of
such a group is left as it is and reported by id, for an operator to settle (docs/operations.md).
Accounts whose email holds what the app now refuses (invisible characters) are reported too.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-06 17:50:00
"""

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
import structlog
from alembic import op

from api.fields import email_problem, normalize_email

revision: str = "0026"
down_revision: str | Sequence[str] | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = structlog.get_logger("waymark.migrations")


def upgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, email FROM users")).all()
    spelled = {email for _id, email in rows}
    groups: dict[str, list[tuple[Any, str]]] = defaultdict(list)
    for user_id, email in rows:
        groups[normalize_email(email)].append((user_id, email))
    for target, group in groups.items():
        changed = [(user_id, email) for user_id, email in group if email != target]
        if not changed:
            continue
        # Two accounts, one spelling (or the spelling is some other account's as stored):
        # never merged, never half-renamed. Ids only: an address is not logged.
        if len(group) > 1 or target in spelled:
            log.warning(
                "users.email_collision",
                user_ids=sorted(str(user_id) for user_id, _ in group),
                action="left as stored; settle by hand (docs/operations.md)",
            )
            continue
        [(user_id, _email)] = changed
        bind.execute(
            sa.text("UPDATE users SET email = :email WHERE id = :id"),
            {"email": target, "id": user_id},
        )
    refused = sorted(str(user_id) for user_id, email in rows if email_problem(email))
    if refused:
        log.warning(
            "users.email_refused_spelling",
            user_ids=refused,
            action="cannot sign in with this address; settle by hand (docs/operations.md)",
        )


def downgrade() -> None:
    # The former spellings are not kept (they were the look-alikes); the normal ones are valid
    # under the previous revision too.
    pass
