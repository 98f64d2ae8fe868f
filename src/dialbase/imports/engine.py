"""Adding an import's rows: chunk by chunk, each chunk one transaction.

The only thing on this path that commits. A chunk's transaction locks the import's row
(``FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` serializes writers anyway),
reads its resume cursor ``next_row``, and then, for up to ``CHUNK_ROWS`` rows from there:
checks each row (``imports.rows``), looks their numbers up on the do-not-call list,
inserts the campaign's number guards (``campaign_numbers``, in key order, as the lead
writer does: the duplicate rule is exact against concurrent AddCampaignData requests),
inserts the added leads in row order with their zone keys, writes every row's result,
and advances ``next_row`` and the counters. The last chunk also marks the import done,
starts the campaign when asked, and schedules the callback. All of it commits together
or not at all:

- a failure before the commit (a dropped connection, a deadlock, a lost SQLite lock)
  rolls the chunk back; it is redone from the same cursor;
- a commit whose outcome is unknown needs no lookup: the redo reads ``next_row`` in its
  own transaction, so a chunk that did commit is never redone;
- two workers on one import (a lease that lapsed while its holder was alive) take turns
  on the row lock, and the second reads the cursor the first advanced.

The configuration (account, campaign, agents, skills) is read in the chunk's transaction,
so rows are checked against the settings of the moment they are added.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, delete, false, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialbase.accounts.models import Account
from dialbase.campaigns.models import Campaign
from dialbase.compat import fields
from dialbase.compat.directory import AccountInfo, CampaignInfo, account_info, campaign_info
from dialbase.config import Settings
from dialbase.db import session_scope, utcnow
from dialbase.dnc.models import DncEntry
from dialbase.dnc.service import in_force
from dialbase.errors import database_unavailable, outages
from dialbase.imports import rows
from dialbase.imports.models import Import, ImportResult, ImportRow, ImportStatus, RowResult
from dialbase.leads.batch import NewLead
from dialbase.leads.models import CampaignNumber, CampaignZones, Lead
from dialbase.webhooks.service import record_import_done

log = logging.getLogger("dialbase.imports")

CHUNK_ROWS = 200
# Core tables: their executemany skips the ORM's per-row bookkeeping.
_LEADS = cast(Table, Lead.__table__)
_RESULTS = cast(Table, ImportResult.__table__)
_GUARDS = cast(Table, CampaignNumber.__table__)
LEASE_SECONDS = 30.0
REDO_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)  # run_import's waits before redoing a failed chunk

FILE_GONE = "The import's file can no longer be read."

Progress = Callable[[int, int], None]
Row = tuple[int, int | None, list[Any]]  # index, line in the file, cells


@dataclass(slots=True)
class RowOutcome:
    idx: int
    line: int | None
    phone_number: str | None
    result: RowResult
    message: str | None
    data: list[Any] | None = None


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
    work = Work(import_id, limits_of(settings), settings.import_lease_seconds)
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


@dataclass(frozen=True, slots=True)
class ChunkState:
    status: str
    next_row: int
    total: int


async def run_chunk(
    sessionmaker: async_sessionmaker[AsyncSession], work: Work
) -> ChunkState | None:
    """Add the import's next chunk (one transaction); None if the import is gone."""
    prepared = await _prepare_file(sessionmaker, work)
    async with session_scope(sessionmaker) as session:
        record = await session.scalar(
            select(Import).where(Import.id == work.import_id).with_for_update()
        )
        if record is None:
            return None
        if record.status == ImportStatus.DONE:
            return ChunkState(record.status, record.next_row, record.total)
        now = utcnow()
        if record.started_at is None:
            record.started_at = now
        record.status = ImportStatus.RUNNING
        record.claimed_by = work.owner
        record.claimed_until = now + timedelta(seconds=work.lease)
        # Written first: on SQLite this takes the write lock for the whole chunk, which
        # the number guards rely on (``_guard``).
        await session.flush()
        if prepared is not None:
            start, batch = prepared
            if start != record.next_row:  # another worker moved the cursor: read again
                return ChunkState(record.status, record.next_row, record.total)
        else:
            batch = await _staged_rows(session, record, work.chunk_rows)
        outcomes = await _add_rows(session, record, batch, work.limits)
        _count(record, outcomes)
        record.next_row += len(batch)
        last = len(batch) < work.chunk_rows or (
            prepared is None and record.next_row >= record.total
        )
        if last and work.file is not None and work.file.error is not None:
            _file_error(session, record, work.file.error)
        if last:
            await _finish(session, record, now)
        state = ChunkState(record.status, record.next_row, record.total)
        done_file = record.file_path if last else None
    if done_file is not None:  # committed: the staged file is no longer needed
        Path(done_file).unlink(missing_ok=True)
    return state


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


