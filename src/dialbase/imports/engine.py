"""Adding an import's rows: chunk by chunk, each chunk one transaction.

The only thing on this path that commits. A chunk goes in three steps:

1. **Plan** (no transaction held): read the import's resume cursor ``next_row``, the
   configuration revision, the account and the campaign, and up to ``CHUNK_ROWS`` rows
   from the cursor on (from the file, or the staged rows of a bulk request).
2. **Judge** (on a thread, no I/O): check each row (``imports.rows``). This is most of a
   chunk's time (parsing phone numbers), so it runs while no lock is held and while the
   worker's event loop keeps serving other requests.
3. **Write** (one transaction): lock the import's row (``FOR UPDATE`` on PostgreSQL;
   SQLite's write lock serializes writers anyway) and check that the cursor and the
   configuration revision are still the planned ones, then look the numbers up on the
   do-not-call list, insert the campaign's number guards (``campaign_numbers``, in key
   order, as the lead writer does: the duplicate rule is exact against concurrent
   AddCampaignData requests), insert the added leads in row order with their zone keys,
   write every row's result, and advance ``next_row`` and the counters. The last chunk
   also marks the import done, starts the campaign when asked, and schedules the
   callback. All of it commits together or not at all.

What can happen to a chunk:

- the revision moved between plan and write (an account, campaign, agent or skill
  changed): nothing is written and the chunk is planned and judged again, so rows are
  always checked against the settings of the moment they are added;
- another worker moved the cursor (a lease that lapsed while its holder was alive):
  nothing is written; the caller reads the new cursor and goes on from there;
- a failure before the commit (a dropped connection, a deadlock, a lost SQLite lock)
  rolls the chunk back; it is redone from the same cursor;
- a commit whose outcome is unknown needs no lookup: the redo reads ``next_row`` in its
  own transaction, so a chunk that did commit is never redone.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from dialbase.accounts.models import Account, ConfigRevision
from dialbase.campaigns.models import Campaign
from dialbase.compat import fields
from dialbase.compat.directory import AccountInfo, CampaignInfo, account_info, campaign_info
from dialbase.config import Settings
from dialbase.db import backend_name, session_scope
from dialbase.errors import database_unavailable, outages
from dialbase.imports import rows
from dialbase.imports.chunks import (
    Chunk,
    ChunkState,
    Row,
    SessionChunkStore,
    SQLiteChunkStore,
    Stale,
    write_chunk,
)
from dialbase.imports.models import Import, ImportRow, ImportStatus
from dialbase.sqlite_writer import SQLiteWriter
from dialbase.webhooks import outbox

log = logging.getLogger("dialbase.imports")

CHUNK_ROWS = 500
MAX_REPLANS = 5  # a chunk planned again this many times at most, then the next step
LEASE_SECONDS = 30.0
REDO_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)  # run_import's waits before redoing a failed chunk

FILE_GONE = "The import's file can no longer be read."

Progress = Callable[[int, int], None]


@dataclass(slots=True)
class FileCursor:
    """A file's data rows, read forward; reopened when asked for an earlier row."""

    path: Path
    file_format: str
    position: int = 0
    error: str | None = None  # why the rest of the file cannot be read
    _rows: Iterator[tuple[int, list[Any]]] | None = field(default=None, repr=False)

    def read(self, start: int, count: int) -> list[Row]:
        """Up to ``count`` rows from data row ``start``; fewer at the end of the file, or
        where the file cannot be read further (``error`` says why)."""
        from dialbase.imports.files import FileError, open_rows

        taken: list[Row] = []
        try:
            if self._rows is None or start < self.position:
                self.error = None
                _, self._rows = open_rows(self.path, self.file_format)
                self.position = 0
            for line, cells in self._rows:
                index = self.position
                self.position += 1
                if index >= start:
                    taken.append((index, line, list(cells)))
                    if len(taken) == count:
                        break
        except (FileError, OSError) as exc:
            self.error = str(exc) if isinstance(exc, FileError) else FILE_GONE
            self._rows = iter(())
        return taken

    def count(self) -> int:
        """The data rows, up to the first that cannot be read."""
        from dialbase.imports.files import FileError, open_rows

        counted = 0
        try:
            _, data = open_rows(self.path, self.file_format)
            for _ in data:
                counted += 1
        except (FileError, OSError):
            pass
        return counted


