"""FHIR Bulk Data export jobs: queued by the API, run by the scheduler process."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base

JOB_STATUSES = ("queued", "running", "completed", "failed", "cancelled", "expired")
ACTIVE_STATUSES = ("queued", "running")


class ExportJob(Base):
    __tablename__ = "export_jobs"
    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'running', 'completed', 'failed', 'cancelled', 'expired')",
            name="status",
        ),
        CheckConstraint("progress BETWEEN 0 AND 100", name="progress"),
        # One bulk export at a time per requester: a second kick-off loses the race here.
        Index(
            "uq_export_jobs_one_active",
            "requester_id",
            unique=True,
            sqlite_where=text("status IN ('queued', 'running')"),
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
        Index("ix_export_jobs_status_created", "status", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    requester_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(20), default="queued")
    types: Mapped[list[str]] = mapped_column(JSON)  # FHIR resource types asked for
    since: Mapped[datetime | None]  # _since
    request_url: Mapped[str] = mapped_column(String(2000))
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    transaction_time: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    progress: Mapped[int] = mapped_column(default=0)  # percent
    # [{"type": "Observation", "count": 12}]: files live under EXPORT_DIR/<id>/<type>.ndjson
    output: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(String(200))  # generic text, never values


class ExportJobPatient(Base):
    """Which patients a bulk export holds: erasing a patient deletes the files that hold them."""

    __tablename__ = "export_job_patients"

    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("export_jobs.id", ondelete="CASCADE"), primary_key=True
    )
    patient_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    # What of the patient the files hold, for a clinician's job: {category: the earliest data
    # time sent (ISO 8601)}. Every later poll or download checks it against the consent gate;
    # a consent revoked, expired or narrowed since (a category gone, a window starting later)
    # voids the job and deletes its files. None: an admin's job, or written before this was kept.
    windows: Mapped[dict[str, str] | None] = mapped_column(JSON)
