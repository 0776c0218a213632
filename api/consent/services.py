"""Consents and the one gate. Services flush, never commit.

`require_active` is the single decision every clinician read, summary and export goes through;
`visible_clause` is the same rule in SQL for lists across patients (roster counts, alerts).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import ColumnElement, Select, and_, exists, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from api.auth.models import User
from api.consent.models import CATEGORIES, Consent, ConsentCategory
from api.disclosures.models import Disclosure
from api.errors import Forbidden, LeavesTrace, NotFound, TooManyRequests, ValidationError
from api.offline import create_once
from api.pagination import keyset_page
from api.ratelimit import Counter

log = structlog.get_logger("waymark.consent")


class CategoryNotConsented(Forbidden):
    """The patient consented to this clinician, but not to this category of data."""

    slug = "consent-category"
    title = "Not covered by the patient's consent"

    def __init__(self, category: str) -> None:
        super().__init__(
            f"The patient's consent does not cover the category: {category}.",
            missing_category=category,
        )


class PersistingNotFound(LeavesTrace, NotFound):
    """A 404 whose trace (a counted lookup) the route keeps (db.keep_trace)."""


@dataclass(frozen=True)
class Grant:
    """What the gate allowed: whose data, to whom, under which consent, and the data window."""

    patient_id: uuid.UUID
    clinician_id: uuid.UUID
    consent_id: uuid.UUID
    category: str
    window_from: datetime
    window_to: datetime

    def clip(self, start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
        """A requested period cut to the window the consent allows (never empty-inverted)."""

        def inside(t: datetime | None, default: datetime) -> datetime:
            return default if t is None else min(max(t, self.window_from), self.window_to)

        lo = inside(start, self.window_from)
        return lo, max(lo, inside(end, self.window_to))


def _in_force(now: datetime) -> ColumnElement[bool]:
    """Consent.is_active(now) in SQL."""
    # Revocation counts at once: a revoked consent is refused whatever its revoked_at says
    # (revoke may stamp it a moment after `now`, after the last read it waited for).
    return and_(
        Consent.revoked_at.is_(None),
        Consent.signed_at <= now,
        or_(Consent.expires_at.is_(None), Consent.expires_at > now),
    )


def _active(
    session: Session,
    *,
    clinician_id: uuid.UUID,
    now: datetime,
    patient_id: uuid.UUID | None = None,
) -> list[Consent]:
    stmt = select(Consent).where(Consent.recipient_id == clinician_id, _in_force(now))
    if patient_id is not None:
        stmt = stmt.where(Consent.patient_id == patient_id)
    # FOR SHARE: a revoke (FOR UPDATE) waits for reads in flight, and a read waits for a revoke
    # in flight and then sees it; so no read commits after a revocation. (SQLite serializes
    # writers with BEGIN IMMEDIATE, which gives the same order.)
    stmt = stmt.order_by(Consent.signed_at.desc(), Consent.id.desc()).with_for_update(
        read=True, of=Consent
    )
    return list(session.scalars(stmt))


def require_active(
    session: Session,
    *,
    clinician_id: uuid.UUID,
    patient_id: uuid.UUID,
    category: str,
    now: datetime,
) -> Grant:
    """Decide whether the clinician may see this category of the patient's data at `now`.

    Raises NotFound if no consent from the patient to the clinician is in force (the patient is
    invisible), CategoryNotConsented (403) if none in force covers `category`. The window is the
    data recorded while the consent was in force: from its data_from (or signed_at) to `now`.
    Holds a share lock on the consent rows until the caller's transaction ends.
    """
    grants = grants_in_force(
        session, clinician_id=clinician_id, patient_id=patient_id, categories=[category], now=now
    )
    if category not in grants:
        raise CategoryNotConsented(category)
    return grants[category]


def grants_in_force(
    session: Session,
    *,
    clinician_id: uuid.UUID,
    patient_id: uuid.UUID,
    categories: Collection[str],
    now: datetime,
) -> dict[str, Grant]:
    """require_active for several categories at once (one locking read): a Grant for each
    category some consent in force covers; the others are absent. Raises NotFound if no consent
    from the patient to the clinician is in force."""
    for category in categories:
        assert category in CATEGORIES, category
    consents = _active(session, clinician_id=clinician_id, patient_id=patient_id, now=now)
    if not consents:
        raise NotFound("No such patient.")
    grants = {}
    for category in categories:
        covering = [c for c in consents if category in c.categories]
        if covering:
            grants[category] = Grant(
                patient_id=patient_id,
                clinician_id=clinician_id,
                consent_id=covering[0].id,
                category=category,
                window_from=min(c.window_start for c in covering),
                window_to=now,
            )
    return grants


def visible_clause(
    *,
    clinician_id: uuid.UUID,
    patient_col: InstrumentedAttribute[uuid.UUID],
    category_col: InstrumentedAttribute[str],
    time_col: InstrumentedAttribute[datetime],
    now: datetime,
) -> ColumnElement[bool]:
    """require_active as SQL, for rows of many patients: true where a consent in force to the
    clinician covers the row's category and the row's time lies in that consent's window."""
    start = func.coalesce(Consent.data_from, Consent.signed_at)
    return exists().where(
        Consent.recipient_id == clinician_id,
        Consent.patient_id == patient_col,
        _in_force(now),
        ConsentCategory.consent_id == Consent.id,
        ConsentCategory.category == category_col,
        time_col >= start,
        time_col <= now,
    )


