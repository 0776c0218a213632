"""The consent gate: the only way any code learns what a clinician may see of whom.

A request opens one `Gate` for its clinician (share-locking the consents it relies on until the
transaction ends) and asks it everything:
- `grant(patient, category)`: may this category be read? (404 if the patient has no consent in
  force to the clinician, 403 naming the category if none covers it) and over which data window;
- `visible(...)`: the same rule as a SQL clause, for lists across patients (alerts, counts);
- `allows(...)`: the same rule for rows already in memory (export rows, alert rows);
- `covering(...)`: the consent a ledger row cites.
A job opens one `JobGate` per batch: `in_force()` (the consents in force now), the patients and
categories it may evaluate, and the consents still in force at delivery.

"In force" is defined once, as `in_force(now)` (SQL) beside `is_in_force(consent, now)` (Python),
and tested to agree. A window is the data recorded while the consent was in force: from its
data_from (or signed_at) to now. Derived data (an alert, a summary, an export file) is judged by
the time of the events it carries, never by when it was made.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Select, and_, exists, func, or_, select
from sqlalchemy.orm import Session

from api.consent.models import CATEGORIES, Consent, ConsentCategory
from api.dml import one_of
from api.errors import Forbidden, NotFound

# --- "In force", once ------------------------------------------------------------------------


class _Terms(Protocol):
    signed_at: Any
    expires_at: Any
    revoked_at: Any


def in_force(now: datetime) -> ColumnElement[bool]:
    """A consent in force at `now` (SQL): signed by then, not yet expired (to the second), never
    revoked. The Python twin is `is_in_force`, just below."""
    # Revocation counts at once and for good: a revoked consent is refused whatever its
    # revoked_at says (revoke may stamp it a moment after `now`, after the last read it waited
    # for; see consent.services._stamp_revocation).
    return and_(
        Consent.revoked_at.is_(None),
        Consent.signed_at <= now,
        or_(Consent.expires_at.is_(None), Consent.expires_at > now),
    )


def is_in_force(consent: _Terms, now: datetime) -> bool:
    """`in_force(now)` for a consent (or a row with its columns) already in memory."""
    return (
        consent.revoked_at is None
        and consent.signed_at <= now
        and (consent.expires_at is None or now < consent.expires_at)
    )


def window_start(consent: Any) -> datetime:
    """Where the data a consent lets its recipient see begins (data_from, else signed_at)."""
    return consent.data_from if consent.data_from is not None else consent.signed_at


# --- Answers ---------------------------------------------------------------------------------


class CategoryNotConsented(Forbidden):
    """The patient consented to this clinician, but not to this category of data."""

    slug = "consent-category"
    title = "Not covered by the patient's consent"

    def __init__(self, category: str) -> None:
        super().__init__(
            f"The patient's consent does not cover the category: {category}.",
            missing_category=category,
        )


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

    def holds(self, start: datetime | None, end: datetime | None = None) -> bool:
        """Data about [start, end] (an instant when end is None) lies wholly in the window.
        No time at all is refused: a row the gate cannot place in time is never waved through."""
        if start is None:
            return False
        end = start if end is None else end
        return self.window_from <= start and end <= self.window_to


def _grants(
    consents: Iterable[Consent],
    *,
    patient_id: uuid.UUID,
    clinician_id: uuid.UUID,
    categories: Iterable[str],
    now: datetime,
) -> dict[str, Grant]:
    """Per category, the newest covering consent and the earliest window start among those
    covering it (consents come newest first)."""
    held = list(consents)
    grants = {}
    for category in categories:
        covering = [c for c in held if category in c.categories]
        if covering:
            grants[category] = Grant(
                patient_id=patient_id,
                clinician_id=clinician_id,
                consent_id=covering[0].id,
                category=category,
                window_from=min(window_start(c) for c in covering),
                window_to=now,
            )
    return grants


# --- A clinician's gate, one per request ----------------------------------------------------


class Gate:
    """What one clinician may see now. Open it once per request (or per job item acting for a
    clinician) with `Gate.open`; the consents it read stay share-locked until the caller's
    transaction ends, so a revoke in flight is waited for and then seen, and no read commits
    after a revocation (a revoke takes FOR UPDATE)."""

    def __init__(
        self,
        session: Session,
        *,
        clinician_id: uuid.UUID,
        now: datetime,
        patient_id: uuid.UUID | None,
    ) -> None:
        self.session = session
        self.clinician_id = clinician_id
        self.now = now
        self._patient_id = patient_id
        self._consents: list[Consent] | None = None
        self._by_patient: dict[uuid.UUID, list[Consent]] = {}

    @classmethod
    def open(
        cls,
        session: Session,
        *,
        clinician_id: uuid.UUID,
        now: datetime,
        patient_id: uuid.UUID | None = None,
        lock: bool = True,
    ) -> Gate:
        """The clinician's gate at `now`, for every patient or (patient_id) one. With `lock`
        (every read that discloses), the consents in force are read and share-locked now;
        without, they are read when first needed (a roster that only pages them in SQL)."""
        gate = cls(session, clinician_id=clinician_id, now=now, patient_id=patient_id)
        if lock:
            gate._load(lock=True)
        return gate

    def _load(self, *, lock: bool) -> list[Consent]:
        stmt = select(Consent).where(Consent.recipient_id == self.clinician_id, in_force(self.now))
        if self._patient_id is not None:
            stmt = stmt.where(Consent.patient_id == self._patient_id)
        stmt = stmt.order_by(Consent.signed_at.desc(), Consent.id.desc())
        if lock:
            # FOR SHARE (SQLite serializes writers with BEGIN IMMEDIATE: the same order).
            stmt = stmt.with_for_update(read=True, of=Consent)
        self._consents = list(self.session.scalars(stmt))
        self._by_patient = {}
        for consent in self._consents:
            self._by_patient.setdefault(consent.patient_id, []).append(consent)
        return self._consents

    @property
    def consents(self) -> list[Consent]:
        """The consents in force to the clinician (of the one patient, if opened so), newest
        first."""
        return self._consents if self._consents is not None else self._load(lock=False)

    def _of(self, patient_id: uuid.UUID) -> list[Consent]:
        assert self._patient_id in (None, patient_id), "gate opened for another patient"
        self.consents  # noqa: B018 (loads them)
        return self._by_patient.get(patient_id, [])

    # -- one patient

    def grants(self, patient_id: uuid.UUID, categories: Collection[str]) -> dict[str, Grant]:
        """A Grant for each of `categories` some consent in force covers; the others are absent.
        Raises NotFound if no consent from the patient to the clinician is in force."""
        for category in categories:
            assert category in CATEGORIES, category
        consents = self._of(patient_id)
        if not consents:
            raise NotFound("No such patient.")
        return _grants(
            consents,
            patient_id=patient_id,
            clinician_id=self.clinician_id,
            categories=categories,
            now=self.now,
        )

    def grant(self, patient_id: uuid.UUID, category: str) -> Grant:
        """Raises NotFound if no consent from the patient to the clinician is in force (the
        patient is invisible), CategoryNotConsented (403) if none in force covers `category`."""
        grants = self.grants(patient_id, [category])
        if category not in grants:
            raise CategoryNotConsented(category)
        return grants[category]

    def patients(self) -> dict[uuid.UUID, dict[str, Grant]]:
        """Every patient visible to the clinician, with a Grant per consented category."""
        self.consents  # noqa: B018 (loads them)
        return {
            patient_id: _grants(
                consents,
                patient_id=patient_id,
                clinician_id=self.clinician_id,
                categories=CATEGORIES,
                now=self.now,
            )
            for patient_id, consents in self._by_patient.items()
        }

    def allows(
        self,
        patient_id: uuid.UUID,
        category: str | None,
        start: datetime | None,
        end: datetime | None = None,
    ) -> bool:
        """`visible` for a row in memory: a consent in force covers the category and the row's
        time (or period [start, end]) lies in its window. A row with no time is refused."""
        if category is None:
            return False
        grant = _grants(
            self._of(patient_id),
            patient_id=patient_id,
            clinician_id=self.clinician_id,
            categories=[category],
            now=self.now,
        ).get(category)
        return grant is not None and grant.holds(start, end)

    def covering(self, patient_id: uuid.UUID, categories: Collection[str]) -> Consent:
        """The consent a ledger row cites for disclosing `categories` of the patient: the
        newest in force covering any of them. Raises NotFound if there is none."""
        wanted = set(categories)
        for consent in self._of(patient_id):
            if wanted & set(consent.categories):
                return consent
        raise NotFound("No such patient.")

    # -- many patients, in SQL

    def visible(
        self,
        *,
        patient_col: Any,
        category_col: Any,
        time_col: Any,
        until_col: Any = None,
    ) -> ColumnElement[bool]:
        """`allows` as SQL, for rows of many patients: true where a consent in force to the
        clinician covers the row's category and the row's time (or the period from time_col to
        until_col, for derived rows like alerts) lies in that consent's window."""
        start = func.coalesce(Consent.data_from, Consent.signed_at)
        end = time_col if until_col is None else until_col
        return exists().where(
            Consent.recipient_id == self.clinician_id,
            Consent.patient_id == patient_col,
            in_force(self.now),
            ConsentCategory.consent_id == Consent.id,
            ConsentCategory.category == category_col,
            time_col.is_not(None),
            end.is_not(None),
            time_col >= start,
            end <= self.now,
        )

    def consents_stmt(self) -> Select[Any]:
        """The consents in force to the clinician, as a statement to page (the roster)."""
        return select(Consent).where(Consent.recipient_id == self.clinician_id, in_force(self.now))

    def consent_ids(self) -> Select[Any]:
        """Ids of the consents in force to the clinician, for IN (...) clauses."""
        return select(Consent.id).where(
            Consent.recipient_id == self.clinician_id, in_force(self.now)
        )


