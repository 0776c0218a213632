"""Accounts, logins (token families) and refresh tokens."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from api.db import Base, TimestampMixin


class User(TimestampMixin, Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('patient', 'clinician', 'admin')", name="role"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # stored lower-cased
    password_hash: Mapped[str] = mapped_column(String(200))
    display_name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20), default="patient")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    quiet_hours_start: Mapped[str | None] = mapped_column(String(5))  # local "HH:MM"
    quiet_hours_end: Mapped[str | None] = mapped_column(String(5))
    discreet_notifications: Mapped[bool] = mapped_column(default=False)
    organization: Mapped[str | None] = mapped_column(String(200))  # clinicians
    invite_code: Mapped[str | None] = mapped_column(String(32), unique=True)  # clinicians
    # Deactivated accounts (clinicians, by an admin) cannot sign in; their consents and the
    # ledger stay.
    deactivated_at: Mapped[datetime | None]
    # TOTP second factor (api.auth.mfa): the base32 secret once enrolment is confirmed, sealed
    # (Fernet under MFA_ENCRYPTION_KEY, never stored in the clear), and the last time step
    # used, so a code cannot be replayed within its window.
    totp_secret: Mapped[str | None] = mapped_column(String(255))
    totp_enrolled_at: Mapped[datetime | None]
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    # When the owner proved the address (a verification or password-reset link); null until
    # then. Accounts older than verification, and those an admin made, count as verified
    # (migration 0029, docs/contract.md).
    email_verified_at: Mapped[datetime | None]

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None

    @property
    def quiet_hours(self) -> dict[str, str] | None:
        if self.quiet_hours_start is None or self.quiet_hours_end is None:
            return None
        return {"start": self.quiet_hours_start, "end": self.quiet_hours_end}


class AuthSession(Base):
    """One login: the family of refresh tokens that descend from one password sign-in."""

    __tablename__ = "auth_sessions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(String(40))

    user: Mapped[User] = relationship()

    def is_live(self) -> bool:
        return self.revoked_at is None


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("auth_sessions.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256, never the token
    issued_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    spent_at: Mapped[datetime | None]

    session: Mapped[AuthSession] = relationship()


class RecoveryCode(Base):
    """A single-use second-factor recovery code, stored as a hash (never the code)."""

    __tablename__ = "recovery_codes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


EMAIL_TOKEN_PURPOSES = ("password_reset", "verify_email")


class EmailToken(Base):
    """A single-use token sent by email (password reset, address verification), stored as a
    hash. The token itself is derived from the outbox notification that carries it (see
    api.auth.verification), so the sender can put it in the email without it being stored."""

    __tablename__ = "email_tokens"
    __table_args__ = (
        CheckConstraint("purpose IN ('password_reset', 'verify_email')", name="purpose"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256, never the token
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    # Set when the token is used, or voided by a newer token of the same purpose or a reset.
    used_at: Mapped[datetime | None]

    def is_usable(self, at: datetime) -> bool:
        return self.used_at is None and at < self.expires_at


class EmailRequest(Base):
    """A password-reset or verification email asked for by address, not yet acted on. The
    request that is not signed in only records it, the same work whether or not the address has
    an account; the sender job resolves it and deletes it (api.auth.recovery). Kept seconds."""

    __tablename__ = "email_requests"
    __table_args__ = (
        CheckConstraint("purpose IN ('password_reset', 'verify_email')", name="purpose"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    purpose: Mapped[str] = mapped_column(String(20))
    email: Mapped[str] = mapped_column(String(320))  # normalized, as users.email
    created_at: Mapped[datetime]


class SiteSetting(Base):
    """Deployment-wide switches an admin changes at run time (e.g. require_totp)."""

    __tablename__ = "site_settings"

    key: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime]