def in_force_clause(now: datetime) -> ColumnElement[bool]:
    """The gate's rule (Consent.is_active) as SQL, for jobs that select consents in bulk."""
    return _in_force(now)


def consents_in_force(
    session: Session, *, consent_ids: Collection[uuid.UUID], now: datetime
) -> dict[uuid.UUID, Consent]:
    """Those of the consents still in force at `now`, share-locked like require_active does (a
    revoke in flight is waited for and then seen): the weekly summaries' check at delivery."""
    if not consent_ids:
        return {}
    stmt = (
        select(Consent)
        .where(Consent.id.in_(list(consent_ids)), _in_force(now))
        .with_for_update(read=True, of=Consent)
    )
    return {c.id: c for c in session.scalars(stmt)}


def categories_in_force(
    session: Session, *, now: datetime, after: uuid.UUID | None, limit: int
) -> dict[uuid.UUID, set[str]]:
    """The next `limit` patients (by id, after `after`) with a consent in force, each with the
    categories those consents cover (one query): what the alert job may evaluate."""
    stmt = (
        select(Consent.patient_id, ConsentCategory.category)
        .join(ConsentCategory, ConsentCategory.consent_id == Consent.id)
        .where(_in_force(now))
    )
    if after is not None:
        stmt = stmt.where(Consent.patient_id > after)
    patients = (
        select(Consent.patient_id)
        .where(_in_force(now), *([Consent.patient_id > after] if after is not None else []))
        .group_by(Consent.patient_id)
        .order_by(Consent.patient_id)
        .limit(limit)
    )
    stmt = stmt.where(Consent.patient_id.in_(patients))
    out: dict[uuid.UUID, set[str]] = {}
    for patient_id, category in session.execute(stmt):
        out.setdefault(patient_id, set()).add(category)
    return dict(sorted(out.items()))


def hold_active(session: Session, *, clinician_id: uuid.UUID, now: datetime) -> list[Consent]:
    """Share-lock every consent in force to the clinician (newest first), for a read across
    patients; what it returns is what `visible_clause` then allows."""
    return _active(session, clinician_id=clinician_id, now=now)


def active_for_clinician_stmt(*, clinician_id: uuid.UUID, now: datetime) -> Select[Any]:
    return select(Consent).where(Consent.recipient_id == clinician_id, _in_force(now))


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
) -> User:
    """The clinician holding this invite code. Every lookup counts against the caller and the
    address, so codes cannot be enumerated. Raises TooManyRequests, PersistingNotFound."""
    keys = (
        (f"lookup:user:{patient_id}", limits.per_user),
        (f"lookup:addr:{address}", limits.per_address),
    )
    for key, limit in keys:
        window = counter.peek(session, key, window=limits.window, now=now)
        if window.count >= limit:
            log.warning("consent.lookup_throttled", scope=key.split(":")[1])
            raise TooManyRequests(window.retry_after, "Too many invite code lookups. Try later.")

    def count(own: Session) -> None:
        for key, _limit in keys:
            counter.hit(own, key, window=limits.window, now=now)

    code = normalize_invite_code(invite_code)
    clinician = session.scalar(
        select(User).where(User.invite_code == code, User.role == "clinician")
    )
    if clinician is None or not code:
        raise PersistingNotFound("No clinician has this invite code.").with_trace(
            "consent.lookup_counted", count
        )
    count(session)  # a hit counts too, in the request's transaction
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
                _in_force(now),
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
    last = session.scalar(
        select(func.max(Disclosure.at)).where(Disclosure.consent_id == consent.id)
    )
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
