"""Writing and listing the disclosure ledger. Append-only: there is no update or delete here."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth.models import User
from api.consent.models import CATEGORIES
from api.disclosures.models import KINDS, Disclosure
from api.pagination import keyset_page

log = structlog.get_logger("waymark.disclosures")

# HIPAA's accounting window; Part 2 asks for 3 years. Nothing in the code deletes rows.
RETENTION_YEARS = 6


def record_disclosure(
    session: Session,
    *,
    patient_id: uuid.UUID,
    recipient_id: uuid.UUID,
    consent_id: uuid.UUID,
    kind: str,
    categories: Iterable[str],
    data_from: datetime,
    data_to: datetime,
    now: datetime,
) -> Disclosure:
    """Append one row in the caller's transaction, so it commits with the read it accounts for."""
    assert kind in KINDS, kind
    cats = sorted(set(categories))
    assert cats and set(cats) <= set(CATEGORIES), cats
    recipient = session.get(User, recipient_id)
    assert recipient is not None
    row = Disclosure(
        at=now,
        patient_id=patient_id,
        recipient_id=recipient_id,
        recipient_name=recipient.display_name,
        recipient_organization=recipient.organization,
        consent_id=consent_id,
        kind=kind,
        categories=cats,
        data_from=data_from,
        data_to=data_to,
    )
    session.add(row)
    session.flush()
    log.info(
        "disclosure.recorded",
        disclosure_id=str(row.id),
        patient_id=str(patient_id),
        recipient_id=str(recipient_id),
        consent_id=str(consent_id),
        kind=kind,
    )
    return row


def list_disclosures(
    session: Session,
    *,
    patient_id: uuid.UUID,
    from_: datetime | None,
    to: datetime | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """The patient's accounting of disclosures, newest first."""
    stmt = select(Disclosure).where(Disclosure.patient_id == patient_id)
    if from_ is not None:
        stmt = stmt.where(Disclosure.at >= from_)
    if to is not None:
        stmt = stmt.where(Disclosure.at < to)
    items, next_cursor = keyset_page(
        session, stmt, order=Disclosure.at, tiebreak=Disclosure.id, limit=limit, cursor=cursor
    )
    return {"items": items, "next_cursor": next_cursor}
