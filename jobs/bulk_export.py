"""Run queued FHIR Bulk Data exports (one at a time per scheduler tick) and expire old files."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.export import services
from api.export.models import ExportJob
from api.export.storage import ExportPlace
from api.observability import item_failed

log = structlog.get_logger("waymark.jobs.bulk_export")


def fail_orphaned_exports(
    session: Session, *, now: datetime, export_dir: ExportPlace, ttl: int
) -> int:
    """Fail every job still `running`, and delete its partial files. Only the scheduler leader
    runs exports, one at a time (max_instances=1), so a job running when its next run starts was
    left by a run that is gone: a killed scheduler, a leader that lost its lock. The requester
    sees "failed" at the next poll and may start anew (the one-active rule no longer blocks).
    Returns the jobs failed; the caller commits."""
    orphans = list(session.scalars(select(ExportJob).where(ExportJob.status == "running")))
    for job in orphans:
        services.remove_files(export_dir, job.id, session)
        job.status = "failed"
        job.error = "The export was interrupted; start a new one."
        job.output = None
        job.finished_at = now
        job.expires_at = now + timedelta(seconds=ttl)
        log.warning("bulk_export.orphan_failed", job_id=str(job.id))
    session.flush()
    return len(orphans)


def run_next_export(
    session: Session,
    *,
    now: datetime,
    export_dir: ExportPlace,
    base_url: str,
    ttl: int,
    clock: Callable[[], datetime] | None = None,
    leader: bool = False,
) -> ExportJob | None:
    """Claim the oldest queued job, write its files and complete it. Commits as it goes (claim,
    progress between resource types, completion), so pollers see progress and cancellations.
    `leader`: this is the scheduler's one export runner, so a job still running is an orphan."""
    if leader and fail_orphaned_exports(session, now=now, export_dir=export_dir, ttl=ttl):
        session.commit()
    job = services.claim_next_job(session, now=now)
    if job is None:
        return None
    session.commit()
    log.info("bulk_export.started", job_id=str(job.id))

    def on_progress(percent: int) -> bool:
        job.progress = percent
        session.commit()
        session.refresh(job, ["status"])
        # Cancelled by the requester, or failed as an orphan by a newer leader: stop.
        return job.status != "running"

    left_out: set[uuid.UUID] = set()
    while True:
        try:
            included = services.run_bulk_export(
                session,
                job=job,
                export_dir=export_dir,
                base_url=base_url,
                now=now,
                on_progress=on_progress,
                left_out=frozenset(left_out),
            )
            break
        except services.Cancelled:
            session.rollback()
            services.remove_files(export_dir, job.id, session)
            session.commit()
            log.info("bulk_export.cancel_seen", job_id=str(job.id))
            return job
        except (services.PatientsFailed, services.SectionFailed) as exc:
            # One patient's data must not stop the others' export (issue 11 item 5): log and
            # count each by ids, delete what this run wrote, and run again without them.
            session.rollback()
            failures = dict(exc.failures)
            if isinstance(exc, services.SectionFailed):
                found = services.failing_patient(session, job=job, failure=exc)
                session.rollback()
                if found is None or found in left_out:
                    return _fail(
                        session, job, exc, export_dir=export_dir, now=now, ttl=ttl, clock=clock
                    )
                failures[found] = exc.__cause__ or exc
            for patient_id, error in failures.items():
                item_failed("bulk_export", error, job_id=job.id, patient_id=patient_id)
            left_out.update(failures)
            services.remove_files(export_dir, job.id, session)
            session.commit()
            if len(left_out) > services.MAX_LEFT_OUT:
                return _fail(
                    session, job, exc, export_dir=export_dir, now=now, ttl=ttl, clock=clock
                )
        except Exception as exc:
            return _fail(session, job, exc, export_dir=export_dir, now=now, ttl=ttl, clock=clock)
    finished = (clock or (lambda: now))()
    job.finished_at = finished
    job.expires_at = finished + timedelta(seconds=ttl)
    services.record_included(session, job=job, included=included, now=now)
    session.flush()
    log.info(
        "bulk_export.completed",
        job_id=str(job.id),
        patients=len(included),
        resources=sum(o["count"] for o in job.output or []),
    )
    return job


def _fail(
    session: Session,
    job: ExportJob,
    exc: BaseException,
    *,
    export_dir: ExportPlace,
    now: datetime,
    ttl: int,
    clock: Callable[[], datetime] | None,
) -> ExportJob | None:
    """Fail the job (unless it moved on meanwhile) and delete its files; the poller sees why."""
    session.rollback()
    services.remove_files(export_dir, job.id, session)
    failed = session.get(ExportJob, job.id)
    if failed is not None and failed.status == "running":
        finished = (clock or (lambda: now))()
        failed.status = "failed"
        failed.error = (
            "A consent changed while the export ran; start a new one."
            if isinstance(exc, services.ConsentChanged)
            else "The export could not be completed."
        )
        failed.finished_at = finished
        failed.expires_at = finished + timedelta(seconds=ttl)
        session.commit()
    log.error("bulk_export.failed", job_id=str(job.id), error_type=type(exc).__name__)
    return failed


def expire_exports(session: Session, *, now: datetime, export_dir: ExportPlace) -> int:
    return services.expire_jobs(session, export_dir=export_dir, now=now)