async def _context(session: AsyncSession, record: Import) -> tuple[AccountInfo, CampaignInfo]:
    account = await session.get(Account, record.account_id)
    campaign = await session.get(Campaign, record.campaign_id)
    assert account is not None and campaign is not None  # the import cascades with both
    # Revision 0: the chunk's own transaction is what makes the settings current.
    return account_info(account, 0), campaign_info(campaign, 0)


async def _add_rows(
    session: AsyncSession, record: Import, batch: list[Row], limits: fields.Limits
) -> list[RowOutcome]:
    if not batch:
        return []
    account, campaign = await _context(session, record)
    columns = list(record.columns)
    verdicts = [rows.judge(columns, cells, account, campaign, limits) for _, _, cells in batch]
    numbers = {n for v in verdicts if (n := rows.phone_e164(v)) is not None}
    listed = await _listed(session, account.id, numbers)
    outcomes: list[RowOutcome] = []
    candidates: list[tuple[RowOutcome, NewLead]] = []
    for (idx, line, cells), verdict in zip(batch, verdicts, strict=True):
        outcome = RowOutcome(idx, line, rows.phone_text(columns, cells), RowResult.ADDED, None)
        outcomes.append(outcome)
        message: str | None = None
        if isinstance(verdict, rows.Refused):
            message = verdict.message
        elif rows.phone_e164(verdict) in listed:
            message = rows.DND
        elif isinstance(verdict, rows.Unless):
            message = verdict.message
        if message is not None:
            outcome.result, outcome.message, outcome.data = RowResult.REJECTED, message, cells
        elif isinstance(verdict, rows.Listed):
            candidates.append((outcome, verdict.lead))
    await _write_leads(session, record, candidates)
    await session.execute(
        _RESULTS.insert(),
        [
            {
                "import_id": record.id,
                "idx": o.idx,
                "line": o.line,
                "phone_number": o.phone_number,
                "result": o.result.value,
                "message": o.message,
                "data": o.data,
            }
            for o in outcomes
        ],
    )
    return outcomes


async def _listed(session: AsyncSession, account_id: int, numbers: set[str]) -> set[str]:
    if not numbers:
        return set()
    found = await session.scalars(
        select(DncEntry.number).where(
            DncEntry.account_id == account_id,
            DncEntry.number.in_(sorted(numbers)),
            in_force(utcnow()),
        )
    )
    return set(found)


