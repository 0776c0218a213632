"""Exports: the user's own data (JSON, CSV zip, FHIR Bundle) and FHIR Bulk Data jobs.

Own exports stream from the request (generators over server-side cursors). Bulk exports are
queued here and run by the scheduler process (jobs/bulk_export.py), never in a web worker.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from api.auth.models import User
from api.consent.gate import Gate, Grant
from api.errors import AppError, Forbidden, NotFound, TooManyRequests, ValidationError
from api.export import feature_sections, fhir, terminology, writers
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
    *,
    base_url: str,
    now: datetime,
    disclosed: bool,
    recipient_id: uuid.UUID | None = None,
    consent_text_url: str = "",
) -> fhir.FhirContext:
    """`base_url` is this deployment's FHIR REST base (fullUrls); canonical URLs of our
    CodeSystems and Questionnaires stay on the fixed fhir.CANONICAL_BASE whatever it is."""
    return fhir.FhirContext(
        base_url=fhir.CANONICAL_BASE,
        now=now,
        disclosed=disclosed,
        recipient_id=str(recipient_id) if recipient_id is not None else None,
        item_texts=feature_sections.instrument_catalogue(),
        rest_base=base_url,
        consent_text_url=consent_text_url
        or base_url.rsplit("/fhir", 1)[0] + "/v1/consent-texts/{version}",
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
    return seen + [t for t in CONSENT_TYPES + SUPPORTING_TYPES if t not in seen]


# A disclosed bulk export carries the consents it went out under, and whom they name.
CONSENT_TYPES = ("Consent", "Practitioner", "Organization")
# The Questionnaires and CodeSystems the exported resources name by canonical URL, so that a
# receiver can read them without reaching this server (the Bulk Data IG lets a server add
# resources outside the patient compartment that help interpret the data; `_type` still filters).
SUPPORTING_TYPES = ("Questionnaire", "CodeSystem")


def parse_types(raw: str | None) -> list[str]:
    """`_type` (comma-separated); raises ValidationError naming the unsupported types."""
    supported = bulk_types()
    if raw is None:  # absent; an empty `_type=` asks for nothing, and is refused below
        return supported
    asked = [t.strip() for t in raw.split(",") if t.strip()]
    unknown = sorted({t for t in asked if t not in supported})
    if unknown or not asked:
        raise ValidationError(
            {"_type": [f"Unsupported type(s): {', '.join(unknown) or '(none)'}."]},
            detail=f"_type must be a subset of: {', '.join(supported)}.",
        )
    return [t for t in supported if t in asked]


# Bulk Data kick-off parameters we honour; the IG's others we do not support (an error, or
# ignored and reported under `Prefer: handling=lenient`), like any unknown parameter.
SUPPORTED_PARAMS = ("_type", "_since", "_outputFormat")
LEVELS = ("patient", "group", "system")


class NotSupported(AppError):
    """A kick-off parameter the server does not support (Bulk Data: an error unless lenient)."""

    status = 400
    slug = "not-supported"
    title = "Parameter not supported"

    def __init__(self, names: list[str]) -> None:
        super().__init__(
            f"Not supported: {', '.join(names)}. Send 'Prefer: handling=lenient' to have "
            "unsupported parameters ignored (and listed in the manifest's error array).",
            errors={name: ["Not supported by this server."] for name in names},
            issue_code="not-supported",
        )


@dataclass(frozen=True)
class Kickoff:
    """A parsed kick-off request: the supported parameters and the ignored ones."""

    types: str | None
    since: datetime | None
    output_format: str | None
    ignored: list[str]


def preferences(prefer: str | None) -> set[str]:
    """`Prefer: respond-async, handling=lenient` (one header or several) as lower-case tokens."""
    return {p.strip().lower() for p in (prefer or "").split(",") if p.strip()}


def parse_kickoff(
    params: list[tuple[str, str]], *, prefer: str | None, now: datetime | None = None
) -> Kickoff:
    """Raises BadRequest without `Prefer: respond-async`, NotSupported for an unsupported or
    unknown parameter unless `Prefer: handling=lenient`, ValidationError for a bad value or a
    parameter given twice."""
    prefs = preferences(prefer)
    lenient = "handling=lenient" in prefs
    values: dict[str, str] = {}
    unsupported: list[str] = []
    for name, value in params:
        if name not in SUPPORTED_PARAMS:
            if name not in unsupported:
                unsupported.append(name)
            continue
        if name in values:
            raise ValidationError({name: ["Given more than once."]})
        values[name] = value
    if unsupported and not lenient:
        raise NotSupported(unsupported)
    since = None
    if values.get("_since"):
        try:
            since = datetime.fromisoformat(values["_since"].replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValidationError({"_since": ["Not an instant (RFC 3339)."]}) from exc
        if since.tzinfo is None:
            raise ValidationError({"_since": ["Give a time zone offset (or Z)."]})
        if since.year < 1970:
            raise ValidationError({"_since": ["Must be 1970 or later."]})
        if now is not None and since > now:
            raise ValidationError({"_since": ["_since is in the future."]})
    # Bad values first (422 naming the field), then the header the flow needs.
    if "respond-async" not in prefs:
        raise BadRequest("Bulk export needs the header 'Prefer: respond-async'.")
    return Kickoff(
        types=values.get("_type"),
        since=since,
        output_format=values.get("_outputFormat"),
        ignored=unsupported,
    )


def start_bulk_export(
    session: Session,
    *,
    requester: User,
    kickoff: Kickoff,
    request_url: str,
    now: datetime,
    retry_after: int,
    counter: Counter,
    limits: RateLimit,
    level: str = "patient",
    group_id: uuid.UUID | None = None,
    client_id: uuid.UUID | None = None,
    allowed_types: list[str] | None = None,
) -> ExportJob:
    """Queue a bulk export for the scheduler. Raises ValidationError for bad parameters,
    Forbidden for types outside a system client's scopes, TooManyRequests over the export rate
    limit or while the requester has one queued or running."""
    assert level in LEVELS, level
    output_format, since = kickoff.output_format, kickoff.since
    if output_format and output_format not in NDJSON_FORMATS:
        raise ValidationError({"_outputFormat": ["Only application/fhir+ndjson is offered."]})
    if since is not None and since > now:
        raise ValidationError({"_since": ["_since is in the future."]})
    types = parse_types(kickoff.types)
    if allowed_types is not None:
        if kickoff.types:
            beyond = [t for t in types if t not in allowed_types]
            if beyond:
                raise Forbidden(
                    f"The client's scopes do not cover: {', '.join(beyond)}.",
                    errors={"_type": [f"Not in scope: {', '.join(beyond)}."]},
                )
        types = [t for t in types if t in allowed_types]
        if not types:
            raise Forbidden("The client's scopes cover none of the types offered.")
    check_rate(session, user_id=requester.id, counter=counter, limits=limits, now=now)
    job = ExportJob(
        requester_id=requester.id,
        status="queued",
        types=types,
        since=since,
        request_url=request_url[:2000],
        created_at=now,
        level=level,
        group_id=group_id,
        client_id=client_id,
        ignored=kickoff.ignored or None,
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


def _own_job(
    session: Session, *, requester: User, job_id: uuid.UUID, client_id: uuid.UUID | None = None
) -> ExportJob:
    """A job is its starter's: the person, or the system client (not its clinician's others)."""
    job = session.get(ExportJob, job_id)
    if (
        job is None
        or job.requester_id != requester.id
        or job.client_id != client_id
        or job.status in ("cancelled", "expired")
    ):
        raise NotFound("No such export.")
    return job


def bulk_status(
    session: Session,
    *,
    requester: User,
    job_id: uuid.UUID,
    now: datetime,
    client_id: uuid.UUID | None = None,
) -> ExportJob:
    """The requester's job; NotFound for others', cancelled or expired ones."""
    job = _own_job(session, requester=requester, job_id=job_id, client_id=client_id)
    if job.expires_at is not None and job.expires_at <= now:
        raise NotFound("This export has expired.")
    if job.status == "failed":
        raise ExportFailed("The export failed. Start a new one.")
    return job


def manifest(
    job: ExportJob,
    *,
    file_url: Any,
    notice: str | None,
    consent_scopes: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The Bulk Data completion manifest; `file_url(job_id, type)` builds the download URLs. A
    disclosed export's manifest carries the notice and the scope of each consent it went out
    under (42 CFR 2.32(b)); ignored parameters are reported in `error` (an OperationOutcome)."""
    assert job.transaction_time is not None
    body: dict[str, Any] = {
        "transactionTime": job.transaction_time.isoformat(),
        "request": job.request_url,
        "requiresAccessToken": True,
        "output": [
            {"type": o["type"], "url": file_url(job.id, o["type"]), "count": o["count"]}
            for o in job.output or []
            if not o.get("deleted") and not o.get("error")
        ],
        "error": [
            {"type": o["type"], "url": file_url(job.id, ERROR_FILE), "count": o["count"]}
            for o in job.output or []
            if o.get("error")
        ],
    }
    if job.since is not None:
        body["deleted"] = [
            {"type": o["type"], "url": file_url(job.id, DELETED_FILE), "count": o["count"]}
            for o in job.output or []
            if o.get("deleted")
        ]
    extension: dict[str, Any] = {}
    if notice:
        extension["redisclosureNotice"] = notice
    if consent_scopes:
        extension["consentScopes"] = consent_scopes
    if extension:
        body["extension"] = extension
    return body


