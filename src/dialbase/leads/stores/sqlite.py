"""The SQLite store: a batch in one ``BEGIN IMMEDIATE`` transaction through sqlite3.

A batch first tries the file's write lock without waiting, from the event loop thread:
one process alone never waits, and a batch costs no thread hand-off (with
``synchronous=normal`` a commit writes the WAL without waiting for the disk). When
another process or connection holds the lock, or with ``synchronous=full``, the batch
goes to a dedicated thread whose connection waits for it (``DIALBASE_SQLITE_BUSY_
TIMEOUT_MS``). The inline connection never checkpoints: the thread checkpoints the WAL
(``PASSIVE``) every ``CHECKPOINT_ROWS`` rows.

A failed ``COMMIT`` leaves SQLite's transaction open or rolled back, never committed, so
the outcome of a batch is always known here: a failure is ``DatabaseUnavailable`` (the
file is locked too long, the disk is full, the file is gone) or ``BatchRefused``.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import orjson

from dialbase.config import Settings
from dialbase.db import sqlite_instant, sqlite_path, sqlite_pragmas, utcnow
from dialbase.errors import DatabaseUnavailable, database_unavailable, outages
from dialbase.leads.batch import (
    BatchRefused,
    NewLead,
    Outcome,
    WriteResult,
    action_result,
    decide,
    stored_actions,
)

log = logging.getLogger("dialbase.writer")

_REVISION_SQL = "SELECT value FROM config_revision WHERE id = 1"
_GUARD_SQL = (
    "INSERT INTO campaign_numbers (campaign_id, phone_number) VALUES (?, ?) ON CONFLICT DO NOTHING"
)
_LEAD_SQL = (
    "INSERT INTO leads (campaign_id, phone_number, name, priority, expires_at, agent_id,"
    " skill, extra, status, attempts, due_at, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)"
)
_ACTION_SQL = "UPDATE campaigns SET running = ? WHERE id = ? AND running != ?"
_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
CHECKPOINT_ROWS = 2000  # rows written inline between two checkpoints on the thread


class SQLiteBatchStore:
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

    async def write(self, batch: Sequence[NewLead]) -> list[WriteResult]:
        try:
            results = self._try_inline(batch)
            if results is None:  # the file is busy: wait for it on the thread
                loop = asyncio.get_running_loop()
                results = await loop.run_in_executor(self._thread, self._write_waiting, batch)
        except sqlite3.Error as exc:
            if database_unavailable(exc):
                outages.failed(exc)
                raise DatabaseUnavailable() from exc
            raise BatchRefused(str(exc)) from exc
        outages.succeeded()
        return results

    def _try_inline(self, batch: Sequence[NewLead]) -> list[WriteResult] | None:
        """The batch written on the event loop, or None when the file's lock is taken."""
        if not self._write_inline:
            return None
        if self._inline is None:
            self._inline = self._connect(0)
            # Its commits never checkpoint (that waits for the disk): the thread does.
            self._inline.execute("PRAGMA wal_autocheckpoint=0")
        try:
            results = _write(self._inline, batch)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF in _BUSY:
                return None
            raise
        self._checkpoint_if_due(self._inline)
        return results

    def _write_waiting(self, batch: Sequence[NewLead]) -> list[WriteResult]:
        if self._waiting is None:
            self._waiting = self._connect(self._timeout)
        return _write(self._waiting, batch)

    def _connect(self, timeout: float) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        for pragma in self._pragmas:
            if timeout == 0 and pragma.startswith("PRAGMA busy_timeout"):
                continue
            conn.execute(pragma)
        return conn

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

    async def close(self) -> None:
        def _close() -> None:
            if self._waiting is not None:
                self._waiting.close()

        await asyncio.get_running_loop().run_in_executor(self._thread, _close)
        self._thread.shutdown(wait=True)
        if self._inline is not None:
            self._inline.close()


def _write(conn: sqlite3.Connection, batch: Sequence[NewLead]) -> list[WriteResult]:
    """The batch in one transaction; committed when this returns."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        results = _write_in_transaction(conn, batch)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return results


def _write_in_transaction(conn: sqlite3.Connection, batch: Sequence[NewLead]) -> list[WriteResult]:
    revision = conn.execute(_REVISION_SQL).fetchone()[0]
    results = [decide(lead, revision, new_number=_guard(conn, lead, revision)) for lead in batch]
    now = sqlite_instant(utcnow())
    conn.executemany(
        _LEAD_SQL,
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
            for lead, result in zip(batch, results, strict=True)
            if result.outcome is Outcome.STORED
        ],
    )
    for lead, result in stored_actions(batch, results):
        running = 1 if lead.action == "start" else 0
        changed = conn.execute(_ACTION_SQL, (running, lead.campaign_id, running)).rowcount
        result.action = action_result(lead, bool(changed))
    return results


def _guard(conn: sqlite3.Connection, lead: NewLead, revision: int) -> bool:
    """Insert the lead's number guard; whether it was new (a stale lead guards nothing)."""
    if lead.revision != revision:
        return False
    return conn.execute(_GUARD_SQL, (lead.campaign_id, lead.phone_number)).rowcount == 1
