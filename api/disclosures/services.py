"""Writing and listing the disclosure ledger. Append-only: there is no update or delete here."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from api.auth.models import User
from api.categories import CATEGORIES
from api.consent.gate import window_start
from api.consent.models import Consent
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
    client: SystemClientRef | None = None,
) -> Disclosure:
    """Append one row in the caller's transaction, so it commits with the read it accounts for.
    Its purpose is the consent's; `client` names a system client that received it on the
    recipient's behalf. The row is also noted in the session (`disclosed_in`), so the answer
    that carries the data can carry the scope of every consent it went out under."""
    assert kind in KINDS, kind
    cats = sorted(set(categories))
    assert cats and set(cats) <= set(CATEGORIES), cats
    recipient = session.get(User, recipient_id)
    consent = session.get(Consent, consent_id)  # in the identity map: the gate just read it
    assert recipient is not None and consent is not None
    row = Disclosure(
        at=now,
        patient_id=patient_id,
        recipient_id=recipient_id,
        recipient_name=recipient.display_name,
        recipient_organization=recipient.organization,
        consent_id=consent_id,
        kind=kind,
        purpose=consent.purpose,
        client_id=client.id if client else None,
        client_name=client.name if client else None,
        categories=cats,
        data_from=data_from,
        data_to=data_to,
    )
    session.add(row)
    session.flush()
    _note(session, consent)
    log.info(
        "disclosure.recorded",
        disclosure_id=str(row.id),
        patient_id=str(patient_id),
        recipient_id=str(recipient_id),
        consent_id=str(consent_id),
        kind=kind,
    )
    return row


def record_per_consent(
    session: Session,
    *,
    patient_id: uuid.UUID,
    recipient_id: uuid.UUID,
    kind: str,
    reads: Mapping[str, tuple[uuid.UUID, datetime, datetime]],
    now: datetime,
    client: SystemClientRef | None = None,
) -> int:
    """The ledger's rule for one read of one patient's data: one row per consent used, with the
    categories read under it and the span of their data periods. `reads`: category -> (consent
    id, data from, data to). Returns the rows appended."""
    by_consent: dict[uuid.UUID, list[tuple[str, datetime, datetime]]] = {}
    for category, (consent_id, start, end) in reads.items():
        by_consent.setdefault(consent_id, []).append((category, start, end))
    for consent_id, items in by_consent.items():
        record_disclosure(
            session,
            patient_id=patient_id,
            recipient_id=recipient_id,
            consent_id=consent_id,
            kind=kind,
            categories=[c for c, _, _ in items],
            data_from=min(start for _, start, _ in items),
            data_to=max(end for _, _, end in items),
            now=now,
            client=client,
        )
    return len(by_consent)


def record_disclosures(
    session: Session,
    *,
    kind: str,
    entries: Iterable[dict[str, Any]],
    now: datetime,
    note: bool = False,
) -> int:
    """record_disclosure for many at once (one INSERT; the recipients' names in one query), for
    pages and jobs that disclose in bulk. Each entry: patient_id, recipient_id, consent_id,
    categories, data_from, data_to. With `note`, the consents are noted in the session as
    record_disclosure notes them (`disclosed_in`), for an answer that carries their scope."""
    assert kind in KINDS, kind
    items = list(entries)
    if not items:
        return 0
    purposes = dict(
        session.execute(  # type: ignore[arg-type]
            select(Consent.id, Consent.purpose).where(
                Consent.id.in_({e["consent_id"] for e in items})
            )
        ).all()
    )
    recipients = {
        row.id: row
        for row in session.execute(
            select(User.id, User.display_name, User.organization).where(
                User.id.in_({e["recipient_id"] for e in items})
            )
        )
    }
    rows = []
    for entry in items:
        cats = sorted(set(entry["categories"]))
        assert cats and set(cats) <= set(CATEGORIES), cats
        recipient = recipients[entry["recipient_id"]]
        rows.append(
            {
                "id": uuid.uuid4(),
                "at": now,
                "patient_id": entry["patient_id"],
                "recipient_id": entry["recipient_id"],
                "recipient_name": recipient.display_name,
                "recipient_organization": recipient.organization,
                "consent_id": entry["consent_id"],
                "kind": kind,
                "purpose": purposes[entry["consent_id"]],
                "client_id": None,
                "client_name": None,
                "categories": cats,
                "data_from": entry["data_from"],
                "data_to": entry["data_to"],
            }
        )
    session.execute(insert(Disclosure), rows)
    if note:
        for consent_id in dict.fromkeys(e["consent_id"] for e in items):
            consent = session.get(Consent, consent_id)  # in the identity map: the gate read it
            assert consent is not None
            _note(session, consent)
    log.info("disclosures.recorded", count=len(rows), kind=kind)
    return len(rows)


def _note(session: Session, consent: Consent) -> None:
    session.info.setdefault(_DISCLOSED, {}).setdefault(consent.id, consent)


_DISCLOSED = "waymark.disclosed_consents"


@dataclass(frozen=True)
class SystemClientRef:
    """A system client receiving data on a recipient's behalf, as the ledger names it."""

    id: uuid.UUID
    name: str


def disclosed_in(session: Session) -> list[Consent]:
    """The consents the session's transaction has disclosed under so far (record_disclosure)."""
    return list(session.info.get(_DISCLOSED, {}).values())


def consent_scope(consent: Consent, *, text_url: str) -> dict[str, Any]:
    """What 42 CFR 2.32(b) (2024 text) asks a disclosure to carry when it does not carry the
    consent itself: a clear explanation of its scope. `text_url` is where the signed text is."""
    return {
        "consent_id": consent.id,
        "discloser": consent.discloser,
        "recipient": {
            "id": consent.recipient_id,
            "display_name": consent.recipient_name,
            "organization": consent.recipient_organization,
        },
        "categories": list(consent.categories),
        "purpose": consent.purpose,
        "data_from": window_start(consent),
        "expires_at": consent.expires_at,
        "signed_at": consent.signed_at,
        "share_weekly_summary": consent.share_weekly_summary,
        "consent_text_version": consent.consent_text_version,
        "consent_text_url": text_url.format(version=consent.consent_text_version),
    }


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
