"""The tables of imports: the import itself, its staged rows and each row's result.

An import is committed before its request is answered; the runner then adds its rows in
chunks, and each chunk's leads, results, counters and ``next_row`` commit together, so a
restarted runner resumes at ``next_row`` and adds nothing twice.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from dialbase.db import Base, UTCDateTime, utcnow

# BigInteger ids that are SQLite's rowid on SQLite (autoincrement works there).
BIG_ID = BigInteger().with_variant(Integer, "sqlite")


class ImportStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


class ImportSource(enum.StrEnum):
    BULK = "bulk"
    FILE = "file"
    CLI = "cli"


class RowResult(enum.StrEnum):
    ADDED = "added"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


class Import(Base):
    __tablename__ = "imports"
    __table_args__ = (
        Index("ix_imports_status_claimed", "status", "claimed_until"),
        Index("ix_imports_callback_next_at", "callback_next_at"),
        Index("ix_imports_account_id", "account_id"),
    )

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(8), default=ImportStatus.QUEUED.value)
    columns: Mapped[list[str]] = mapped_column(JSON)
    check_duplicate: Mapped[bool] = mapped_column(Boolean)
    start: Mapped[bool] = mapped_column(Boolean, default=False)
    file_path: Mapped[str | None] = mapped_column(Text)
    file_format: Mapped[str | None] = mapped_column(String(8))
    total: Mapped[int] = mapped_column(Integer, default=0)
    added: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    next_row: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(36))  # the runner holding the lease
    # The service's address as the request reached it: failedFilePath's absolute URL.
    public_url: Mapped[str | None] = mapped_column(Text)
    callback_url: Mapped[str | None] = mapped_column(Text)
    callback_attempts: Mapped[int] = mapped_column(Integer, default=0)
    callback_next_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    callback_done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    callback_error: Mapped[str | None] = mapped_column(Text)


class ImportRow(Base):
    """A staged row of a bulk request (a file's rows stay in the file)."""

    __tablename__ = "import_rows"

    import_id: Mapped[int] = mapped_column(
        BIG_ID, ForeignKey("imports.id", ondelete="CASCADE"), primary_key=True
    )
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[list[Any]] = mapped_column(JSON)


class ImportResult(Base):
    __tablename__ = "import_results"

    import_id: Mapped[int] = mapped_column(
        BIG_ID, ForeignKey("imports.id", ondelete="CASCADE"), primary_key=True
    )
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    line: Mapped[int | None] = mapped_column(Integer)
    phone_number: Mapped[str | None] = mapped_column(Text)
    result: Mapped[str] = mapped_column(String(16))
    message: Mapped[str | None] = mapped_column(Text)
    data: Mapped[list[Any] | None] = mapped_column(JSON)  # a rejected row's cells (failed.csv)
