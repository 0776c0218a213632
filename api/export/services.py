"""Exports: the user's own data (JSON, CSV zip, FHIR Bundle) and FHIR Bulk Data jobs.

Own exports stream from the request (generators over server-side cursors). Bulk exports are
queued here and run by the scheduler process (jobs/bulk_export.py), never in a web worker.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.auth.models import User
from api.consent.gate import Gate, Grant
from api.errors import AppError, NotFound, TooManyRequests, ValidationError
from api.export import feature_sections, fhir, writers
from api.export.models import ACTIVE_STATUSES, ExportJob, ExportJobPatient
from api.export.sections import Section, Window, all_sections, in_chunks, stream, windowed
from api.export.storage import ExportPlace, ExportStorage, FileWriter, storage_of
from api.ratelimit import Counter

log = structlog.get_logger("waymark.export")
assert feature_sections  # imported for its registrations

FORMATS = {
    "json": ("application/json", "json"),
    "csv": ("application/zip", "zip"),
    "fhir": ("application/fhir+json", "fhir.json"),
}
# Bulk NDJSON files are written through a buffer of this size (fewer, larger writes).
FILE_BUFFER = 1 << 20
NDJSON_FORMATS = ("application/fhir+ndjson", "application/ndjson", "ndjson")


class BadRequest(AppError):
    status = 400
    slug = "bad-request"
    title = "Bad request"


class ExportFailed(AppError):
    status = 500
    slug = "export-failed"
    title = "Export failed"


@dataclass(frozen=True)
class RateLimit:
    limit: int
    window: int


@dataclass(frozen=True)
class OwnExport:
    chunks: Iterator[bytes]
    mimetype: str
    filename: str


def fhir_context(
    *, base_url: str, now: datetime, disclosed: bool, recipient_id: uuid.UUID | None = None
) -> fhir.FhirContext:
    return fhir.FhirContext(
        base_url=base_url,
        now=now,
        disclosed=disclosed,
        recipient_id=str(recipient_id) if recipient_id is not None else None,
        item_texts=feature_sections.instrument_catalogue(),
    )


def rate_key(user_id: uuid.UUID) -> str:
    return f"export:{user_id}"


def check_rate(
    session: Session, *, user_id: uuid.UUID, counter: Counter, limits: RateLimit, now: datetime
) -> None:
    """Count one export for the user; raises TooManyRequests (with Retry-After) over the limit."""
    window = counter.hit(session, rate_key(user_id), window=limits.window, now=now)
    if window.count > limits.limit:
        log.info("export.rate_limited", user_id=str(user_id))
        raise TooManyRequests(
            window.retry_after, f"At most {limits.limit} exports per {limits.window} seconds."
        )


def own_sections() -> list[Section]:
    return all_sections()


def start_own_export(
    session: Session,
    *,
    user: User,
    fmt: str,
    now: datetime,
    counter: Counter,
    limits: RateLimit,
    base_url: str,
) -> OwnExport:
    """Count the export against the rate limit and return its (lazy) byte stream."""
    check_rate(session, user_id=user.id, counter=counter, limits=limits, now=now)
    mimetype, extension = FORMATS[fmt]
    sections = own_sections()
    user_id = user.id
    if fmt == "json":
        chunks = writers.json_document(session, user_id=user_id, sections=sections, now=now)
    elif fmt == "csv":
        chunks = writers.csv_zip(session, user_id=user_id, sections=sections, now=now)
    else:
        ctx = fhir_context(base_url=base_url, now=now, disclosed=False)
        chunks = writers.fhir_bundle(
            session, user_id=user_id, sections=sections, ctx=ctx, bundle_id=str(uuid.uuid4())
        )
    log.info("export.started", user_id=str(user_id), format=fmt)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    return OwnExport(chunks, mimetype, f"waymark-export-{stamp}.{extension}")


# --- FHIR Bulk Data --------------------------------------------------------------------------


def bulk_types() -> list[str]:
    """Every resource type a bulk export can hold, in file order."""
    seen: list[str] = []
    for section in all_sections():
        if section.own_only:
            continue
        for rtype in section.fhir_types:
            if rtype not in seen:
                seen.append(rtype)
    return seen


def parse_types(raw: str | None) -> list[str]:
    """`_type` (comma-separated); raises ValidationError naming the unsupported types."""
    supported = bulk_types()
    if not raw:
        return supported
    asked = [t.strip() for t in raw.split(",") if t.strip()]
    unknown = sorted({t for t in asked if t not in supported})
    if unknown or not asked:
        raise ValidationError(
            {"_type": [f"Unsupported type(s): {', '.join(unknown) or '(none)'}."]},
            detail=f"_type must be a subset of: {', '.join(supported)}.",
        )
    return [t for t in supported if t in asked]


def start_bulk_export(
    session: Session,
    *,
    requester: User,
    prefer: str | None,
    output_format: str | None,
    types: str | None,
    since: datetime | None,
    request_url: str,
    now: datetime,
    retry_after: int,
    counter: Counter,
    limits: RateLimit,
) -> ExportJob:
    """Queue a bulk export for the scheduler. Raises BadRequest without `Prefer: respond-async`,
    ValidationError for bad parameters, TooManyRequests over the export rate limit or while the
    requester has one queued or running."""
    if "respond-async" not in (prefer or "").lower():
        raise BadRequest("Bulk export needs the header 'Prefer: respond-async'.")
    if output_format and output_format not in NDJSON_FORMATS:
        raise ValidationError({"_outputFormat": ["Only application/fhir+ndjson is offered."]})
    if since is not None and since > now:
        raise ValidationError({"_since": ["_since is in the future."]})
    check_rate(session, user_id=requester.id, counter=counter, limits=limits, now=now)
    job = ExportJob(
        requester_id=requester.id,
        status="queued",
        types=parse_types(types),
        since=since,
        request_url=request_url[:2000],
        created_at=now,
    )
    busy = TooManyRequests(
        retry_after, "A bulk export of yours is already running; poll it, or cancel it first."
    )
    if session.scalar(
        select(ExportJob.id).where(
            ExportJob.requester_id == requester.id, ExportJob.status.in_(ACTIVE_STATUSES)
        )
    ):
        raise busy
    try:
        # The partial unique index settles two kick-offs racing past the check above.
        with session.begin_nested():
            session.add(job)
            session.flush()
    except IntegrityError as exc:
        raise busy from exc
    log.info("bulk_export.queued", job_id=str(job.id), requester_id=str(requester.id))
    return job


def _own_job(session: Session, *, requester: User, job_id: uuid.UUID) -> ExportJob:
    job = session.get(ExportJob, job_id)
    if job is None or job.requester_id != requester.id or job.status in ("cancelled", "expired"):
        raise NotFound("No such export.")
    return job


def bulk_status(
    session: Session, *, requester: User, job_id: uuid.UUID, now: datetime
) -> ExportJob:
    """The requester's job; NotFound for others', cancelled or expired ones."""
    job = _own_job(session, requester=requester, job_id=job_id)
    if job.expires_at is not None and job.expires_at <= now:
        raise NotFound("This export has expired.")
    if job.status == "failed":
        raise ExportFailed("The export failed. Start a new one.")
    return job


def manifest(job: ExportJob, *, file_url: Any, notice: str | None) -> dict[str, Any]:
    """The Bulk Data completion manifest; `file_url(job_id, type)` builds the download URLs."""
    assert job.transaction_time is not None
    body: dict[str, Any] = {
        "transactionTime": job.transaction_time.isoformat(),
        "request": job.request_url,
        "requiresAccessToken": True,
        "output": [
            {"type": o["type"], "url": file_url(job.id, o["type"]), "count": o["count"]}
            for o in job.output or []
            if not o.get("deleted")
        ],
        "error": [],
    }
    if job.since is not None:
        body["deleted"] = [
            {"type": o["type"], "url": file_url(job.id, DELETED_FILE), "count": o["count"]}
            for o in job.output or []
            if o.get("deleted")
        ]
    if notice:
        body["extension"] = {"redisclosureNotice": notice}
    return body


def cancel_bulk_export(
    session: Session, *, requester: User, job_id: uuid.UUID, export_dir: ExportPlace, now: datetime
) -> None:
    """Cancel a queued or running job, or delete a finished one's files. The runner notices."""
    job = _own_job(session, requester=requester, job_id=job_id)
    job.status = "cancelled"
    job.finished_at = job.finished_at or now
    job.output = None
    session.flush()
    remove_files(export_dir, job.id, session)
    log.info("bulk_export.cancelled", job_id=str(job.id))


