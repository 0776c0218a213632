"""The TOTP second factor (RFC 6238 through pyotp) and its single-use recovery codes.

Shared by the API's sign-in (POST /v1/auth/token asks for `totp_code` once a user enrolled) and
the dashboard's (api.clinic). Services flush, never commit.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import pyotp
import structlog
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from api.auth.models import RecoveryCode, SiteSetting, User

log = structlog.get_logger("waymark.mfa")

ISSUER = "Waymark"
RECOVERY_CODES = 10
# One step either side: a phone clock 30 s off still works, and nothing older.
VALID_WINDOW = 1
REQUIRE_TOTP = "require_totp"


@dataclass(frozen=True)
class SecretBox:
    """The second factor's keys (MFA_ENCRYPTION_KEY, then the keys it replaced): TOTP secrets
    are stored encrypted (Fernet: AES-128-CBC and HMAC-SHA256), and recovery codes as an HMAC
    under the key, so a copy of the database alone yields neither (a 40-bit code under a bare
    SHA-256 is found by brute force in minutes)."""

    keys: tuple[str, ...]

    @staticmethod
    def of(config: Mapping[str, Any]) -> SecretBox:
        return _box(config["MFA_ENCRYPTION_KEY"], tuple(config["MFA_ENCRYPTION_KEY_PREVIOUS"]))

    @property
    def _fernets(self) -> list[Fernet]:
        return [Fernet(k) for k in self.keys]

    def seal(self, secret: str) -> str:
        return self._fernets[0].encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> tuple[str, bool]:
        """The secret, and whether it was sealed under a previous key (to seal it again)."""
        fernets = self._fernets
        try:
            return fernets[0].decrypt(sealed.encode()).decode(), False
        except InvalidToken:
            return MultiFernet(fernets).decrypt(sealed.encode()).decode(), True

    def code_hashes(self, code: str) -> list[str]:
        """The stored forms of a recovery code under each key, the current one first."""
        digest = hashlib.sha256(_normalize(code).encode()).hexdigest()
        return [keyed_code_hash(k, digest) for k in self.keys]


def keyed_code_hash(key: str, sha256_hex: str) -> str:
    """A recovery code's stored hash: HMAC-SHA256 under the key of the code's SHA-256 (the
    migration that keyed the old bare SHA-256 hashes uses this too)."""
    raw = base64.urlsafe_b64decode(key)
    return hmac.new(raw, b"recovery-code:" + sha256_hex.encode(), hashlib.sha256).hexdigest()


@lru_cache(maxsize=8)
def _box(key: str, previous: tuple[str, ...]) -> SecretBox:
    return SecretBox(keys=(key, *previous))


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(*, secret: str, email: str, issuer: str = ISSUER) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=issuer)


def qr_data_uri(uri: str) -> str:
    """The provisioning URI as an SVG QR code in a data: URI, for an <img> (the page's CSP
    allows no inline style, and the secret never leaves the page in a separate request)."""
    import base64

    import qrcode
    import qrcode.image.svg

    image = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    buf = io.BytesIO()
    image.save(buf)
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode()


def _step(secret: str, code: str, now: datetime) -> int | None:
    """The time step `code` is valid for at `now` (within the window), else None."""
    code = "".join(ch for ch in code if ch.isdigit())
    if len(code) != 6:
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for offset in range(-VALID_WINDOW, VALID_WINDOW + 1):
        step = current + offset
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def code_matches(secret: str, code: str, now: datetime) -> bool:
    """For confirming an enrolment (no replay state yet)."""
    return _step(secret, code, now) is not None


def verify_totp(session: Session, *, user: User, code: str, now: datetime, box: SecretBox) -> bool:
    """A current code for the user's secret, not used before (each time step counts once)."""
    if user.totp_secret is None:
        return False
    secret, stale = box.open(user.totp_secret)
    step = _step(secret, code, now)
    if step is None or (user.totp_last_step is not None and step <= user.totp_last_step):
        return False
    user.totp_last_step = step
    if stale:  # sealed under a key since replaced: under the current one from now on
        user.totp_secret = box.seal(secret)
    session.flush()
    return True


def _normalize(code: str) -> str:
    return "".join(ch for ch in code.lower() if ch.isalnum())


def use_recovery_code(
    session: Session, *, user: User, code: str, now: datetime, box: SecretBox
) -> bool:
    """Spend one recovery code (a conditional update: a code works once, even in a race)."""
    result = session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.code_hash.in_(box.code_hashes(code)),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=now)
    )
    used = bool(result.rowcount)  # type: ignore[attr-defined]
    if used:
        log.info("mfa.recovery_code_used", user_id=str(user.id))
    return used


def enrol(session: Session, *, user: User, secret: str, now: datetime, box: SecretBox) -> list[str]:
    """Confirm enrolment with `secret` (stored sealed); returns fresh recovery codes (shown
    once, stored as keyed hashes). Any earlier codes stop working."""
    user.totp_secret = box.seal(secret)
    user.totp_enrolled_at = now
    user.totp_last_step = pyotp.TOTP(secret).timecode(now)  # the confirming code is spent
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = [secrets.token_hex(5) for _ in range(RECOVERY_CODES)]
    session.add_all(
        RecoveryCode(user_id=user.id, code_hash=box.code_hashes(c)[0], created_at=now)
        for c in codes
    )
    session.flush()
    log.info("mfa.enrolled", user_id=str(user.id))
    return [f"{c[:5]}-{c[5:]}" for c in codes]


def reset(session: Session, *, user: User) -> None:
    """Forget the user's second factor (a lost phone): the secret and every recovery code go, and
    the next sign-in enrols a new one. Only an admin does this, after checking who is asking by
    some other way than this account; the caller also ends the user's sign-ins."""
    user.totp_secret = None
    user.totp_enrolled_at = None
    user.totp_last_step = None
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    session.flush()
    log.info("mfa.reset", user_id=str(user.id))


def recovery_codes_left(session: Session, *, user_id: uuid.UUID) -> int:
    return len(
        session.scalars(
            select(RecoveryCode.id).where(
                RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None)
            )
        ).all()
    )


def totp_required(session: Session) -> bool:
    """Whether an admin requires every clinician to enrol (the API then refuses the rest)."""
    value = session.scalar(select(SiteSetting.value).where(SiteSetting.key == REQUIRE_TOTP))
    return value == "true"


def set_totp_required(session: Session, *, required: bool, now: datetime) -> None:
    row = session.get(SiteSetting, REQUIRE_TOTP)
    if row is None:
        session.add(SiteSetting(key=REQUIRE_TOTP, value=str(required).lower(), updated_at=now))
    else:
        row.value, row.updated_at = str(required).lower(), now
    session.flush()
    log.info("mfa.require_totp_set", required=required)
