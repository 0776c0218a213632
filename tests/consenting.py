"""Test helpers for consents: sign one through the service, as of any instant."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from api.auth.models import User
from api.consent import services
from api.consent.models import Consent

SIGNATURE = "Pat Q. Example"
TEXT_VERSION = "2026-01"


def consent_body(
    clinician: User,
    *,
    categories: Iterable[str] = ("symptoms",),
    purpose: str = "care_coordination",
    expires_at: datetime | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "recipient_id": clinician.id,
        "categories": list(categories),
        "purpose": purpose,
        "share_weekly_summary": False,
        "expires_at": expires_at,
        "data_from": None,
        "signature": SIGNATURE,
        "consent_text_version": TEXT_VERSION,
    }
    body.update(extra)
    return body


def sign(
    session: Session,
    *,
    patient: User,
    clinician: User,
    categories: Iterable[str] = ("symptoms",),
    now: datetime | None = None,
    days: float | None = 30,
    purpose: str = "care_coordination",
    **extra: Any,
) -> Consent:
    """Sign (and commit) a consent as of `now`, expiring `days` later (None: no expiry)."""
    now = now or datetime.now(UTC)
    expires_at = now + timedelta(days=days) if days is not None else None
    consent, _ = services.create_consent(
        session,
        patient=patient,
        body=consent_body(
            clinician, categories=categories, purpose=purpose, expires_at=expires_at, **extra
        ),
        discloser="Test Program",
        revocation_statement="Revoke in the app at any time.",
        now=now,
    )
    session.commit()
    return consent
