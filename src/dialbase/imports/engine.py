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
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, delete, false, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialbase.accounts.models import Account, ConfigRevision
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

log = logging.getLogger("dialbase.imports")

CHUNK_ROWS = 500
MAX_REPLANS = 5  # a chunk planned again this many times at most, then the next step
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


@dataclass(frozen=True, slots=True)
class Stale:
    """The configuration moved since the chunk was planned: nothing was written."""


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
    """The chunk's transaction (see the module's docstring)."""
    async with session_scope(sessionmaker) as session:
        record = await session.scalar(
            select(Import).where(Import.id == work.import_id).with_for_update()
        )
        if record is None:
            return None
        if record.status == ImportStatus.DONE or record.next_row != plan.start:
            return ChunkState(record.status, record.next_row, record.total)
        revision = await session.scalar(select(ConfigRevision.value).where(ConfigRevision.id == 1))
        if int(revision or 0) != plan.revision:
            return Stale()
        now = utcnow()
        if record.started_at is None:
            record.started_at = now
        record.status = ImportStatus.RUNNING
        record.claimed_by = work.owner
        record.claimed_until = now + timedelta(seconds=work.lease)
        # Written first: on SQLite this takes the write lock for the whole chunk, which
        # the number guards rely on (``_guard``).
        await session.flush()
        outcomes = await _add_rows(session, record, plan, verdicts)
        _count(record, outcomes)
        record.next_row += len(plan.rows)
        last = len(plan.rows) < work.chunk_rows or (plan.staged and record.next_row >= record.total)
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


async def _context(
    session: AsyncSession, record: Import, revision: int
) -> tuple[AccountInfo, CampaignInfo]:
    account = await session.get(Account, record.account_id)
    campaign = await session.get(Campaign, record.campaign_id)
    assert account is not None and campaign is not None  # the import cascades with both
    return account_info(account, revision), campaign_info(campaign, revision)


async def _add_rows(
    session: AsyncSession, record: Import, plan: Plan, verdicts: list[rows.Verdict]
) -> list[RowOutcome]:
    if not plan.rows:
        return []
    numbers = {n for v in verdicts if (n := rows.phone_e164(v)) is not None}
    listed = await _listed(session, plan.account.id, numbers)
    outcomes: list[RowOutcome] = []
    candidates: list[tuple[RowOutcome, NewLead]] = []
    for (idx, line, cells), verdict in zip(plan.rows, verdicts, strict=True):
        text = rows.phone_text(plan.columns, cells)
        outcome = RowOutcome(idx, line, text, RowResult.ADDED, None)
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