def job_consents(session: Session, job: ExportJob) -> list[Any]:
    """The consents a completed disclosed export went out under (for their scope)."""
    from api.consent.models import Consent

    ids = [uuid.UUID(i) for i in job.consent_ids or []]
    if not ids:
        return []
    return list(session.scalars(select(Consent).where(Consent.id.in_(ids)).order_by(Consent.id)))


def cancel_bulk_export(
    session: Session,
    *,
    requester: User,
    job_id: uuid.UUID,
    export_dir: ExportPlace,
    now: datetime,
    client_id: uuid.UUID | None = None,
) -> None:
    """Cancel a queued or running job, or delete a finished one's files. The runner notices."""
    job = _own_job(session, requester=requester, job_id=job_id, client_id=client_id)
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
    client_id: uuid.UUID | None = None,
) -> Iterator[bytes]:
    """The NDJSON file of one type of a completed job of the requester's, in chunks."""
    job = bulk_status(session, requester=requester, job_id=job_id, now=now, client_id=client_id)
    files = {
        DELETED_FILE if o.get("deleted") else ERROR_FILE if o.get("error") else o["type"]
        for o in job.output or []
    }
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


class PatientsFailed(Exception):
    """Some patients' data could not be exported: a record of theirs made its time or its FHIR
    mapping raise. Their rows were skipped for the rest of the run, but lines written for them
    before the failure are in the files: the runner deletes the files and runs the export again
    with those patients left out (`left_out`), so one patient never stops the others' export."""

    def __init__(self, failures: dict[uuid.UUID, BaseException]) -> None:
        super().__init__(f"{len(failures)} patient(s) failed")
        self.failures = failures