def bulk_file(
    session: Session,
    *,
    requester: User,
    job_id: uuid.UUID,
    rtype: str,
    export_dir: ExportPlace,
    now: datetime,
) -> Iterator[bytes]:
    """The NDJSON file of one type of a completed job of the requester's, in chunks."""
    job = bulk_status(session, requester=requester, job_id=job_id, now=now)
    files = {DELETED_FILE if o.get("deleted") else o["type"] for o in job.output or []}
    if job.status != "completed" or rtype not in files:
        raise NotFound("No such file.")
    chunks = storage_of(export_dir).read(session, job.id, rtype)
    if chunks is None:
        raise NotFound("No such file.")
    return chunks


def job_dir(export_dir: Path, job_id: uuid.UUID) -> Path:
    """Where the disk storage keeps a job's files."""
    return Path(export_dir) / str(job_id)


def remove_files(
    export_dir: ExportPlace, job_id: uuid.UUID, session: Session | None = None
) -> None:
    """Delete every file of the job wherever they are stored (api/export/storage.py); the
    database storage deletes inside `session`'s transaction, so it needs one."""
    storage = storage_of(export_dir)
    if session is None and storage.kind != "disk":
        raise TypeError("remove_files needs the session for this storage")
    storage.delete(session, job_id)  # type: ignore[arg-type]


