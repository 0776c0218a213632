"""Consents: linking to a clinician, signing, revoking, listing. Services flush, never commit.

What a clinician may see under these consents is decided by api.consent.gate, nowhere else.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from api.auth.models import User
from api.consent import texts as consent_texts
from api.consent.gate import in_force
from api.consent.models import Consent, ConsentCategory
from api.db import Base, OwnTransaction
from api.errors import NotFound, TooManyRequests, ValidationError
from api.offline import create_once
from api.pagination import keyset_page
from api.ratelimit import Counter

log = structlog.get_logger("waymark.consent")


# The named short transaction (db.in_own_transaction) of an invite code lookup's count.
INVITE_LOOKUP = "consent.invite_lookup"


# --- Patients: linking and their consents -------------------------------------------------------


@dataclass(frozen=True)
class LookupLimits:
    per_user: int
    per_address: int
    window: int


def normalize_invite_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def lookup_clinician(
    session: Session,
    *,
    invite_code: str,
    patient_id: uuid.UUID,
    address: str,
    counter: Counter,
    limits: LookupLimits,
    now: datetime,
    own_transaction: OwnTransaction,
) -> User:
    """The clinician holding this invite code. Every lookup counts against the caller and the
    address, so codes cannot be enumerated: counted first, in a short transaction of its own
    (INVITE_LOOKUP), so a 404 keeps it. Raises TooManyRequests, NotFound."""
    keys = (
        (f"lookup:user:{patient_id}", limits.per_user),
        (f"lookup:addr:{address}", limits.per_address),
    )

    def count(own: Session) -> None:
        for key, limit in keys:
            window = counter.peek(own, key, window=limits.window, now=now)
            if window.count >= limit:
                log.warning("consent.lookup_throttled", scope=key.split(":")[1])
                raise TooManyRequests(
                    window.retry_after, "Too many invite code lookups. Try later."
                )
        for key, _limit in keys:
            counter.hit(own, key, window=limits.window, now=now)

    own_transaction(INVITE_LOOKUP, count)
    code = normalize_invite_code(invite_code)
    clinician = session.scalar(
        select(User).where(User.invite_code == code, User.role == "clinician")
    )
    if clinician is None or not code:
        raise NotFound("No clinician has this invite code.")
    return clinician


def create_consent(
    session: Session,
    *,
    patient: User,
    body: dict[str, Any],
    discloser: str,
    revocation_statement: str,
    now: datetime,
) -> tuple[Consent, bool]:
    """Sign a consent; it replaces (revokes) any consent in force to the same recipient, so a
    narrower consent really narrows. Returns (consent, created); a replay returns the stored one.

    Raises ValidationError naming the field (unknown recipient, past expiry, future data_from),
    Conflict if the id is taken by another body.
    """
    recipient = session.get(User, body["recipient_id"])
    if recipient is None or recipient.role != "clinician":
        raise ValidationError({"recipient_id": ["No clinician with this id."]})
    expires_at = body.get("expires_at")
    data_from = body.get("data_from")
    errors: dict[str, list[str]] = {}
    if expires_at is not None and expires_at <= now:
        errors["expires_at"] = ["Must be in the future."]
    if data_from is not None and data_from > now:
        errors["data_from"] = ["Must not be in the future."]
    if consent_texts.get(body["consent_text_version"]) is None:
        errors["consent_text_version"] = [
            f"No such consent text; the current one is {consent_texts.CURRENT} "
            "(GET /v1/consent-texts)."
        ]
    if errors:
        raise ValidationError(errors)
    # Serialize one patient's signings, so two concurrent ones cannot both stay in force.
    session.execute(select(User.id).where(User.id == patient.id).with_for_update())
    replaced = list(
        session.scalars(
            select(Consent)
            .where(
                Consent.patient_id == patient.id,
                Consent.recipient_id == recipient.id,
                in_force(now),
            )
            .order_by(Consent.signed_at.desc())
            .with_for_update(of=Consent)
        )
    )
    replaced = [c for c in replaced if c.id != body.get("id")]
    consent = Consent(
        id=body.get("id"),
        patient_id=patient.id,
        discloser=discloser,
        recipient_id=recipient.id,
        recipient_name=recipient.display_name,
        recipient_organization=recipient.organization,
        purpose=body["purpose"],
        revocation_statement=revocation_statement,
        expires_at=expires_at,
        data_from=data_from,
        signature=body["signature"],
        patient_name=patient.display_name,
        consent_text_version=body["consent_text_version"],
        signed_at=now,
        share_weekly_summary=body["share_weekly_summary"],
        replaces_id=replaced[0].id if replaced else None,
        category_rows=[ConsentCategory(category=c) for c in sorted(set(body["categories"]))],
    )
    consent, created = create_once(session, consent, body=body)
    if not created:
        return consent, False
    for old in replaced:
        _stamp_revocation(session, old, now=now)
    log.info(
        "consent.created",
        consent_id=str(consent.id),
        patient_id=str(patient.id),
        recipient_id=str(recipient.id),
        replaced=[str(c.id) for c in replaced],
    )
    return consent, True


def _owned(
    session: Session, *, patient_id: uuid.UUID, consent_id: uuid.UUID, lock: bool
) -> Consent:
    stmt = select(Consent).where(Consent.id == consent_id, Consent.patient_id == patient_id)
    if lock:
        stmt = stmt.with_for_update(of=Consent)
    consent = session.scalar(stmt)
    if consent is None:
        raise NotFound("No such consent.")
    return consent


def get_consent(session: Session, *, patient_id: uuid.UUID, consent_id: uuid.UUID) -> Consent:
    """Raises NotFound for another patient's consent."""
    return _owned(session, patient_id=patient_id, consent_id=consent_id, lock=False)