class SectionFailed(Exception):
    """A section's read raised (a stored value its row or record cannot be built from), for a
    patient not known yet: `failing_patient` finds whose it is by reading each of `candidates`
    (None: every patient) alone. `failures` holds what the run had already found."""

    def __init__(
        self,
        section: Section,
        candidates: list[uuid.UUID] | None,
        finished: set[int],
        failures: dict[uuid.UUID, BaseException],
    ) -> None:
        super().__init__(f"section {section.name} failed")
        self.section, self.candidates, self.finished = section, candidates, finished
        self.failures = failures


# A database that is down is no patient's fault: the export fails as it always did.
_NOT_A_PATIENT = (OperationalError, InterfaceError, PoolTimeout)

# A patient left out costs the export one more run; past this many, the job fails instead.
MAX_LEFT_OUT = 20


# The file of the Bulk Data `deleted` array (its lines are Bundles, like no output file's).
DELETED_FILE = "deleted"
# The file of the manifest's `error` array (OperationOutcome lines).
ERROR_FILE = "errors"


class _Files:
    """One NDJSON file per resource type (and one of deletions), opened on first write, counted."""

    def __init__(self, storage: ExportStorage, session: Session, job_id: uuid.UUID) -> None:
        self.storage, self.session, self.job_id = storage, session, job_id
        self.handles: dict[str, FileWriter] = {}
        self.counts: dict[str, int] = {}
        # Our Questionnaire/CodeSystem canonicals the written resources name (type, id).
        self.canonicals = terminology.CanonicalScanner()

    def write(self, resource: dict[str, Any], name: str | None = None) -> None:
        """Append to the file `name` (default: the resource's type)."""
        name = name or resource["resourceType"]
        handle = self.handles.get(name)
        if handle is None:
            handle = self.storage.writer(self.session, self.job_id, name)
            self.handles[name] = handle
            self.counts[name] = 0
        line = writers.ndjson_line(resource)
        handle.write(line)
        self.counts[name] += 1
        self.canonicals.scan(line)

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
    # Per consent, the context whose meta points at that Consent (when Consent goes out too).
    contexts: dict[uuid.UUID, fhir.FhirContext] = field(default_factory=dict)
    # An admin's export with patients left out: every other patient (None: everyone).
    everyone: list[uuid.UUID] | None = None
    # Patients whose record raised in this run (by id), and their ids' .int for the row loop.
    failures: dict[uuid.UUID, BaseException] = field(default_factory=dict)
    failed: set[int] = field(default_factory=set)

    def ctx_for(self, grant: dict[str, Grant] | None, category: str | None) -> fhir.FhirContext:
        if grant is None or "Consent" not in self.wanted:
            return self.ctx
        consent_id = (grant[category] if category else next(iter(grant.values()))).consent_id
        ctx = self.contexts.get(consent_id)
        if ctx is None:
            ctx = replace(self.ctx, consent_id=str(consent_id))
            self.contexts[consent_id] = ctx
        return ctx