# --- Running a bulk export (scheduler process) -----------------------------------------------


# What a clinician may receive of each patient, per consented category (api.consent.gate).
Grants = dict[uuid.UUID, dict[str, Grant]]


def grants_of(gate: Gate) -> Grants:
    return {pid: grants for pid, grants in gate.patients().items() if grants}


class ConsentChanged(Exception):
    """A consent the export relied on ended while it ran: the files are not handed out."""


class Cancelled(Exception):
    pass


# The file of the Bulk Data `deleted` array (its lines are Bundles, like no output file's).
DELETED_FILE = "deleted"


class _Files:
    """One NDJSON file per resource type (and one of deletions), opened on first write, counted."""

    def __init__(self, storage: ExportStorage, session: Session, job_id: uuid.UUID) -> None:
        self.storage, self.session, self.job_id = storage, session, job_id
        self.handles: dict[str, FileWriter] = {}
        self.counts: dict[str, int] = {}

    def write(self, resource: dict[str, Any], name: str | None = None) -> None:
        """Append to the file `name` (default: the resource's type)."""
        name = name or resource["resourceType"]
        handle = self.handles.get(name)
        if handle is None:
            handle = self.storage.writer(self.session, self.job_id, name)
            self.handles[name] = handle
            self.counts[name] = 0
        handle.write(writers.ndjson_line(resource))
        self.counts[name] += 1

    def close(self) -> None:
        for handle in self.handles.values():
            handle.close()


def _in_period(section: Section, record: dict[str, Any], grants: dict[str, Grant]) -> bool:
    """Inside the consent's data window for the section's category (from its start to now), by
    the time the section gives the record. A section of health data without such a time, or a
    record without one, is refused: nothing is waved through unjudged."""
    if section.category is None:
        return True
    when = section.when(record) if section.when is not None else None
    return grants[section.category].holds(when)


@dataclass
class _Run:
    session: Session
    grants: Grants | None  # None: every patient (an admin's export)
    window: Window
    ctx: fhir.FhirContext
    wanted: set[str]
    files: _Files
    included: dict[uuid.UUID, set[str]]
    # Patients named only by entries of the deleted file (not a disclosure of data).
    mentioned: set[uuid.UUID] = field(default_factory=set)


def _export_section(run: _Run, section: Section) -> None:
    ids: list[uuid.UUID] | None = None
    if run.grants is not None:
        ids = [
            pid
            for pid, grant in run.grants.items()
            if section.category is None or section.category in grant
        ]
        if not ids:
            return
    to_fhir = section.to_fhir
    assert to_fhir is not None
    ctx, wanted, write = run.ctx, run.wanted, run.files.write
    # Rows come ordered by patient: look the patient up once per patient, not once per row. A
    # UUID's == and hash are Python code; its .int and the id as text compare and hash in C.
    current = -1
    subject = ""
    grant: dict[str, Grant] | None = None
    included = False
    for patient_id, record in section.rows(run.session, ids, run.window):
        if patient_id.int != current:
            current, subject, included = patient_id.int, str(patient_id), False
            grant = run.grants[patient_id] if run.grants is not None else None
        if grant is not None and not _in_period(section, record, grant):
            continue
        wrote = False
        for resource in to_fhir(record, ctx, subject):
            if resource["resourceType"] in wanted:
                write(resource)
                wrote = True
        if wrote and not included:
            included = True
            cats = run.included.setdefault(patient_id, set())
            if section.category:
                cats.add(section.category)