# --- A job's gate, one per batch --------------------------------------------------------------


@dataclass
class WeeklyConsent:
    """The columns of a consent the weekly job needs (thousands a run: no ORM object each)."""

    id: uuid.UUID
    patient_id: uuid.UUID
    recipient_id: uuid.UUID
    purpose: str
    signed_at: datetime
    expires_at: datetime | None
    data_from: datetime | None
    share_weekly_summary: bool
    categories: list[str]

    @property
    def window_start(self) -> datetime:
        return window_start(self)

    def allows(
        self, category: str, start: datetime | None, end: datetime | None, now: datetime
    ) -> bool:
        """A row of `category` about [start, end] may go to the recipient under this consent."""
        return (
            category in self.categories
            and start is not None
            and self.window_start <= start
            and (end if end is not None else start) <= now
        )


_WEEKLY_FIELDS = (
    "id",
    "patient_id",
    "recipient_id",
    "purpose",
    "signed_at",
    "expires_at",
    "data_from",
    "share_weekly_summary",
)


class JobGate:
    """What batch jobs may work on now: open one per batch, in the batch's transaction."""

    def __init__(self, session: Session, *, now: datetime) -> None:
        self.session = session
        self.now = now

    @classmethod
    def open(cls, session: Session, *, now: datetime) -> JobGate:
        return cls(session, now=now)

    def in_force(self) -> ColumnElement[bool]:
        """The rule, as SQL, at the batch's `now`."""
        return in_force(self.now)

    def patient_categories(
        self, *, after: uuid.UUID | None, limit: int
    ) -> dict[uuid.UUID, set[str]]:
        """The next `limit` patients (by id, after `after`) with a consent in force, each with the
        categories those consents cover (one query): what the alert job may evaluate."""
        later = [Consent.patient_id > after] if after is not None else []
        patients = (
            select(Consent.patient_id)
            .where(self.in_force(), *later)
            .group_by(Consent.patient_id)
            .order_by(Consent.patient_id)
            .limit(limit)
        )
        stmt = (
            select(Consent.patient_id, ConsentCategory.category)
            .join(ConsentCategory, ConsentCategory.consent_id == Consent.id)
            .where(self.in_force(), *later, Consent.patient_id.in_(patients))
        )
        out: dict[uuid.UUID, set[str]] = {}
        for patient_id, category in self.session.execute(stmt):
            out.setdefault(patient_id, set()).add(category)
        return dict(sorted(out.items()))

    def weekly_consents(self, *, after: uuid.UUID | None, limit: int) -> list[WeeklyConsent]:
        """The next `limit` consents (by id, after `after`) in force that share a weekly summary,
        with their categories (two queries)."""
        stmt = (
            select(*(getattr(Consent, name) for name in _WEEKLY_FIELDS))
            .where(Consent.share_weekly_summary.is_(True), self.in_force())
            .order_by(Consent.id)
            .limit(limit)
        )
        if after is not None:
            stmt = stmt.where(Consent.id > after)
        rows = [dict(row._mapping) for row in self.session.execute(stmt)]
        categories: dict[uuid.UUID, list[str]] = {row["id"]: [] for row in rows}
        if rows:
            for consent_id, category in self.session.execute(
                select(ConsentCategory.consent_id, ConsentCategory.category)
                .where(one_of(self.session, ConsentCategory.consent_id, list(categories)))
                .order_by(ConsentCategory.category)
            ):
                categories[consent_id].append(category)
        return [WeeklyConsent(**row, categories=categories[row["id"]]) for row in rows]

    def still_in_force(self, consent_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, Consent]:
        """Those of the consents still in force, share-locked like `Gate.open` does (a revoke in
        flight is waited for and then seen): the check at delivery."""
        if not consent_ids:
            return {}
        stmt = (
            select(Consent)
            .where(Consent.id.in_(list(consent_ids)), self.in_force())
            .with_for_update(read=True, of=Consent)
        )
        return {c.id: c for c in self.session.scalars(stmt)}

    def grants_of(self, consent: Consent) -> dict[str, Grant]:
        """What a consent (still in force) grants its recipient, per category."""
        return _grants(
            [consent],
            patient_id=consent.patient_id,
            clinician_id=consent.recipient_id,
            categories=consent.categories,
            now=self.now,
        )