async def _guard(session: AsyncSession, campaign_id: int, numbers: set[str]) -> set[str]:
    """Insert the missing number guards (key order); the numbers that were new."""
    if not numbers:
        return set()
    if session.get_bind().dialect.name == "sqlite":
        # The chunk's first write (the import row's claim, flushed in ``run_chunk``) took
        # SQLite's write lock: no other writer can add a guard until the commit, so the
        # numbers not found now are exactly the ones this insert adds.
        found = await session.scalars(
            select(CampaignNumber.phone_number).where(
                CampaignNumber.campaign_id == campaign_id,
                CampaignNumber.phone_number.in_(sorted(numbers)),
            )
        )
        new = numbers - set(found)
        if new:
            await session.execute(
                _GUARDS.insert(), [{"campaign_id": campaign_id, "phone_number": n} for n in new]
            )
        return new
    values = [{"campaign_id": campaign_id, "phone_number": n} for n in sorted(numbers)]
    if session.get_bind().dialect.name == "postgresql":
        # An existing guard is locked, not updated (see leads.stores.postgres).
        pg = postgresql.insert(CampaignNumber).values(values)
        statement: Any = pg.on_conflict_do_update(
            index_elements=["campaign_id", "phone_number"],
            set_={"phone_number": pg.excluded.phone_number},
            where=false(),
        )
    else:
        statement = sqlite.insert(CampaignNumber).values(values).on_conflict_do_nothing()
    result = await session.scalars(statement.returning(CampaignNumber.phone_number))
    return set(result)


async def _write_leads(
    session: AsyncSession, record: Import, candidates: list[tuple[RowOutcome, NewLead]]
) -> None:
    """The duplicate rule, then the added leads in row order."""
    if not candidates:
        return
    new = await _guard(session, record.campaign_id, {lead.phone_e164 for _, lead in candidates})
    added: list[NewLead] = []
    for outcome, lead in candidates:
        if record.check_duplicate:
            if lead.phone_e164 not in new:
                outcome.result, outcome.message = RowResult.DUPLICATE, rows.DUPLICATE
                continue
            new.discard(lead.phone_e164)  # the first added row of a number wins
        added.append(lead)
    if not added:
        return
    now = utcnow()
    await session.execute(
        _LEADS.insert(),
        [
            {
                "campaign_id": lead.campaign_id,
                "phone_number": lead.phone_number,
                "phone_e164": lead.phone_e164,
                "time_zones": lead.time_zones,
                "name": lead.name,
                "priority": lead.priority,
                "expires_at": lead.expires_at,
                "agent_id": lead.agent_id,
                "skill": lead.skill,
                "extra": lead.extra,
                "status": "pending",
                "attempts": 0,
                "due_at": now,
                "created_at": now,
            }
            for lead in added
        ],
    )
    zones = [
        {"campaign_id": record.campaign_id, "time_zones": z}
        for z in sorted({lead.time_zones for lead in added})
    ]
    if session.get_bind().dialect.name == "postgresql":
        zone_insert: Any = postgresql.insert(CampaignZones).values(zones)
    else:
        zone_insert = sqlite.insert(CampaignZones).values(zones)
    await session.execute(zone_insert.on_conflict_do_nothing())


def _file_error(session: AsyncSession, record: Import, message: str) -> None:
    """The rest of the file is unreadable: reported as one rejected row after the last."""
    session.add(
        ImportResult(
            import_id=record.id,
            idx=record.next_row,
            result=RowResult.REJECTED.value,
            message=f"The rest of the file was not imported: {message}",
        )
    )
    record.rejected += 1
    record.next_row += 1


def _count(record: Import, outcomes: list[RowOutcome]) -> None:
    for outcome in outcomes:
        if outcome.result is RowResult.ADDED:
            record.added += 1
        elif outcome.result is RowResult.DUPLICATE:
            record.duplicates += 1
        else:
            record.rejected += 1


async def _finish(session: AsyncSession, record: Import, now: datetime) -> None:
    record.status = ImportStatus.DONE
    record.total = record.next_row
    record.finished_at = now
    record.claimed_until = None
    if record.callback_url:
        record.callback_next_at = now
    if record.start:
        await session.execute(
            update(Campaign)
            .where(Campaign.id == record.campaign_id, Campaign.running.is_(False))
            .values(running=True)
        )
    await session.execute(delete(ImportRow).where(ImportRow.import_id == record.id))
    await record_import_done(session, record)  # webhooks: import.done, in this transaction