def _section_ids(run: _Run, section: Section) -> list[uuid.UUID] | None:
    """The patients whose rows the section reads (None: every patient)."""
    if run.grants is None:
        return run.everyone
    return [
        pid
        for pid, grant in run.grants.items()
        if section.category is None or section.category in grant
    ]


def _export_section(run: _Run, section: Section) -> None:
    ids = _section_ids(run, section)
    if ids == []:
        return
    to_fhir = section.to_fhir
    assert to_fhir is not None
    ctx, wanted, write = run.ctx, run.wanted, run.files.write
    # Rows come ordered by patient: look the patient up once per patient, not once per row. A
    # UUID's == and hash are Python code; its .int and the id as text compare and hash in C.
    current = -1
    subject = ""
    grant: dict[str, Grant] | None = None
    included = skip = False
    finished: set[int] = set()  # patients whose rows are all read (for SectionFailed)
    failed = run.failed
    try:
        for patient_id, record in section.rows(run.session, ids, run.window):
            if patient_id.int != current:
                finished.add(current)
                current, subject, included = patient_id.int, str(patient_id), False
                skip = current in failed
                grant = run.grants[patient_id] if run.grants is not None else None
                ctx = run.ctx_for(grant, section.category)
            if skip:
                continue
            # One patient's record that cannot be judged or mapped is that patient's failure,
            # not the export's (issue 11 item 5); writing stays outside: a full disk is not.
            try:
                if grant is not None and not _in_period(section, record, grant):
                    continue
                resources = to_fhir(record, ctx, subject)
            except Exception as exc:
                run.failures[patient_id] = exc
                failed.add(current)
                skip = True
                continue
            wrote = False
            for resource in resources:
                if resource["resourceType"] in wanted:
                    write(resource)
                    wrote = True
            if wrote and not included:
                included = True
                cats = run.included.setdefault(patient_id, set())
                if section.category:
                    cats.add(section.category)
    except _NOT_A_PATIENT:
        raise
    except Exception as exc:
        raise SectionFailed(section, ids, finished, run.failures) from exc


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
    ids = run.everyone if run.grants is None else list(run.grants)
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
    consent_text_url: str = "",
    left_out: frozenset[uuid.UUID] = frozenset(),
) -> dict[uuid.UUID, set[str]]:
    """Write the job's NDJSON files, record a clinician's disclosures, and complete the job.
    Returns every patient the files hold, with the consent categories whose data went out (none
    for a patient named only in the deleted or the error file); the caller keeps them in
    export_job_patients so that an erasure reaches the files. The patients `left_out` (whose
    data failed an earlier run) are named in the error file (an OperationOutcome), nothing more.

    Raises Cancelled when the job was cancelled meanwhile (checked between sections), and
    PatientsFailed or SectionFailed when a patient's data could not be exported.
    """
    requester = session.get(User, job.requester_id)
    assert requester is not None
    grants, everyone, left_out = _scope(session, requester=requester, now=now, left_out=left_out)
    job.transaction_time = job.transaction_time or now
    window = Window(since=job.since, until=job.transaction_time)
    disclosed = requester.role != "admin"
    ctx = fhir_context(
        base_url=base_url,
        now=now,
        disclosed=disclosed,
        recipient_id=requester.id if disclosed else None,
        consent_text_url=consent_text_url,
    )
    wanted = set(job.types)
    sections = [
        s
        for s in all_sections()
        if not s.own_only and s.to_fhir is not None and wanted & set(s.fhir_types)
    ]
    files = _Files(storage_of(export_dir), session, job.id)
    run = _Run(session, grants, window, ctx, wanted, files, {}, everyone=everyone)
    try:
        for index, section in enumerate(sections):
            if on_progress is not None and on_progress(int(100 * index / max(len(sections), 1))):
                raise Cancelled
            _export_section(run, section)
        if job.since is not None:
            _export_deletions(run, sections, job.since)
        if grants is not None:
            _export_consents(run, grants)
        _export_supporting(run)
        _write_outcomes(run, job, left_out)
    finally:
        run.files.close()
    if run.failures:
        raise PatientsFailed(run.failures)
    if on_progress is not None and on_progress(99):
        raise Cancelled
    if grants is not None:
        _check_grants_still_hold(session, requester=requester, grants=grants, run=run, now=now)
        used = record_disclosures(
            session, requester=requester, job=job, grants=grants, run=run, now=now
        )
        job.consent_ids = sorted(str(c) for c in used)
    counts = run.files.counts
    job.output = [{"type": t, "count": counts[t]} for t in job.types if t in counts]
    if DELETED_FILE in counts:
        job.output.append({"type": "Bundle", "count": counts[DELETED_FILE], "deleted": True})
    if ERROR_FILE in counts:
        job.output.append({"type": "OperationOutcome", "count": counts[ERROR_FILE], "error": True})
    job.status = "completed"
    job.progress = 100
    only_deleted = {pid: set[str]() for pid in run.mentioned if pid not in run.included}
    return {**only_deleted, **run.included}


