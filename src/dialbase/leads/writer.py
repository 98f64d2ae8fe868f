"""Group commit: the leads of concurrent requests are written in one transaction.

A request hands its lead to the writer (``submit``) and waits; the batching loop takes
everything queued (up to ``DIALBASE_WRITE_BATCH_MAX`` leads), writes it through the
store of the backend (``leads.stores``) and only then answers each request, so a
success is always committed. ``leads.batch`` says what a batch is and what can come of
it; this module only collects, writes and answers:

- results: each request gets its lead's ``WriteResult``;
- ``BatchRefused``: the batch is written again lead by lead, so that only the lead the
  database refuses fails (503, logged), the others are stored;
- ``ServiceUnavailable`` (``DatabaseUnavailable``, ``OutcomeUnknown``): every request of
  the batch gets it (503);
- anything else is a bug: every request of the batch gets 503, with the traceback logged.

Every batch written is measured (``dialbase_write_batch_size``, ``_seconds``).

If the loop itself dies, every waiting request gets 503 and the next ``submit`` starts a
new loop: a request never waits for a loop that is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Protocol

from dialbase.config import Settings
from dialbase.errors import DatabaseUnavailable, ServiceUnavailable
from dialbase.leads.batch import LEAD_REFUSED, BatchRefused, NewLead, WriteResult
from dialbase.observability.metrics import BATCH_SECONDS, BATCH_SIZE
from dialbase.sqlite_writer import SQLiteWriter

log = logging.getLogger("dialbase.writer")

Pending = tuple[NewLead, "asyncio.Future[WriteResult]"]
WRITER_FAILED = "The lead writer failed; nothing was stored. The error is logged."


class BatchStore(Protocol):
    concurrency: int  # how many batches may be written at once

    async def write(self, batch: Sequence[NewLead]) -> list[WriteResult]: ...

    async def close(self) -> None: ...


class GroupCommitWriter:
    def __init__(self, store: BatchStore, max_batch: int) -> None:
        self._store = store
        self._max_batch = max_batch
        self._queue: list[Pending] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._slots = asyncio.Semaphore(store.concurrency)
        self._in_flight: set[asyncio.Task[None]] = set()

    async def submit(self, lead: NewLead) -> WriteResult:
        """Queue the lead and wait until the transaction holding it committed."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="dialbase-group-commit")
            self._task.add_done_callback(self._loop_ended)
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

    def _loop_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            error: Exception = DatabaseUnavailable()
        else:
            log.error("the lead writer's loop died", exc_info=task.exception())
            error = ServiceUnavailable(WRITER_FAILED)
        queued, self._queue = self._queue, []
        _fail(queued, error)

    async def _write_in_slot(self, batch: list[Pending]) -> None:
        try:
            await self._write(batch)
        except Exception as exc:  # a bug: never leave a request waiting
            log.error("writing a batch failed", exc_info=exc)
            _fail(batch, ServiceUnavailable(WRITER_FAILED))
        finally:
            self._slots.release()

    async def _write(self, batch: list[Pending]) -> None:
        started = time.perf_counter()
        try:
            results = await self._store.write([lead for lead, _ in batch])
        except ServiceUnavailable as exc:
            _fail(batch, exc)
            return
        except BatchRefused as exc:
            if len(batch) > 1:  # find the lead the database refused; write the others
                for item in batch:
                    await self._write([item])
                return
            log.error("the database refused a lead: %s", exc)
            _fail(batch, ServiceUnavailable(LEAD_REFUSED))
            return
        seconds = time.perf_counter() - started
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
        BATCH_SECONDS.observe(seconds)  # after the answers: nothing can hold them back
        BATCH_SIZE.observe(len(batch))

    async def close(self) -> None:
        """Write what is queued, then stop."""
        if self._task is not None:
            while (self._queue and not self._task.done()) or self._in_flight:
                await asyncio.sleep(0.01)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._store.close()


def _fail(batch: list[Pending], error: Exception) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(error)


def make_store(settings: Settings, sqlite: SQLiteWriter | None) -> BatchStore:
    """The store of the backend: SQLite when the process has a ``SQLiteWriter``."""
    if sqlite is not None:
        from dialbase.leads.stores.sqlite import SQLiteBatchStore

        return SQLiteBatchStore(sqlite)
    from dialbase.leads.stores.postgres import PostgresBatchStore

    return PostgresBatchStore(settings)