@dataclass(slots=True)
class Work:
    """What one process keeps between the chunks of an import it is adding."""

    import_id: int
    limits: fields.Limits
    lease: float = LEASE_SECONDS
    owner: str = field(default_factory=lambda: uuid.uuid4().hex)
    chunk_rows: int = CHUNK_ROWS
    file: FileCursor | None = None
    sqlite: SQLiteWriter | None = None  # the process's SQLite writer (SQLite only)


def limits_of(settings: Settings) -> fields.Limits:
    return fields.Limits(
        settings.max_extra_columns, settings.max_extra_key_chars, settings.max_extra_value_chars
    )


async def run_import(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    import_id: int,
    progress: Progress | None = None,
) -> None:
    """Add one import's rows to the end in this process (the CLI's way). A chunk that
    fails because the database is unavailable is redone a few times, then the error is
    raised: what committed stays, and the import resumes from there later."""
    sqlite = SQLiteWriter(settings) if backend_name(settings.database_url) == "sqlite" else None
    work = Work(import_id, limits_of(settings), settings.import_lease_seconds, sqlite=sqlite)
    try:
        await _run_to_the_end(sessionmaker, work, progress)
    finally:
        if sqlite is not None:
            await sqlite.close()


async def _run_to_the_end(
    sessionmaker: async_sessionmaker[AsyncSession], work: Work, progress: Progress | None
) -> None:
    failures = 0
    while True:
        try:
            state = await run_chunk(sessionmaker, work)
        except Exception as exc:
            if not database_unavailable(exc) or failures >= len(REDO_DELAYS):
                raise
            outages.failed(exc)
            await asyncio.sleep(REDO_DELAYS[failures])
            failures += 1
            continue
        failures = 0
        if state is None:
            return
        if progress is not None:
            progress(state.next_row, state.total)
        if state.status == ImportStatus.DONE:
            return


async def run_chunk(
    sessionmaker: async_sessionmaker[AsyncSession], work: Work
) -> ChunkState | None:
    """Add the import's next chunk (one transaction); None if the import is gone."""
    start, total = 0, 0
    for _ in range(MAX_REPLANS):
        plan = await _plan(sessionmaker, work)
        if not isinstance(plan, Plan):
            return plan
        start, total = plan.start, plan.total
        verdicts = await asyncio.to_thread(_judge, plan, work.limits)
        written = await _write(sessionmaker, work, plan, verdicts)
        if not isinstance(written, Stale):
            return written
    # The settings keep changing under the import: the next step tries again.
    return ChunkState(ImportStatus.RUNNING.value, start, total)


@dataclass(frozen=True, slots=True)
class Plan:
    """What a chunk will check and add, read before its transaction."""

    start: int  # the cursor the chunk starts from
    total: int
    revision: int  # the configuration revision the account and campaign were read at
    columns: list[str]
    account: AccountInfo
    campaign: CampaignInfo
    rows: list[Row]
    staged: bool  # rows staged in the database (a bulk request), not read from a file
    check_duplicate: bool
    file_path: str | None
    sqlite: bool  # the database is SQLite (written through ``Work.sqlite``)


async def _plan(
    sessionmaker: async_sessionmaker[AsyncSession], work: Work
) -> Plan | ChunkState | None:
    """The chunk to add, the state of an import that is done, or None if it is gone."""
    prepared = await _prepare_file(sessionmaker, work)
    async with sessionmaker() as session:
        revision = await session.scalar(select(ConfigRevision.value).where(ConfigRevision.id == 1))
        record = await session.get(Import, work.import_id)
        if record is None:
            return None
        if record.status == ImportStatus.DONE:
            return ChunkState(record.status, record.next_row, record.total)
        account, campaign = await _context(session, record, int(revision or 0))
        if prepared is not None:
            start, batch = prepared
        else:
            start = record.next_row
            batch = await _staged_rows(session, record, work.chunk_rows)
        return Plan(
            start=start,
            total=record.total,
            revision=int(revision or 0),
            columns=list(record.columns),
            account=account,
            campaign=campaign,
            rows=batch,
            staged=prepared is None,
            check_duplicate=record.check_duplicate,
            file_path=record.file_path,
            sqlite=session.get_bind().dialect.name == "sqlite",
        )


