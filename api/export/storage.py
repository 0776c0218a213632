"""Where bulk export files live: a small interface with two backends (docs/export.md).

- `DiskStorage` (EXPORT_STORAGE=disk, the default): EXPORT_DIR/<job id>/<name>.ndjson on this
  host's disk, private to the service (files 0600 in 0700 directories). Right for one host.
- `DatabaseStorage` (EXPORT_STORAGE=database): the files as 1 MiB chunks in the export_files
  table, so any API host serves any file and a backup of the database holds them; with several
  hosts, use this (or add an object store behind the same four methods).

Every method takes the caller's session: the database backend writes and deletes inside the
caller's transaction (routes and jobs commit), the disk backend ignores it. `delete` removes every
file of a job and is safe to call again (consent revocation, erasure, expiry and cancellation all
call it).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any, Protocol

from sqlalchemy import ForeignKey, LargeBinary, String, delete, insert, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from api.db import Base

CHUNK = 1 << 20  # bytes per database row, and per read from disk


class ExportFile(Base):
    """One chunk of one bulk export file (EXPORT_STORAGE=database)."""

    __tablename__ = "export_files"

    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("export_jobs.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class FileWriter(Protocol):
    def write(self, data: bytes, /) -> Any: ...
    def close(self) -> None: ...


class ExportStorage(Protocol):
    kind: str

    def writer(self, session: Session, job_id: uuid.UUID, name: str) -> FileWriter:
        """A new file (replacing one of the same name); bytes are written in order."""
        ...

    def read(self, session: Session, job_id: uuid.UUID, name: str) -> Iterator[bytes] | None:
        """The file's bytes in chunks, or None if it does not exist."""
        ...

    def delete(self, session: Session, job_id: uuid.UUID) -> None:
        """Remove every file of the job (nothing to remove is fine)."""
        ...


class DiskStorage:
    kind = "disk"

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def folder(self, job_id: uuid.UUID) -> Path:
        return self.root / str(job_id)

    def writer(self, session: Session, job_id: uuid.UUID, name: str) -> FileWriter:
        folder = self.folder(job_id)
        for directory in (self.root, folder):
            # Health data: readable by the service's own user only, whatever the umask.
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            directory.chmod(0o700)
        path = folder / f"{name}.ndjson"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        return os.fdopen(fd, "wb", buffering=CHUNK)

    def read(self, session: Session, job_id: uuid.UUID, name: str) -> Iterator[bytes] | None:
        path = self.folder(job_id) / f"{name}.ndjson"
        try:
            handle = path.open("rb")
        except (FileNotFoundError, NotADirectoryError):
            return None
        return _chunks(handle)

    def delete(self, session: Session, job_id: uuid.UUID) -> None:
        shutil.rmtree(self.folder(job_id), ignore_errors=True)


def _chunks(handle: IO[bytes]) -> Iterator[bytes]:
    with handle:
        while block := handle.read(CHUNK):
            yield block


class _DatabaseWriter:
    def __init__(self, session: Session, job_id: uuid.UUID, name: str) -> None:
        self.session, self.job_id, self.name = session, job_id, name
        self.buffer = bytearray()
        self.seq = 0

    def write(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= CHUNK:
            self._flush(bytes(self.buffer[:CHUNK]))
            del self.buffer[:CHUNK]

    def _flush(self, block: bytes) -> None:
        self.session.execute(
            insert(ExportFile).values(job_id=self.job_id, name=self.name, seq=self.seq, data=block)
        )
        self.seq += 1

    def close(self) -> None:
        if self.buffer or self.seq == 0:  # an empty file is still a file
            self._flush(bytes(self.buffer))
            self.buffer.clear()


class DatabaseStorage:
    kind = "database"

    def writer(self, session: Session, job_id: uuid.UUID, name: str) -> FileWriter:
        session.execute(
            delete(ExportFile).where(ExportFile.job_id == job_id, ExportFile.name == name)
        )
        return _DatabaseWriter(session, job_id, name)

    def read(self, session: Session, job_id: uuid.UUID, name: str) -> Iterator[bytes] | None:
        seqs = list(
            session.scalars(
                select(ExportFile.seq)
                .where(ExportFile.job_id == job_id, ExportFile.name == name)
                .order_by(ExportFile.seq)
            )
        )
        if not seqs:
            return None
        return self._chunks(session, job_id, name, seqs)

    @staticmethod
    def _chunks(session: Session, job_id: uuid.UUID, name: str, seqs: list[int]) -> Iterator[bytes]:
        # One chunk in memory at a time, however large the file; the read transaction ends with
        # each chunk, so a slow download holds no snapshot (or SQLite lock) while it waits.
        for seq in seqs:
            try:
                block = session.scalar(
                    select(ExportFile.data).where(
                        ExportFile.job_id == job_id, ExportFile.name == name, ExportFile.seq == seq
                    )
                )
            finally:
                session.rollback()  # nothing was written: end the read, not a commit
            if block:
                yield block

    def delete(self, session: Session, job_id: uuid.UUID) -> None:
        session.execute(delete(ExportFile).where(ExportFile.job_id == job_id))


ExportPlace = ExportStorage | Path | str


def storage_of(place: ExportPlace) -> ExportStorage:
    """A storage as given, or the disk storage rooted at a directory."""
    if isinstance(place, (Path, str)):
        return DiskStorage(place)
    return place


def storage_from_config(config: Mapping[str, Any]) -> ExportStorage:
    """EXPORT_STORAGE=disk (under EXPORT_DIR) or database."""
    kind = str(config.get("EXPORT_STORAGE") or "disk")
    if kind == "database":
        return DatabaseStorage()
    if kind == "disk":
        return DiskStorage(str(config["EXPORT_DIR"]))
    raise RuntimeError(f"EXPORT_STORAGE must be disk or database, not {kind!r}")