def _export_deletions(run: _Run, sections: list[Section], since: datetime) -> None:
    """With _since: a transaction Bundle of DELETE entries per record deleted after `since` (and
    not after transactionTime), read from the sync change feed's tombstones. Only the wanted
    types; for a clinician only patients and categories consented now."""
    from api.sync.models import Change

    by_entity = {s.feed_entity: s for s in sections if s.feed_entity and s.deleted_refs}
    if not by_entity:
        return
    stmt = windowed(
        select(Change.user_id, Change.entity_type, Change.entity_id)
        .where(Change.op == "delete", Change.entity_type.in_(sorted(by_entity)))
        .order_by(Change.seq),
        Change.changed_at,
        Window(since=since, until=run.window.until),
    )
    ids = None if run.grants is None else list(run.grants)
    seen: set[uuid.UUID] = set()
    for stmt_chunk in in_chunks(stmt, Change.user_id, ids):
        for row in stream(run.session, stmt_chunk):
            section = by_entity[row.entity_type]
            if run.grants is not None and section.category not in run.grants[row.user_id]:
                continue
            if row.entity_id in seen:  # deleted twice (a retried request): one entry
                continue
            seen.add(row.entity_id)
            assert section.deleted_refs is not None
            refs = [(t, i) for t, i in section.deleted_refs(row.entity_id) if t in run.wanted]
            if refs:
                bundle_id = fhir.derived_id(row.entity_id, "deleted")
                run.files.write(fhir.deleted_bundle(bundle_id, refs), DELETED_FILE)
                run.mentioned.add(row.user_id)


def run_bulk_export(
    session: Session,
    *,
    job: ExportJob,
    export_dir: ExportPlace,
    base_url: str,
    now: datetime,
    on_progress: Any = None,
) -> dict[uuid.UUID, set[str]]:
    """Write the job's NDJSON files, record a clinician's disclosures, and complete the job.
    Returns every patient the files hold, with the consent categories whose data went out (none
    for a patient named only in the deleted file); the caller keeps them in export_job_patients
    so that an erasure reaches the files.

    Raises Cancelled when the job was cancelled meanwhile (checked between sections).
    """
    requester = session.get(User, job.requester_id)
    assert requester is not None
    grants: Grants | None = None
    if requester.role != "admin":
        grants = grants_of(Gate.open(session, clinician_id=requester.id, now=now))
    job.transaction_time = job.transaction_time or now
    window = Window(since=job.since, until=job.transaction_time)
    disclosed = requester.role != "admin"
    ctx = fhir_context(
        base_url=base_url,
        now=now,
        disclosed=disclosed,
        recipient_id=requester.id if disclosed else None,
    )
    wanted = set(job.types)
    sections = [
        s
        for s in all_sections()
        if not s.own_only and s.to_fhir is not None and wanted & set(s.fhir_types)
    ]
    files = _Files(storage_of(export_dir), session, job.id)
    run = _Run(session, grants, window, ctx, wanted, files, {})
    try:
        for index, section in enumerate(sections):
            if on_progress is not None and on_progress(int(100 * index / max(len(sections), 1))):
                raise Cancelled
            _export_section(run, section)
        if job.since is not None:
            _export_deletions(run, sections, job.since)
    finally:
        run.files.close()
    if on_progress is not None and on_progress(99):
        raise Cancelled
    if grants is not None:
        _check_grants_still_hold(session, requester=requester, grants=grants, run=run, now=now)
        record_disclosures(session, requester=requester, job=job, grants=grants, run=run, now=now)
    counts = run.files.counts
    job.output = [{"type": t, "count": counts[t]} for t in job.types if t in counts]
    if DELETED_FILE in counts:
        job.output.append({"type": "Bundle", "count": counts[DELETED_FILE], "deleted": True})
    job.status = "completed"
    job.progress = 100
    only_deleted = {pid: set[str]() for pid in run.mentioned if pid not in run.included}
    return {**only_deleted, **run.included}