def _judge(plan: Plan, limits: fields.Limits) -> list[rows.Verdict]:
    return [
        rows.judge(plan.columns, cells, plan.account, plan.campaign, limits)
        for _, _, cells in plan.rows
    ]


async def _write(
    sessionmaker: async_sessionmaker[AsyncSession],
    work: Work,
    plan: Plan,
    verdicts: list[rows.Verdict],
) -> ChunkState | Stale | None:
    """The chunk's transaction (``chunks.write_chunk``); the staged file is deleted once
    the last chunk committed."""
    chunk = Chunk(
        import_id=work.import_id,
        account_id=plan.account.id,
        campaign_id=plan.campaign.id,
        check_duplicate=plan.check_duplicate,
        start=plan.start,
        revision=plan.revision,
        columns=plan.columns,
        rows=plan.rows,
        verdicts=verdicts,
        last=len(plan.rows) < work.chunk_rows
        or (plan.staged and plan.start + len(plan.rows) >= plan.total),
        file_error=work.file.error if work.file is not None else None,
        owner=work.owner,
        lease=work.lease,
    )
    written: ChunkState | Stale | None
    if plan.sqlite:
        if work.sqlite is None:
            raise RuntimeError("a SQLite import is written through the process's SQLiteWriter")
        written = await work.sqlite.transaction(
            lambda conn: write_chunk(SQLiteChunkStore(conn, chunk), chunk)
        )
    else:
        async with session_scope(sessionmaker) as session:
            store: SessionChunkStore | None = None

            def recipe(sync: Session) -> ChunkState | Stale | None:
                nonlocal store
                store = SessionChunkStore(sync, chunk)
                return write_chunk(store, chunk)

            written = await session.run_sync(recipe)
            for event_type, data in store.events if store is not None else []:
                await outbox.record(session, chunk.campaign_id, event_type, data)
    done = isinstance(written, ChunkState) and written.status == ImportStatus.DONE
    if done and plan.file_path is not None:  # committed: the staged file is no longer needed
        Path(plan.file_path).unlink(missing_ok=True)
    return written


async def _prepare_file(
    sessionmaker: async_sessionmaker[AsyncSession], work: Work
) -> tuple[int, list[Row]] | None:
    """A file import's rows from its cursor on (read before the transaction); None for
    an import whose rows are staged in the database."""
    async with sessionmaker() as session:
        record = await session.get(Import, work.import_id)
        if record is None or record.file_path is None or record.status == ImportStatus.DONE:
            return None
        path, file_format = Path(record.file_path), record.file_format or "csv"
        start, total = record.next_row, record.total
    if work.file is None:
        work.file = FileCursor(path, file_format)
    cursor = work.file
    if total == 0 and start == 0:  # counted once, before the first chunk
        counted = await asyncio.to_thread(cursor.count)
        async with session_scope(sessionmaker) as session:
            await session.execute(
                update(Import)
                .where(Import.id == work.import_id, Import.next_row == 0)
                .values(total=counted)
            )
    return start, await asyncio.to_thread(cursor.read, start, work.chunk_rows)


async def _staged_rows(session: AsyncSession, record: Import, count: int) -> list[Row]:
    result = await session.execute(
        select(ImportRow.idx, ImportRow.data)
        .where(ImportRow.import_id == record.id, ImportRow.idx >= record.next_row)
        .order_by(ImportRow.idx)
        .limit(count)
    )
    return [(idx, None, list(data)) for idx, data in result]


async def _context(
    session: AsyncSession, record: Import, revision: int
) -> tuple[AccountInfo, CampaignInfo]:
    account = await session.get(Account, record.account_id)
    campaign = await session.get(Campaign, record.campaign_id)
    assert account is not None and campaign is not None  # the import cascades with both
    return account_info(account, revision), campaign_info(campaign, revision)
