"""Imports: queue them (in the caller's transaction), show their results.

``queue_rows`` and ``queue_file`` store an import for the process's ``ImportRunner``
(``imports.runner``) to add; ``run_import`` (``imports.engine``) adds one in the calling
process instead (the CLI). ``import_view`` and ``failed_csv`` are what
``GET /v1/imports/{id}`` and its ``failed.csv`` answer.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from dialbase.imports.engine import run_import
from dialbase.imports.models import (
    Import,
    ImportResult,
    ImportRow,
    ImportSource,
    ImportStatus,
    RowResult,
)
from dialbase.imports.runner import ImportRunner

__all__ = [
    "ImportRequest",
    "ImportRunner",
    "failed_csv",
    "import_view",
    "queue_file",
    "queue_rows",
    "run_import",
]

FILE_FORMATS = ("csv", "xlsx")
MAX_VIEW_ROWS = 1000


@dataclass(frozen=True, slots=True)
class ImportRequest:
    account_id: int
    campaign_id: int
    source: str  # "bulk" | "file" | "cli"
    columns: list[str]  # the map / header row, as given
    check_duplicate: bool  # the duplicate rule already decided (isDelete / checkDuplicate)
    start: bool  # action start: start the campaign after the last row
    callback_url: str | None = None
    # The service's address as the client reached it ("https://host"): failedFilePath.
    public_url: str | None = None


def _record(request: ImportRequest, total: int) -> Import:
    if request.source not in {s.value for s in ImportSource}:
        raise ValueError(f"unknown import source {request.source!r}")
    return Import(
        account_id=request.account_id,
        campaign_id=request.campaign_id,
        source=request.source,
        status=ImportStatus.QUEUED.value,
        columns=list(request.columns),
        check_duplicate=request.check_duplicate,
        start=request.start,
        total=total,
        added=0,
        duplicates=0,
        rejected=0,
        next_row=0,
        callback_url=request.callback_url,
        callback_attempts=0,
        public_url=request.public_url,
    )


async def queue_rows(
    session: AsyncSession, request: ImportRequest, rows: Sequence[Sequence[Any]]
) -> int:
    """Store the import and its rows in the caller's transaction; the transaction id."""
    record = _record(request, len(rows))
    session.add(record)
    await session.flush()
    if rows:
        await session.execute(
            insert(ImportRow),
            [{"import_id": record.id, "idx": i, "data": list(row)} for i, row in enumerate(rows)],
        )
    return record.id


async def queue_file(
    session: AsyncSession, request: ImportRequest, path: Path, file_format: str
) -> int:
    """Store an import of a staged file (it stays at ``path`` until the import is done:
    the runner deletes it then); its total is counted before its first chunk."""
    if file_format not in FILE_FORMATS:
        raise ValueError(f"unknown file format {file_format!r}")
    record = _record(request, 0)
    record.file_path = str(path)
    record.file_format = file_format
    session.add(record)
    await session.flush()
    return record.id


def instant(value: datetime | None) -> str | None:
    """An instant as ISO 8601 in UTC, to the second: ``2026-11-28T11:30:00Z``."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _own(session: AsyncSession, account_id: int, import_id: int) -> Import | None:
    record = await session.get(Import, import_id)
    if record is None or record.account_id != account_id:
        return None
    return record


async def import_view(
    session: AsyncSession, account_id: int, import_id: int, *, offset: int = 0, limit: int = 1000
) -> dict[str, Any] | None:
    """The ``GET /v1/imports/{id}`` body (None: no such import of this account). ``rows``
    holds the results of rows ``offset`` to ``offset + limit`` (at most 1,000) in row order;
    a row not added yet has no result."""
    record = await _own(session, account_id, import_id)
    if record is None:
        return None
    limit = max(0, min(limit, MAX_VIEW_ROWS))
    results = await session.scalars(
        select(ImportResult)
        .where(ImportResult.import_id == import_id, ImportResult.idx >= max(offset, 0))
        .order_by(ImportResult.idx)
        .limit(limit)
    )
    with_lines = record.file_path is not None or record.source == ImportSource.FILE
    return {
        "transactionId": str(record.id),
        "status": record.status,
        "total": record.total,
        "added": record.added,
        "duplicates": record.duplicates,
        "rejected": record.rejected,
        "startedAt": instant(record.started_at),
        "finishedAt": instant(record.finished_at),
        "rows": [_row(result, with_lines) for result in results],
    }


def _row(result: ImportResult, with_line: bool) -> dict[str, Any]:
    row: dict[str, Any] = {"index": result.idx}
    if with_line:
        row["line"] = result.line
    row.update(phoneNumber=result.phone_number, result=result.result, message=result.message)
    return row


async def failed_csv(session: AsyncSession, account_id: int, import_id: int) -> str | None:
    """The rejected rows as CSV: the import's columns as given, their cells as sent, then
    ``reason`` (None: no such import of this account)."""
    record = await _own(session, account_id, import_id)
    if record is None:
        return None
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    columns = [str(c) for c in record.columns]
    writer.writerow([*columns, "reason"])
    results = await session.execute(
        select(ImportResult.data, ImportResult.message)
        .where(ImportResult.import_id == import_id, ImportResult.result == RowResult.REJECTED.value)
        .order_by(ImportResult.idx)
    )
    for data, message in results:
        cells = [_cell(c) for c in (data or [])][: len(columns)]
        cells += [""] * (len(columns) - len(cells))
        writer.writerow([*cells, message or ""])
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    import orjson

    return orjson.dumps(value).decode()
