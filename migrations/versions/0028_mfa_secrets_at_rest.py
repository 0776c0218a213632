"""Second factor at rest: TOTP secrets (enrolled, and pending in a dashboard session) are stored
encrypted under MFA_ENCRYPTION_KEY (Fernet), and recovery codes as an HMAC under that key of
their former bare SHA-256 (so the codes already handed out keep working).

Existing plaintext secrets are encrypted here, with the key of the configuration the migration
runs under (the app's: MFA_ENCRYPTION_KEY, or in development the key derived from SECRET_KEY).
Downgrading decrypts the secrets; the keyed recovery-code hashes cannot be turned back, so a
downgrade deletes the unused recovery codes (their owners make new ones by enrolling again).

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-06 17:50:00
"""

import re
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op
from cryptography.fernet import Fernet, MultiFernet

from api.auth.mfa import keyed_code_hash
from api.config import Config

revision: str = "0028"
down_revision: str | Sequence[str] | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, key column, secret column). A plaintext secret is RFC 4648 base32 (upper case), which
# a Fernet token (it starts with "gAAAAA") never is: each row is judged by its own form.
SECRETS = (("users", "id", "totp_secret"), ("clinic_sessions", "id", "pending_totp_secret"))
PLAIN = re.compile(r"^[A-Z2-7]+=*$")
SEALED_LENGTH = 255


def _keys() -> list[str]:
    cfg = Config()
    return [cfg.MFA_ENCRYPTION_KEY, *cfg.MFA_ENCRYPTION_KEY_PREVIOUS]


def _rewrite(table: str, key: str, column: str, change: Callable[[str], str]) -> None:
    bind = op.get_bind()
    t = sa.table(table, sa.column(key), sa.column(column))
    rows = bind.execute(sa.select(t.c[key], t.c[column]).where(t.c[column].is_not(None))).all()
    for row_id, value in rows:
        new = change(value)
        if new != value:
            bind.execute(t.update().where(t.c[key] == row_id).values({column: new}))


def _resize(table: str, column: str, old: int, new: int) -> None:
    """VARCHAR(old) -> VARCHAR(new), keeping the values. SQLite's batch mode would rebuild the
    table, and dropping `users` with foreign keys on cascades into every table that points at
    it; SQLite (3.35+) adds, drops and renames a plain column in place instead."""
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column(
            table,
            column,
            existing_type=sa.String(length=old),
            type_=sa.String(length=new),
            existing_nullable=True,
        )
        return
    op.execute(f"ALTER TABLE {table} ADD COLUMN _resized VARCHAR({new})")
    op.execute(f"UPDATE {table} SET _resized = {column}")  # noqa: S608 (fixed names)
    op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    op.execute(f"ALTER TABLE {table} RENAME COLUMN _resized TO {column}")


def upgrade() -> None:
    for table, _key, column in SECRETS:
        _resize(table, column, 64, SEALED_LENGTH)
    keys = _keys()
    fernet = Fernet(keys[0])
    for table, key, column in SECRETS:
        _rewrite(
            table,
            key,
            column,
            lambda v: fernet.encrypt(v.encode()).decode() if PLAIN.match(v) else v,
        )
    _rewrite("recovery_codes", "id", "code_hash", lambda v: keyed_code_hash(keys[0], v))


def downgrade() -> None:
    multi = MultiFernet([Fernet(k) for k in _keys()])
    for table, key, column in SECRETS:
        _rewrite(
            table,
            key,
            column,
            lambda v: v if PLAIN.match(v) else multi.decrypt(v.encode()).decode(),
        )
    op.execute("DELETE FROM recovery_codes WHERE used_at IS NULL")
    for table, _key, column in SECRETS:
        _resize(table, column, SEALED_LENGTH, 64)
