"""Run queued FHIR Bulk Data exports (one at a time per scheduler tick) and expire old files."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import structlog
from sqlalchemy.orm import Session

from api.export import services
from api.export.models import ExportJob

log = structlog.get_logger("waymark.jobs.bulk_export")


def run_next_export(
    session: Session,
    *,
    now: datetime,
    export_dir: str,
    base_url: str,
    ttl: int,
    clock: Callable[[], datetime] | None = None,
) -> ExportJob | None:
    """Claim the oldest queued job, write its files and complete it. Commits as it goes (claim,
    progress between resource types, completion), so pollers see progress and cancellations."""
    job = services.claim_next_job(session, now=now)
    if job is None:
        return None
    session.commit()
    log.info("bulk_export.started", job_id=str(job.id))

    def on_progress(percent: int) -> bool:
        job.progress = percent
        session.commit()
        session.refresh(job, ["status"])
        return job.status == "cancelled"

    try:
        included = services.run_bulk_export(
            session,
            job=job,
            export_dir=Path(export_dir),
            base_url=base_url,
            now=now,
            on_progress=on_progress,
        )
    except services.Cancelled:
        session.rollback()
        services.remove_files(Path(export_dir), job.id)
        log.info("bulk_export.cancel_seen", job_id=str(job.id))
        return job
    except Exception as exc:
        session.rollback()
        services.remove_files(Path(export_dir), job.id)
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


def expire_exports(session: Session, *, now: datetime, export_dir: str) -> int:
    return services.expire_jobs(session, export_dir=Path(export_dir), now=now)