def _check_grants_still_hold(
    session: Session, *, requester: User, grants: Grants, run: _Run, now: datetime
) -> None:
    """Progress commits release the consent locks between resource types; a consent revoked
    meanwhile voids the export (raises ConsentChanged) rather than disclose after revocation."""
    current = grants_of(Gate.open(session, clinician_id=requester.id, now=now))
    for patient_id, categories in run.included.items():
        held = current.get(patient_id)
        if held is None or not categories <= set(held):
            raise ConsentChanged
        before = grants[patient_id]
        if any(held[c].window_from > before[c].window_from for c in categories):
            raise ConsentChanged


def record_disclosures(
    session: Session,
    *,
    requester: User,
    job: ExportJob,
    grants: Grants,
    run: _Run,
    now: datetime,
) -> int:
    """A ledger row (kind export) per patient and consent whose data went into the files: the
    categories sent under that consent and the period of data (its window, or from _since)."""
    from api.disclosures.services import record_per_consent

    def start(category_grant: Any) -> datetime:
        begin: datetime = category_grant.window_from
        return begin if job.since is None else min(max(begin, job.since), now)

    rows = 0
    for patient_id, categories in run.included.items():
        held = grants[patient_id]
        rows += record_per_consent(
            session,
            patient_id=patient_id,
            recipient_id=requester.id,
            kind="export",
            reads={
                c: (held[c].consent_id, start(held[c]), now) for c in sorted(categories or held)
            },
            now=now,
        )
    return rows


def record_included(
    session: Session, *, job: ExportJob, included: dict[uuid.UUID, set[str]], now: datetime
) -> None:
    """Remember which patients the job's files hold (erasure deletes those files) and, for a
    clinician's job, what of each: the categories and where each one's data window began, so
    that a consent revoked, expired or narrowed later voids the files (`void_if_not_allowed`)."""
    if not included:
        return
    requester = session.get(User, job.requester_id)
    grants: Grants = {}
    if requester is not None and requester.role != "admin":
        grants = grants_of(Gate.open(session, clinician_id=requester.id, now=now))
    session.execute(
        insert(ExportJobPatient),
        [
            {
                "job_id": job.id,
                "patient_id": pid,
                "windows": {
                    c: grants[pid][c].window_from.isoformat()
                    for c in sorted(categories)
                    if c in grants.get(pid, {})
                }
                if grants
                else None,
            }
            for pid, categories in included.items()
        ],
    )