def _stamp_revocation(session: Session, consent: Consent, *, now: datetime) -> None:
    # Stamped no earlier than the last disclosure made under it: a read that held the consent
    # while this revoke waited for its lock happened before the revocation, and the ledger says so.
    # The ledger by its table: disclosures sits above consent in the feature order (each row
    # carries its consent's scope), so consent does not import it.
    ledger = Base.metadata.tables["disclosures"]
    last = session.scalar(select(func.max(ledger.c.at)).where(ledger.c.consent_id == consent.id))
    # (Nor before it was signed, should another host's clock lag.)
    consent.revoked_at = max(t for t in (now, last, consent.signed_at) if t is not None)
    session.flush()


def revoke_consent(
    session: Session, *, patient_id: uuid.UUID, consent_id: uuid.UUID, now: datetime
) -> Consent:
    """Revoke at once; revoking again changes nothing. Raises NotFound for another's consent."""
    consent = _owned(session, patient_id=patient_id, consent_id=consent_id, lock=True)
    if consent.revoked_at is None:
        _stamp_revocation(session, consent, now=now)
        log.info("consent.revoked", consent_id=str(consent.id), patient_id=str(patient_id))
    return consent


def _status_clause(status: str, now: datetime) -> ColumnElement[bool]:
    # Consent.status_at(now) in SQL.
    if status == "revoked":
        return Consent.revoked_at.is_not(None)
    if status == "expired":
        return and_(Consent.revoked_at.is_(None), Consent.expires_at <= now)
    return and_(
        Consent.revoked_at.is_(None), or_(Consent.expires_at.is_(None), Consent.expires_at > now)
    )


def list_consents(
    session: Session,
    *,
    patient_id: uuid.UUID,
    status: str | None,
    limit: int,
    cursor: str | None,
    now: datetime,
) -> dict[str, Any]:
    stmt = select(Consent).where(Consent.patient_id == patient_id)
    if status is not None:
        stmt = stmt.where(_status_clause(status, now))
    items, next_cursor = keyset_page(
        session, stmt, order=Consent.signed_at, tiebreak=Consent.id, limit=limit, cursor=cursor
    )
    return {"items": items, "next_cursor": next_cursor}
