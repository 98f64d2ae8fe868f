"""The one way a dialbase process writes its SQLite file on a hot path.

Lead batches (``leads.stores.sqlite``) and leases and outcomes (``dialer.stores.sqlite``)
go through one ``SQLiteWriter`` per process, so they never compete with each other for
the file's write lock through SQLite's sleeping busy handler.

A transaction first tries the write lock without waiting (``BEGIN IMMEDIATE`` with no
busy timeout), on the event loop thread: a process alone never waits, and a transaction
costs no thread hand-off (with ``synchronous=normal`` a commit writes the WAL without
waiting for the disk). When another process holds the lock, or with
``synchronous=full``, the transaction goes to a dedicated thread whose connection waits
for the lock (``DIALBASE_SQLITE_BUSY_TIMEOUT_MS``). The inline connection never
checkpoints: the thread checkpoints the WAL (``PASSIVE``) every ``CHECKPOINT_ROWS`` rows.

A failed ``COMMIT`` leaves SQLite's transaction open or rolled back, never committed, so
the outcome of a transaction is always known here. An error that means the file cannot be
used (``errors.database_unavailable``) becomes ``DatabaseUnavailable``; any other
``sqlite3.Error`` is raised as it is, after the rollback.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from dialbase.config import Settings
from dialbase.db import sqlite_path, sqlite_pragmas
from dialbase.errors import DatabaseUnavailable, database_unavailable, outages

log = logging.getLogger("dialbase.writer")

T = TypeVar("T")
Work = Callable[[sqlite3.Connection], T]
CHECKPOINT_ROWS = 2000  # rows written inline between two checkpoints on the thread
_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class _Busy(Exception):
    """The file's write lock is taken: wait for it on the thread."""


class SQLiteWriter:
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

    async def transaction(self, work: Work[T]) -> T:
        """``work(connection)`` in one ``BEGIN IMMEDIATE`` transaction, committed."""
        try:
            try:
                result = self._inline_transaction(work)
            except _Busy:
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(self._thread, self._waiting_transaction, work)
        except sqlite3.Error as exc:
            if database_unavailable(exc):
                outages.failed(exc)
                raise DatabaseUnavailable() from exc
            raise
        outages.succeeded()
        return result

    def _inline_transaction(self, work: Work[T]) -> T:
        if not self._write_inline:
            raise _Busy
        if self._inline is None:
            self._inline = self._connect(0)
            # Its commits never checkpoint (that waits for the disk): the thread does.
            self._inline.execute("PRAGMA wal_autocheckpoint=0")
        try:
            self._inline.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF in _BUSY:
                raise _Busy from exc
            raise
        result = _finish(self._inline, work)
        self._checkpoint_if_due(self._inline)
        return result

    def _waiting_transaction(self, work: Work[T]) -> T:
        if self._waiting is None:
            self._waiting = self._connect(self._timeout)
        self._waiting.execute("BEGIN IMMEDIATE")
        return _finish(self._waiting, work)

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


def _finish(conn: sqlite3.Connection, work: Work[T]) -> T:
    """Run ``work`` in the open transaction; commit, or roll back on any error."""
    try:
        result = work(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result
