"""Group commit: the leads of concurrent requests are written in one transaction.

A request hands its lead to the writer and waits; the writer takes everything queued,
writes it in one transaction, commits, and only then answers each request. Every
guarantee of a one-commit-per-request design holds (a success is committed, the
duplicate check is exact), but a commit is shared by all requests that arrived while the
previous one was being written.

Inside the transaction, for each lead in arrival order:
1. the campaign's number guard (``campaign_numbers``) is inserted if missing; a lead with
   the duplicate check on whose number was already guarded is a duplicate and is skipped;
2. the lead is inserted;
3. its ``action`` starts or stops the campaign.
The guard's primary key makes the check exact across processes and hosts: a concurrent
transaction inserting the same number waits for ours and then finds it.

The batch also reads the configuration revision: a lead checked against cached account
or campaign data older than the database's revision is not written (``STALE``) and the
request is checked again against fresh data.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import asyncpg
import orjson
from sqlalchemy.engine import make_url

from dialbase.config import Settings
from dialbase.db import PG_UNAVAILABLE, sqlite_instant, sqlite_path, sqlite_pragmas, utcnow
from dialbase.errors import DATABASE_DOWN, ServiceUnavailable

log = logging.getLogger("dialbase.writer")


class Outcome(enum.Enum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    STALE = "stale"


class ActionResult(enum.Enum):
    STARTED = "started"
    ALREADY_STARTED = "already_started"
    STOPPED = "stopped"


@dataclass(slots=True)
class NewLead:
    campaign_id: int
    revision: int
    phone_number: str
    name: str | None
    priority: int
    expires_at: datetime | None
    agent_id: str | None
    skill: str | None
    extra: dict[str, str]
    check_duplicate: bool
    action: str | None  # "start", "stop" or None (no action to apply)


@dataclass(slots=True)
class WriteResult:
    outcome: Outcome
    action: ActionResult | None = None
    revision: int = 0


@dataclass(slots=True)
class _Plan:
    """What a batch does, decided from the guard inserts in arrival order."""

    results: list[WriteResult] = field(default_factory=list)
    stored: list[NewLead] = field(default_factory=list)


def plan_batch(batch: Sequence[NewLead], revision: int, inserted: Sequence[bool]) -> _Plan:
    """Decide each lead's fate; ``inserted[i]`` says lead i's guard insert added a row."""
    plan = _Plan()
    for lead, new_number in zip(batch, inserted, strict=True):
        if lead.revision < revision:
            plan.results.append(WriteResult(Outcome.STALE, revision=revision))
        elif lead.check_duplicate and not new_number:
            plan.results.append(WriteResult(Outcome.DUPLICATE))
        else:
            plan.results.append(WriteResult(Outcome.STORED))
            plan.stored.append(lead)
    return plan


def _apply_action(result: WriteResult, lead: NewLead, changed: bool) -> None:
    if lead.action == "start":
        result.action = ActionResult.STARTED if changed else ActionResult.ALREADY_STARTED
    elif lead.action == "stop":
        result.action = ActionResult.STOPPED


class BatchStore(Protocol):
    concurrency: int  # how many batches may be written at once

    async def write(self, batch: Sequence[NewLead]) -> list[WriteResult]: ...

    async def close(self) -> None: ...


_GUARD_SQL = (
    "INSERT INTO campaign_numbers (campaign_id, phone_number) VALUES (?, ?) ON CONFLICT DO NOTHING"
)
_SQLITE_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
CHECKPOINT_ROWS = 2000  # rows written inline between two checkpoints on the thread
_LEAD_COLUMNS = (
    "campaign_id, phone_number, name, priority, expires_at, agent_id, skill, extra,"
    " status, attempts, due_at, created_at"
)
_SQLITE_LEAD_SQL = (
    f"INSERT INTO leads ({_LEAD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)"
)


class SQLiteBatchStore:
    """Writes batches through sqlite3, on the event loop while the file is free.

    A batch first tries the file's write lock without waiting, from the event loop
    thread: one process alone never waits, and a batch costs no thread hand-off (with
    ``synchronous=normal`` a commit writes the WAL without waiting for the disk). When
    another process or connection holds the lock, or with ``synchronous=full``, the batch
    goes to a dedicated thread whose connection waits for it
    (``DIALBASE_SQLITE_BUSY_TIMEOUT_MS``).
    """

    concurrency = 1  # one writer at a time holds a SQLite file anyway

    def __init__(self, settings: Settings) -> None:
        self._path = sqlite_path(settings.database_url)
        self._pragmas = sqlite_pragmas(settings)
        self._timeout = settings.sqlite_busy_timeout_ms / 1000
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dialbase-writer")
        self._inline: sqlite3.Connection | None = None
        self._waiting: sqlite3.Connection | None = None
        # With synchronous=full every commit waits for the disk: not on the event loop.
        self._write_inline = settings.sqlite_synchronous == "normal"
        self._changes_at_checkpoint = 0
        self._checkpointing = False

    def _connect(self, timeout: float) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        for pragma in self._pragmas:
            if timeout == 0 and pragma.startswith("PRAGMA busy_timeout"):
                continue
            conn.execute(pragma)
        return conn

    async def write(self, batch: Sequence[NewLead]) -> list[WriteResult]:
        try:
            if self._write_inline:
                try:
                    if self._inline is None:
                        self._inline = self._connect(0)
                        # Its commits never checkpoint (that waits for the disk): the
                        # thread does, after a commit has left enough pages in the WAL.
                        self._inline.execute("PRAGMA wal_autocheckpoint=0")
                    results = self._write(self._inline, batch)
                    self._checkpoint_if_due(self._inline)
                    return results
                except sqlite3.OperationalError as exc:
                    if exc.sqlite_errorcode & 0xFF not in _SQLITE_BUSY:
                        raise
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._thread, self._write_waiting, batch)
        except sqlite3.OperationalError as exc:  # locked too long, disk full, file gone
            log.error("SQLite write failed: %s", exc)
            raise ServiceUnavailable(DATABASE_DOWN) from exc

    def _checkpoint_if_due(self, conn: sqlite3.Connection) -> None:
        if conn.total_changes - self._changes_at_checkpoint < CHECKPOINT_ROWS:
            return
        if not self._checkpointing:
            self._changes_at_checkpoint = conn.total_changes
            self._checkpointing = True
            future = asyncio.get_running_loop().run_in_executor(self._thread, self._checkpoint)
            future.add_done_callback(self._checkpoint_done)

    def _checkpoint(self) -> None:
        if self._waiting is None:
            self._waiting = self._connect(self._timeout)
        self._waiting.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _checkpoint_done(self, future: asyncio.Future[None]) -> None:
        self._checkpointing = False
        if not future.cancelled() and future.exception() is not None:
            log.warning("SQLite checkpoint failed: %s", future.exception())

    def _write_waiting(self, batch: Sequence[NewLead]) -> list[WriteResult]:
        if self._waiting is None:
            self._waiting = self._connect(self._timeout)
        return self._write(self._waiting, batch)

    def _write(self, conn: sqlite3.Connection, batch: Sequence[NewLead]) -> list[WriteResult]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            results = self._write_in_transaction(conn, batch)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return results

    def _write_in_transaction(
        self, conn: sqlite3.Connection, batch: Sequence[NewLead]
    ) -> list[WriteResult]:
        revision = conn.execute("SELECT value FROM config_revision WHERE id = 1").fetchone()[0]
        inserted = [
            conn.execute(_GUARD_SQL, (lead.campaign_id, lead.phone_number)).rowcount == 1
            if lead.revision >= revision
            else False
            for lead in batch
        ]
        plan = plan_batch(batch, revision, inserted)
        now = sqlite_instant(utcnow())
        conn.executemany(
            _SQLITE_LEAD_SQL,
            [
                (
                    lead.campaign_id,
                    lead.phone_number,
                    lead.name,
                    lead.priority,
                    sqlite_instant(lead.expires_at) if lead.expires_at else None,
                    lead.agent_id,
                    lead.skill,
                    orjson.dumps(lead.extra).decode(),
                    now,
                    now,
                )
                for lead in plan.stored
            ],
        )
        for lead, result in zip(batch, plan.results, strict=True):
            if result.outcome is Outcome.STORED and lead.action in ("start", "stop"):
                running = 1 if lead.action == "start" else 0
                changed = conn.execute(
                    "UPDATE campaigns SET running = ? WHERE id = ? AND running != ?",
                    (running, lead.campaign_id, running),
                ).rowcount
                _apply_action(result, lead, bool(changed))
        return plan.results

    async def close(self) -> None:
        def _close() -> None:
            if self._waiting is not None:
                self._waiting.close()

        await asyncio.get_running_loop().run_in_executor(self._thread, _close)
        self._thread.shutdown(wait=True)
        if self._inline is not None:
            self._inline.close()


# One statement writes a whole batch (one round trip, one commit): it reads the revision,
# inserts the missing number guards in key order, keeps a lead unless its duplicate check
# is on and it is not the first lead of a newly guarded number, inserts the kept leads in
# arrival order, and returns the revision and the (1-based) positions of the kept leads.
_PG_BATCH_SQL = f"""
WITH rev AS (SELECT value AS v FROM config_revision WHERE id = 1),
input AS (
    SELECT * FROM unnest(
        $1::integer[], $2::text[], $3::text[], $4::integer[], $5::timestamptz[],
        $6::text[], $7::text[], $8::text[], $9::boolean[], $10::integer[]
    ) WITH ORDINALITY AS t(c, p, n, pr, e, a, s, x, dup, r, ord)
),
live AS (SELECT * FROM input WHERE r >= (SELECT v FROM rev)),
guard AS (
    INSERT INTO campaign_numbers (campaign_id, phone_number)
    SELECT DISTINCT c, p FROM live ORDER BY c, p
    ON CONFLICT DO NOTHING
    RETURNING campaign_id, phone_number
),
firsts AS (SELECT DISTINCT ON (c, p) ord FROM live ORDER BY c, p, ord),
kept AS (
    SELECT * FROM live
    WHERE NOT dup
       OR (ord IN (SELECT ord FROM firsts)
           AND (c, p) IN (SELECT campaign_id, phone_number FROM guard))
),
added AS (
    INSERT INTO leads ({_LEAD_COLUMNS})
    SELECT c, p, n, pr, e, a, s, x::json, 'pending', 0, $11, $11 FROM kept ORDER BY ord
)
SELECT (SELECT v FROM rev), ARRAY(SELECT ord FROM kept)
"""
_PG_ACTION_SQL = "UPDATE campaigns SET running = $1 WHERE id = $2 AND running IS DISTINCT FROM $1"
_PG_RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresBatchStore:
    """Writes each batch with one statement, whatever its size (``unnest`` arrays).

    Several batches may be in flight on their own connections: while one waits for its
    commit, the next is already being written. Guards are inserted in key order and
    campaigns updated in id order, so concurrent batches wait for each other but do not
    deadlock (and a deadlock from elsewhere is retried).
    """

    def __init__(self, settings: Settings) -> None:
        self.concurrency = settings.db_writer_connections
        self._dsn = asyncpg_dsn(settings.database_url)
        self._timeout = settings.db_connect_timeout
        timeout_ms = settings.db_statement_timeout_ms
        self._command_timeout = timeout_ms / 1000 if timeout_ms else None
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()

    async def _get_pool(self) -> asyncpg.Pool:
        async with self._pool_lock:  # batches in flight must not each create a pool
            if self._pool is None:
                self._pool = await self._create_pool()
        return self._pool

    async def _create_pool(self) -> asyncpg.Pool:
        return await asyncpg.create_pool(
            self._dsn,
            min_size=1,
            max_size=self.concurrency,
            timeout=self._timeout,
            command_timeout=self._command_timeout,
        )

    async def write(self, batch: Sequence[NewLead]) -> list[WriteResult]:
        for attempt in range(5):
            try:
                pool = await self._get_pool()
                async with pool.acquire() as conn:
                    return await self._write(conn, batch)
            except _PG_RETRYABLE:
                log.info("write batch retried after a deadlock (attempt %d)", attempt + 1)
                await asyncio.sleep(0.005 * (attempt + 1))
            except PG_UNAVAILABLE as exc:
                log.error("PostgreSQL write failed: %s", exc)
                raise ServiceUnavailable(DATABASE_DOWN) from exc
        raise ServiceUnavailable(DATABASE_DOWN)

    async def _write(self, conn: asyncpg.Connection, batch: Sequence[NewLead]) -> list[WriteResult]:
        if not any(lead.action for lead in batch):
            return await self._write_leads(conn, batch)  # one statement, its own commit
        async with conn.transaction():  # the leads and the actions they carry, together
            results = await self._write_leads(conn, batch)
            pairs = sorted(zip(batch, results, strict=True), key=_campaign_id)
            for lead, result in pairs:
                if result.outcome is Outcome.STORED and lead.action:
                    status = await conn.execute(
                        _PG_ACTION_SQL, lead.action == "start", lead.campaign_id
                    )
                    _apply_action(result, lead, status != "UPDATE 0")
            return results

    async def _write_leads(
        self, conn: asyncpg.Connection, batch: Sequence[NewLead]
    ) -> list[WriteResult]:
        revision, kept = await conn.fetchrow(
            _PG_BATCH_SQL,
            *_lead_arrays(batch),
            [lead.check_duplicate for lead in batch],
            [lead.revision for lead in batch],
            utcnow(),
        )
        stored = set(kept)
        return [
            WriteResult(Outcome.STALE, revision=revision)
            if lead.revision < revision
            else WriteResult(Outcome.STORED if position in stored else Outcome.DUPLICATE)
            for position, lead in enumerate(batch, start=1)
        ]

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()


def _campaign_id(pair: tuple[NewLead, WriteResult]) -> int:
    return pair[0].campaign_id


def _lead_arrays(leads: Sequence[NewLead]) -> list[list[Any]]:
    return [
        [lead.campaign_id for lead in leads],
        [lead.phone_number for lead in leads],
        [lead.name for lead in leads],
        [lead.priority for lead in leads],
        [lead.expires_at for lead in leads],
        [lead.agent_id for lead in leads],
        [lead.skill for lead in leads],
        [orjson.dumps(lead.extra).decode() for lead in leads],
    ]


LEAD_REFUSED = "The database refused this lead; nothing was stored. The error is logged."


def _fail(batch: list[tuple[NewLead, asyncio.Future[WriteResult]]], exc: Exception) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)


class GroupCommitWriter:
    """Queues leads from concurrent requests and writes them a batch at a time."""

    def __init__(self, store: BatchStore, max_batch: int) -> None:
        self._store = store
        self._max_batch = max_batch
        self._queue: list[tuple[NewLead, asyncio.Future[WriteResult]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._slots = asyncio.Semaphore(store.concurrency)
        self._in_flight: set[asyncio.Task[None]] = set()

    async def submit(self, lead: NewLead) -> WriteResult:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="dialbase-group-commit")
        future: asyncio.Future[WriteResult] = asyncio.get_running_loop().create_future()
        self._queue.append((lead, future))
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                await self._slots.acquire()
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                task = asyncio.create_task(self._write_in_slot(batch))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)

    async def _write_in_slot(
        self, batch: list[tuple[NewLead, asyncio.Future[WriteResult]]]
    ) -> None:
        try:
            await self._write(batch)
        finally:
            self._slots.release()

    async def _write(self, batch: list[tuple[NewLead, asyncio.Future[WriteResult]]]) -> None:
        try:
            results = await self._store.write([lead for lead, _ in batch])
        except ServiceUnavailable as exc:
            _fail(batch, exc)
            return
        except Exception:
            if len(batch) > 1:  # find the lead the database refused; write the others
                for item in batch:
                    await self._write([item])
                return
            log.exception("the database refused a lead")
            _fail(batch, ServiceUnavailable(LEAD_REFUSED))
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def close(self) -> None:
        if self._task is not None:
            while self._queue or self._in_flight:
                await asyncio.sleep(0.01)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._store.close()


def make_store(settings: Settings, backend: str) -> BatchStore:
    return SQLiteBatchStore(settings) if backend == "sqlite" else PostgresBatchStore(settings)