def _export_supporting(run: _Run) -> None:
    """The Questionnaires and CodeSystems the written resources name, when their type is wanted."""
    for resource in terminology.supporting(run.files.canonicals.named):
        if resource["resourceType"] in run.wanted:
            run.files.write(resource)


def _ignored_outcome(names: list[str]) -> dict[str, Any]:
    """What a lenient kick-off left out, for the manifest's error array."""
    return {
        "resourceType": "OperationOutcome",
        "id": str(uuid.uuid4()),
        "issue": [
            {
                "severity": "warning",
                "code": "not-supported",
                "diagnostics": f"Parameter {name} is not supported and was ignored "
                "(Prefer: handling=lenient).",
                "expression": [name],
            }
            for name in names
        ],
    }


def _scope(
    session: Session, *, requester: User, now: datetime, left_out: frozenset[uuid.UUID]
) -> tuple[Grants | None, list[uuid.UUID] | None, frozenset[uuid.UUID]]:
    """(grants, everyone, left_out): a clinician's grants without the patients left out; for an
    admin, every other patient when some are left out (else None: everyone); and the patients
    left out that may be named (not even the id of one whose consent ended since)."""
    if requester.role != "admin":
        held = grants_of(Gate.open(session, clinician_id=requester.id, now=now))
        grants = {pid: g for pid, g in held.items() if pid not in left_out}
        return grants, None, frozenset(pid for pid in left_out if pid in held)
    if not left_out:
        return None, None, left_out
    patients = session.scalars(select(User.id).where(User.role == "patient").order_by(User.id))
    return None, [pid for pid in patients if pid not in left_out], left_out


def _write_outcomes(run: _Run, job: ExportJob, left_out: frozenset[uuid.UUID]) -> None:
    """The manifest's error file: parameters ignored, patients left out."""
    if job.ignored:
        run.files.write(_ignored_outcome(job.ignored), ERROR_FILE)
    for patient_id in sorted(left_out):
        run.files.write(_left_out_outcome(patient_id), ERROR_FILE)
        run.mentioned.add(patient_id)  # so that an erasure reaches the error file too


def _left_out_outcome(patient_id: uuid.UUID) -> dict[str, Any]:
    """A patient whose data could not be exported: named by id, nothing of the data or the
    error (the service logged it by ids)."""
    return {
        "resourceType": "OperationOutcome",
        "id": str(uuid.uuid4()),
        "issue": [
            {
                "severity": "error",
                "code": "exception",
                "diagnostics": f"The data of Patient/{patient_id} could not be exported and "
                "is left out of this export; the service has logged the failure.",
            }
        ],
    }