def claim_next_job(session: Session, *, now: datetime) -> ExportJob | None:
    """Take the oldest queued job (SKIP LOCKED on PostgreSQL, so two schedulers never share one)."""
    stmt = (
        select(ExportJob)
        .where(ExportJob.status == "queued")
        .order_by(ExportJob.created_at)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    job = session.scalar(stmt)
    if job is None:
        return None
    job.status = "running"
    job.started_at = now
    job.transaction_time = now
    session.flush()
    return job


def expire_jobs(session: Session, *, export_dir: ExportPlace, now: datetime) -> int:
    """Delete the files of jobs past their expiry and of cancelled jobs; mark them expired. Void
    the finished exports whose consents no longer allow what they hold (expiry is announced by
    no request)."""
    void_changed_exports(session, export_dir=export_dir, now=now)
    jobs = list(
        session.scalars(
            select(ExportJob).where(
                ExportJob.status.in_(("completed", "failed", "cancelled")),
                (ExportJob.expires_at <= now) | (ExportJob.status == "cancelled"),
            )
        )
    )
    for job in jobs:
        remove_files(export_dir, job.id, session)
        if job.status != "cancelled":
            job.status = "expired"
        job.output = None
    session.execute(
        delete(ExportJobPatient).where(ExportJobPatient.job_id.in_([j.id for j in jobs]))
    )
    # A job whose scheduler died mid-run fails after a generous timeout (the client starts anew).
    session.execute(
        update(ExportJob)
        .where(ExportJob.status == "running", ExportJob.started_at <= now - timedelta(hours=6))
        .values(status="failed", error="interrupted", finished_at=now, expires_at=now)
    )
    session.flush()
    return len(jobs)


def _still_allowed(gate: Gate, patient_id: uuid.UUID, windows: dict[str, str] | None) -> bool:
    """What a file holds of the patient is still what the gate allows: a consent in force, each
    category still covered, no window starting later than it did."""
    try:
        grants = gate.grants(patient_id, list(windows or {}))
    except NotFound:
        return False
    return all(
        category in grants and grants[category].window_from <= datetime.fromisoformat(start)
        for category, start in (windows or {}).items()
    )


def void_if_not_allowed(
    session: Session, *, job: ExportJob, export_dir: ExportPlace, now: datetime
) -> bool:
    """A finished clinician's export whose files hold a patient the consent gate no longer allows
    as they are (revoked, expired, narrowed) is voided at once: files deleted, the job failed, so
    every later poll and download is refused. Returns whether it was voided."""
    requester = session.get(User, job.requester_id)
    if job.status != "completed" or requester is None or requester.role == "admin":
        return False
    held = session.execute(
        select(ExportJobPatient.patient_id, ExportJobPatient.windows).where(
            ExportJobPatient.job_id == job.id
        )
    ).all()
    gate = Gate.open(session, clinician_id=requester.id, now=now)
    if all(_still_allowed(gate, patient_id, windows) for patient_id, windows in held):
        return False
    remove_files(export_dir, job.id, session)
    job.status = "failed"
    job.error = "A consent changed after the export finished; start a new one."
    job.output = None
    session.execute(delete(ExportJobPatient).where(ExportJobPatient.job_id == job.id))
    session.flush()
    log.info("bulk_export.voided", job_id=str(job.id))
    return True


def recheck_bulk_export(
    session: Session, *, requester: User, job_id: uuid.UUID, export_dir: ExportPlace, now: datetime
) -> bool:
    """Before a poll or a download: void the requester's finished job if a consent changed.
    Returns whether it was voided."""
    job = session.get(ExportJob, job_id)
    if job is None or job.requester_id != requester.id:
        return False
    return void_if_not_allowed(session, job=job, export_dir=export_dir, now=now)


def void_exports_holding(
    session: Session,
    *,
    patient_id: uuid.UUID,
    recipient_id: uuid.UUID,
    export_dir: ExportPlace,
    now: datetime,
) -> int:
    """The recipient's finished exports that hold the patient, checked again at once (a consent
    of theirs was revoked or replaced). Returns how many were voided."""
    jobs = session.scalars(
        select(ExportJob)
        .join(ExportJobPatient, ExportJobPatient.job_id == ExportJob.id)
        .where(
            ExportJob.requester_id == recipient_id,
            ExportJob.status == "completed",
            ExportJobPatient.patient_id == patient_id,
        )
    ).all()
    return sum(void_if_not_allowed(session, job=j, export_dir=export_dir, now=now) for j in jobs)


def void_changed_exports(session: Session, *, export_dir: ExportPlace, now: datetime) -> int:
    """Every finished clinician's export checked against the gate (consents also end by expiry,
    which no request announces): the scheduler's sweep. Returns how many were voided."""
    jobs = session.scalars(
        select(ExportJob)
        .join(User, User.id == ExportJob.requester_id)
        .where(ExportJob.status == "completed", User.role != "admin")
    ).all()
    return sum(void_if_not_allowed(session, job=j, export_dir=export_dir, now=now) for j in jobs)


def erase_patient_exports(
    session: Session, *, patient_id: uuid.UUID, export_dir: ExportPlace
) -> int:
    """Delete every bulk export file that holds the patient (their erasure reaches those too)."""
    job_ids = list(
        session.scalars(
            select(ExportJobPatient.job_id).where(ExportJobPatient.patient_id == patient_id)
        )
    )
    for job_id in job_ids:
        remove_files(export_dir, job_id, session)
    if job_ids:
        session.execute(
            update(ExportJob)
            .where(ExportJob.id.in_(job_ids))
            .values(status="expired", output=None, expires_at=None)
        )
        session.execute(delete(ExportJobPatient).where(ExportJobPatient.job_id.in_(job_ids)))
    return len(job_ids)


def notice_for(requester: User, notice: str) -> str | None:
    """Disclosed documents carry the 42 CFR Part 2 redisclosure notice; an admin's does not."""
    return None if requester.role == "admin" else notice


def dump_manifest(body: dict[str, Any]) -> str:
    return json.dumps(body)