def failing_patient(
    session: Session, *, job: ExportJob, failure: SectionFailed
) -> uuid.UUID | None:
    """Whose data made a section's read raise: each patient the read had not finished is read
    alone, in a savepoint (a database error must not end the caller's transaction). None when
    none fails alone: then it was not one patient's data."""
    window = Window(since=job.since, until=job.transaction_time)
    candidates = failure.candidates
    if candidates is None:
        candidates = list(session.scalars(select(User.id).order_by(User.id)))
    for patient_id in candidates:
        if patient_id.int in failure.finished or patient_id in failure.failures:
            continue
        try:
            with session.begin_nested():
                for _ in failure.section.rows(session, [patient_id], window):
                    pass
        except _NOT_A_PATIENT:
            raise
        except Exception:
            return patient_id
    return None


def _export_consents(run: _Run, grants: Grants) -> None:
    """A disclosed export carries the consents it goes out under (42 CFR 2.32(b)) as Consent
    resources, with the Practitioner and Organizations they name, when those types are wanted."""
    from api.consent.models import Consent, ConsentCategory

    if not run.wanted & {"Consent", "Practitioner", "Organization"}:
        return
    # Those the data went out under, and every one a resource's meta points at.
    ids = sorted(
        {grants[pid][c].consent_id for pid, categories in run.included.items() for c in categories}
        | set(run.contexts)
    )
    if not ids:
        return
    categories: dict[uuid.UUID, list[str]] = {}
    for consent_id, category in run.session.execute(
        select(ConsentCategory.consent_id, ConsentCategory.category)
        .where(ConsentCategory.consent_id.in_(ids))
        .order_by(ConsentCategory.category)
    ):
        categories.setdefault(consent_id, []).append(category)
    seen: set[str] = set()
    rows = run.session.execute(select(Consent.__table__).where(Consent.id.in_(ids)))
    for row in rows:
        record = feature_sections.consent_record(row, categories.get(row.id, []), run.ctx.now)
        record["recipient"] = record["_recipient"]
        ctx = run.ctx
        if "Consent" in run.wanted:
            run.files.write(fhir.consent(record, ctx, patient_id=row.patient_id))
        for party in fhir.consent_parties(record, ctx):
            key = f"{party['resourceType']}/{party['id']}"
            if party["resourceType"] in run.wanted and key not in seen:
                seen.add(key)
                run.files.write(party)


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
) -> set[uuid.UUID]:
    """A ledger row (kind export) per patient and consent whose data went into the files: the
    categories sent under that consent and the period of data (its window, or from _since).
    Names the system client that received it, if one did. Returns the consents used."""
    from api.disclosures.services import SystemClientRef, record_per_consent
    from api.smart.models import SystemClient

    def start(category_grant: Any) -> datetime:
        begin: datetime = category_grant.window_from
        return begin if job.since is None else min(max(begin, job.since), now)

    client_ref = None
    if job.client_id is not None:
        client = session.get(SystemClient, job.client_id)
        if client is not None:
            client_ref = SystemClientRef(client.id, client.name)
    used: set[uuid.UUID] = set()
    for patient_id, categories in run.included.items():
        held = grants[patient_id]
        reads = {c: (held[c].consent_id, start(held[c]), now) for c in sorted(categories or held)}
        record_per_consent(
            session,
            patient_id=patient_id,
            recipient_id=requester.id,
            kind="export",
            reads=reads,
            now=now,
            client=client_ref,
        )
        used.update(consent_id for consent_id, _, _ in reads.values())
    return used


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


def roster_group(session: Session, *, clinician: User, now: datetime) -> dict[str, Any]:
    """A clinician's consented roster as a FHIR Group (id = the clinician's id): the patients with
    a consent in force to them now, as the consent gate decides (what Group/$export covers)."""
    gate = Gate.open(session, clinician_id=clinician.id, now=now)
    patients = sorted(str(pid) for pid in grants_of(gate))
    return {
        "resourceType": "Group",
        "id": str(clinician.id),
        "type": "person",
        "actual": True,
        "name": f"Patients consenting to {clinician.display_name}",
        "quantity": len(patients),
        "managingEntity": {"display": clinician.display_name},
        **(
            {"member": [{"entity": {"reference": f"Patient/{p}"}} for p in patients]}
            if patients
            else {}
        ),
    }
